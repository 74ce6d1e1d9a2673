"""Benchmark geoindex.VolunteerIndex against PostGIS KNN and Redis GEOSEARCH (not a test).

Prints one table per run: nearest-N query latency (p50/p99, client-side wall time per query) for
each engine, data size, distribution and radius, plus in-memory upsert throughput, bulk_load
rebuild time, resident memory per volunteer and persisted (asyncpg, batched) update throughput.

    .venv/bin/python bench/geoindex.py                       # full run: 100k and 1M
    .venv/bin/python bench/geoindex.py --sizes 100000 --queries 500 --skip-postgis --skip-redis

PostGIS: a scratch database on postgresql://127.0.0.1:5432 (created and dropped here), needs the
postgresql-15-postgis-3 package. Redis: 127.0.0.1:6379 via the ``redis`` package (bench-only
dependency). Peer timings include a loopback round trip; geoindex's do not.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.calibration import print_calibration
from geoindex import VolunteerIndex, haversine_m
from geoindex import _kernels as geoindex_kernels
from geoindex import index as geoindex_index

F64 = npt.NDArray[np.float64]
# ~420 km^2 box around Amsterdam.
LAT0, LAT1, LON0, LON1 = 52.28, 52.44, 4.72, 5.07
LIMIT = 30
RADII = (400.0, 1_300.0)
PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
SCRATCH_DB = "geoindex_bench_scratch"
REDIS_KEY = "geoindex_bench:volunteers"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def uniform(n: int, rng: np.random.Generator) -> tuple[F64, F64]:
    """Points uniform over the city box."""
    return rng.uniform(LAT0, LAT1, n), rng.uniform(LON0, LON1, n)


def clustered(n: int, rng: np.random.Generator) -> tuple[F64, F64]:
    """A few dense centres with a lognormal (long-tailed) spread, plus 10% uniform background."""
    centres = np.array(
        [
            (52.372, 4.893, 0.35),
            (52.350, 4.920, 0.15),
            (52.390, 4.840, 0.15),
            (52.310, 4.960, 0.15),
            (52.410, 4.990, 0.10),
            (52.330, 4.780, 0.10),
        ]
    )
    k = rng.choice(len(centres), n, p=centres[:, 2] / centres[:, 2].sum())
    r_m = rng.lognormal(np.log(900.0), 0.9, n)
    th = rng.uniform(0.0, 2.0 * np.pi, n)
    lat = centres[k, 0] + r_m * np.sin(th) / 111_320.0
    lon = centres[k, 1] + r_m * np.cos(th) / (111_320.0 * np.cos(np.radians(52.36)))
    tail = rng.random(n) < 0.1
    lat[tail], lon[tail] = uniform(int(tail.sum()), rng)
    return np.clip(lat, LAT0, LAT1), np.clip(lon, LON0, LON1)


DISTRIBUTIONS: dict[str, Callable[[int, np.random.Generator], tuple[F64, F64]]] = {
    "uniform": uniform,
    "clustered": clustered,
}


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pct(samples_us: list[float]) -> tuple[float, float]:
    """Return (p50, p99) in microseconds."""
    arr = np.asarray(samples_us)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def time_geoindex(
    index: VolunteerIndex, qlat: F64, qlon: F64, radius: float
) -> tuple[list[float], int]:
    """Wall time per query (microseconds) and the garbage collections during the loop.

    The collector stays enabled, as in production. A query's allocations (hits, lists) are freed
    before the next one, so the gen-0 count does not build up: the loop sees no collection.
    """
    out = []
    clock = time.perf_counter_ns
    nearest = index.nearest
    collections = [0]

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections[0] += 1

    gc.collect()
    gc.callbacks.append(count)
    try:
        for a, b in zip(qlat.tolist(), qlon.tolist(), strict=True):
            t0 = clock()
            nearest(a, b, radius_m=radius, limit=LIMIT)
            out.append((clock() - t0) / 1000.0)
    finally:
        gc.callbacks.remove(count)
    return out, collections[0]


def index_memory_per_volunteer(
    ids: npt.NDArray[np.int64], lat: F64, lon: F64, ats: list[datetime]
) -> float:
    """Bytes per volunteer still allocated by a loaded index (tracemalloc: numpy + Python)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    index = VolunteerIndex()
    index.bulk_load(ids, lat, lon, ats)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del index
    return used / len(ids)


def check_exact(
    index: VolunteerIndex, ids: npt.NDArray[np.int64], lat: F64, lon: F64, qlat: F64, qlon: F64
) -> None:
    """Spot-check the index against a brute-force scan (a benchmark of wrong answers is void)."""
    for a, b in zip(qlat[:5].tolist(), qlon[:5].tolist(), strict=True):
        for radius in RADII:
            d = haversine_m(a, b, lat, lon)
            order = np.lexsort((ids, d))
            order = order[d[order] <= radius][:LIMIT]
            got = [
                (h.volunteer_id, h.distance_m)
                for h in index.nearest(a, b, radius_m=radius, limit=LIMIT)
            ]
            assert got == list(zip(ids[order].tolist(), d[order].tolist(), strict=True))


# ---------------------------------------------------------------------------------------- peers


def settle(use_pg: bool) -> None:
    """Let Postgres flush earlier loads (2 cores: background writes would skew any timing)."""
    if use_pg:
        asyncio.run(pg_admin("CHECKPOINT"))
    gc.collect()
    time.sleep(3.0)


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def time_postgis(
    ids: npt.NDArray[np.int64], lat: F64, lon: F64, queries: list[tuple[F64, F64, float]]
) -> list[list[float]]:
    """Load into a fresh table (geography + GiST) and time KNN queries; one list per query set."""
    import asyncpg

    conn = await asyncpg.connect(PG_DSN.rsplit("/", 1)[0] + "/" + SCRATCH_DB)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_points")
        await conn.execute(
            "CREATE TABLE bench_points (volunteer_id bigint primary key, "
            "geog geography(Point, 4326) not null)"
        )
        await conn.execute("CREATE TEMP TABLE stage (volunteer_id bigint, lat float8, lon float8)")
        await conn.copy_records_to_table(
            "stage", records=zip(ids.tolist(), lat.tolist(), lon.tolist(), strict=True)
        )
        await conn.execute(
            "INSERT INTO bench_points SELECT volunteer_id, "
            "ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography FROM stage"
        )
        await conn.execute("CREATE INDEX ON bench_points USING gist (geog)")
        await conn.execute("ANALYZE bench_points")
        stmt = await conn.prepare(
            "SELECT volunteer_id, ST_Distance(geog, p) AS d FROM bench_points, "
            "(SELECT ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography AS p) q "
            "WHERE ST_DWithin(geog, p, $3) ORDER BY geog <-> p LIMIT $4"
        )
        await conn.execute("CHECKPOINT")
        await asyncio.sleep(3.0)
        results = []
        for qlat, qlon, radius in queries:
            for a, b in zip(qlat[:50].tolist(), qlon[:50].tolist(), strict=True):  # warm-up
                await stmt.fetch(a, b, radius, LIMIT)
            out = []
            clock = time.perf_counter_ns
            for a, b in zip(qlat.tolist(), qlon.tolist(), strict=True):
                t0 = clock()
                await stmt.fetch(a, b, radius, LIMIT)
                out.append((clock() - t0) / 1000.0)
            results.append(out)
        return results
    finally:
        await conn.close()


async def persisted_updates(n_rows: int, batch: int) -> float:
    """Rows/s for batched upserts: COPY into a temp stage + INSERT ... ON CONFLICT DO UPDATE."""
    import asyncpg

    conn = await asyncpg.connect(PG_DSN.rsplit("/", 1)[0] + "/" + SCRATCH_DB)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS volunteer_positions (volunteer_id bigint primary key, "
            "lat double precision not null, lon double precision not null, "
            "reported_at timestamptz not null)"
        )
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS positions_stage "
            "(LIKE volunteer_positions) ON COMMIT DELETE ROWS"
        )
        rng = np.random.default_rng(11)
        ids = rng.permutation(n_rows).tolist()
        lat, lon = uniform(n_rows, rng)
        rows = list(zip(ids, lat.tolist(), lon.tolist(), [NOW] * n_rows, strict=True))
        # Populate once so the measured batches are mostly updates, as in production.
        await persist(conn, rows, batch)
        rows = [(i, a + 1e-4, b, NOW + timedelta(seconds=5)) for i, a, b, _ in rows]
        t0 = time.perf_counter()
        await persist(conn, rows, batch)
        return n_rows / (time.perf_counter() - t0)
    finally:
        await conn.close()


async def persist(conn: object, rows: list[tuple[int, float, float, datetime]], batch: int) -> None:
    """One transaction per batch: COPY into the stage, then one upsert statement."""
    for i in range(0, len(rows), batch):
        async with conn.transaction():  # type: ignore[attr-defined]
            await conn.copy_records_to_table("positions_stage", records=rows[i : i + batch])  # type: ignore[attr-defined]
            await conn.execute(  # type: ignore[attr-defined]
                "INSERT INTO volunteer_positions SELECT * FROM positions_stage "
                "ON CONFLICT (volunteer_id) DO UPDATE SET lat = EXCLUDED.lat, "
                "lon = EXCLUDED.lon, reported_at = EXCLUDED.reported_at"
            )


def time_redis(
    ids: npt.NDArray[np.int64], lat: F64, lon: F64, queries: list[tuple[F64, F64, float]]
) -> list[list[float]]:
    """GEOADD everything, then time GEOSEARCH ... BYRADIUS ... ASC COUNT 30."""
    import redis

    r = redis.Redis(host="127.0.0.1", port=6379)
    try:
        r.delete(REDIS_KEY)
        pipe = r.pipeline(transaction=False)
        id_list, lat_list, lon_list = ids.tolist(), lat.tolist(), lon.tolist()
        for i in range(0, len(id_list), 10_000):
            flat: list[float | int] = []
            for vid, a, b in zip(
                id_list[i : i + 10_000],
                lat_list[i : i + 10_000],
                lon_list[i : i + 10_000],
                strict=True,
            ):
                flat += (b, a, vid)
            pipe.execute_command("GEOADD", REDIS_KEY, *flat)
        pipe.execute()
        results = []
        for qlat, qlon, radius in queries:
            out = []
            clock = time.perf_counter_ns
            cmd = r.execute_command
            for a, b in zip(qlat.tolist(), qlon.tolist(), strict=True):
                t0 = clock()
                cmd(
                    "GEOSEARCH",
                    REDIS_KEY,
                    "FROMLONLAT",
                    b,
                    a,
                    "BYRADIUS",
                    radius,
                    "m",
                    "ASC",
                    "COUNT",
                    LIMIT,
                    "WITHDIST",
                )
                out.append((clock() - t0) / 1000.0)
            results.append(out)
        return results
    finally:
        r.delete(REDIS_KEY)
        r.close()


# ---------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="100000,1000000", help="comma-separated volunteer counts"
    )
    parser.add_argument("--queries", type=int, default=2_000, help="queries per scenario")
    parser.add_argument("--skip-postgis", action="store_true")
    parser.add_argument("--skip-redis", action="store_true")
    args = parser.parse_args()
    print_calibration(PG_DSN)
    sizes = [int(s) for s in args.sizes.split(",")]
    use_pg = not args.skip_postgis
    use_redis = not args.skip_redis

    if use_pg:
        asyncio.run(pg_admin(f"DROP DATABASE IF EXISTS {SCRATCH_DB}"))
        asyncio.run(pg_admin(f"CREATE DATABASE {SCRATCH_DB}"))
    rows: list[str] = []
    extra: list[str] = []
    # The first VolunteerIndex() loads the compiled query kernels (numba): a one-off per process,
    # kept out of the per-volunteer figures below.
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    VolunteerIndex()
    how = "numba cache hit" if geoindex_kernels.query.stats.cache_hits else "compiled"
    extra.append(
        f"query kernels: loaded in {time.perf_counter() - t0:.2f} s ({how}), "
        f"RSS +{(rss_bytes() - rss0) / 1e6:.0f} MB once per process"
    )
    try:
        if use_pg:
            asyncio.run(pg_admin_scratch("CREATE EXTENSION IF NOT EXISTS postgis"))
        for n in sizes:
            for dist_name, gen in DISTRIBUTIONS.items():
                rng = np.random.default_rng(42)
                lat, lon = gen(n, rng)
                ids = rng.permutation(n).astype(np.int64) + 1
                ats = [NOW] * n
                qlat, qlon = gen(args.queries, np.random.default_rng(7))
                geoindex_index._TABLES.clear()  # this scenario's cell table only (shared cache)
                gc.collect()
                rss0 = rss_bytes()
                index = VolunteerIndex()
                t0 = time.perf_counter()
                index.bulk_load(ids, lat, lon, ats)
                rebuild_s = time.perf_counter() - t0
                gc.collect()
                per_vol = (rss_bytes() - rss0) / n
                table = index._table
                table_b = table.tab.nbytes + table.ti.nbytes + table.tf.nbytes + table.cells.nbytes
                mem_vol = index_memory_per_volunteer(ids, lat, lon, ats)
                check_exact(index, ids, lat, lon, qlat, qlon)
                queries = [(qlat, qlon, r) for r in RADII]
                settle(use_pg)
                timed = [time_geoindex(index, qlat, qlon, r) for r in RADII]
                ours = [t[0] for t in timed]
                pg = asyncio.run(time_postgis(ids, lat, lon, queries)) if use_pg else None
                if use_redis:
                    settle(use_pg)
                rd = time_redis(ids, lat, lon, queries) if use_redis else None
                for qi, radius in enumerate(RADII):
                    o50, o99 = pct(ours[qi])
                    peers = {}
                    if pg is not None:
                        peers["postgis"] = pct(pg[qi])
                    if rd is not None:
                        peers["redis"] = pct(rd[qi])
                    best99 = min((p[1] for p in peers.values()), default=float("nan"))
                    line = f"{n:>9,} {dist_name:<9} {radius:>6.0f} | geoindex {o50:7.1f} {o99:7.1f}"
                    for name in ("postgis", "redis"):
                        if name in peers:
                            line += f" | {name} {peers[name][0]:7.1f} {peers[name][1]:7.1f}"
                        else:
                            line += f" | {name} {'-':>7} {'-':>7}"
                    line += f" | best-peer/geoindex p99 {best99 / o99:5.1f}x | gc {timed[qi][1]}"
                    rows.append(line)
                # Updates: move 200k random volunteers by a few metres (some change cells).
                m = min(n, 200_000)
                upd = rng.integers(0, n, m)
                ulat = (lat[upd] + rng.normal(0, 2e-4, m)).clip(LAT0, LAT1).tolist()
                ulon = (lon[upd] + rng.normal(0, 3e-4, m)).clip(LON0, LON1).tolist()
                uid = ids[upd].tolist()
                at = NOW + timedelta(seconds=1)
                upsert = index.upsert
                gc.collect()
                t0 = time.perf_counter()
                for vid, a, b in zip(uid, ulat, ulon, strict=True):
                    upsert(vid, a, b, at=at)
                ups = m / (time.perf_counter() - t0)
                extra.append(
                    f"{n:>9,} {dist_name:<9} | bulk_load {rebuild_s:6.2f} s | "
                    f"index memory {mem_vol:5.0f} B/volunteer (tracemalloc) + cell table "
                    f"{table_b / n:3.0f} B/volunteer ({table.n:,} cells, shared) | "
                    f"RSS delta {per_vol:5.0f} B/volunteer | in-memory upserts {ups:>9,.0f}/s"
                )
                del index
                gc.collect()
        if use_pg:
            pg_rows = 200_000
            rate = asyncio.run(persisted_updates(pg_rows, 10_000))
            extra.append(
                "persisted updates (asyncpg COPY -> temp stage -> INSERT ON CONFLICT, 10,000-row "
                f"batches, {pg_rows:,} rows into volunteer_positions): {rate:,.0f} rows/s"
            )
    finally:
        if use_pg:
            asyncio.run(pg_admin(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)"))

    print(
        f"nearest(limit={LIMIT}), {args.queries} queries per row, client wall time in us (p50 p99)"
    )
    print(
        "peers include a loopback round trip (PostGIS: prepared statement, one asyncpg connection,"
    )
    print("geography + GiST, ST_DWithin + ORDER BY <->; Redis: GEOSEARCH BYRADIUS ASC COUNT 30)")
    print("geoindex: garbage collector enabled; gc = collections during the row's timed loop")
    print(f"{'size':>9} {'dist':<9} {'radius':>6} | {'engine':8} {'p50':>7} {'p99':>7} | ...")
    for line in rows:
        print(line)
    print()
    for line in extra:
        print(line)


async def _scratch_exec(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN.rsplit("/", 1)[0] + "/" + SCRATCH_DB)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_admin_scratch(sql: str) -> object:
    """Run one statement in the scratch database."""
    return _scratch_exec(sql)


if __name__ == "__main__":
    main()
