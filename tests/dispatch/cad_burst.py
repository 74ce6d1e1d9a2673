"""CAD clients posting new incidents one after another, spread over servers like a balancer.

Drills (a rolling restart, a database restart) run one of these while they break something
and then check what every client was told: a post a server refused or reset goes to the
next server, as HAProxy's ``option redispatch`` would send it; intake is idempotent by
source id, so sending a document again is safe. Each answer is kept for the checks.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg

from tests.dispatch.helpers import incident, offset, wait_until

NO_SERVER = 0
"""The status noted when every server refused the connection."""
TIMED_OUT = -1
"""The status noted when a server took longer than the client's timeout to answer."""


@dataclass(frozen=True)
class Answer:
    source_id: str
    base: str
    """The server that answered ("" when none did)."""
    status: int
    retry_after: str | None
    content_type: str
    body: Any


class CadBurst:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        bases: Callable[[], Sequence[str]],
        agency_id: str,
        key: str,
        sites: Sequence[tuple[float, float]],
        *,
        prefix: str,
        timeout_s: float = 10.0,
        pause_s: float = 0.05,
    ) -> None:
        self._session = session
        self._bases = bases
        self._url = f"/v1/cad/{agency_id}/incidents"
        self._headers = {"Authorization": f"Bearer {key}"}
        self._sites = sites
        self._prefix = prefix
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._pause_s = pause_s
        self._turn = 0
        self._stop = asyncio.Event()
        self._answered = asyncio.Condition()
        self.answers: list[Answer] = []

    def statuses(self) -> list[int]:
        return [a.status for a in self.answers]

    def accepted(self) -> dict[str, Answer]:
        """Each source id a server took (2xx), with its first 2xx answer."""
        taken: dict[str, Answer] = {}
        for answer in self.answers:
            if 200 <= answer.status < 300 and answer.source_id not in taken:
                taken[answer.source_id] = answer
        return taken

    async def wait_for(self, what: str, check: Callable[[], bool], timeout_s: float = 30) -> None:
        """Until ``check()`` holds after some answer; fails naming ``what``."""
        try:
            async with asyncio.timeout(timeout_s), self._answered:
                await self._answered.wait_for(check)
        except TimeoutError:
            seen = sorted(set(self.statuses()))
            raise AssertionError(
                f"{what}: not seen within {timeout_s} s ({len(self.answers)} answers,"
                f" statuses {seen})"
            ) from None

    async def more(self, n: int, status: int = 202, timeout_s: float = 30) -> None:
        """Wait for ``n`` more answers with ``status``."""
        want = self.statuses().count(status) + n
        await self.wait_for(
            f"{n} more answers {status}",
            lambda: self.statuses().count(status) >= want,
            timeout_s,
        )

    async def answered_by(self, base: str, timeout_s: float = 30) -> None:
        """Wait until ``base`` answers a post sent from now on (back in the rotation)."""
        since = len(self.answers)
        await self.wait_for(
            f"{base} answering",
            lambda: any(a.base == base for a in self.answers[since:]),
            timeout_s,
        )

    @asynccontextmanager
    async def running(self, clients: int = 2) -> AsyncIterator[CadBurst]:
        tasks = [asyncio.create_task(self._client(n)) for n in range(clients)]
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)

    async def _client(self, n: int) -> None:
        sent = 0
        while not self._stop.is_set():
            source_id = f"{self._prefix}-{n}-{sent}"
            lat, lon = self._sites[sent % len(self._sites)]
            doc = incident(source_id, location={"lat": lat, "lon": lon})
            sent += 1
            answer = await self._balanced(source_id, doc)
            async with self._answered:
                self.answers.append(answer)
                self._answered.notify_all()
            # Steady load rather than saturation: processes restarting need the CPU too.
            # (A real client would wait Retry-After after a 503; the drill stays brief.)
            await asyncio.sleep(self._pause_s)

    async def _balanced(self, source_id: str, doc: dict[str, Any]) -> Answer:
        bases = list(self._bases())
        self._turn += 1
        for k in range(len(bases)):
            base = bases[(self._turn + k) % len(bases)]
            try:
                return await self._post(base, source_id, doc)
            except TimeoutError:
                # Before ClientConnectionError: aiohttp's read timeouts are both.
                return Answer(source_id, base, TIMED_OUT, None, "", None)
            except aiohttp.ClientConnectionError:
                continue  # refused, or closed before an answer: the next server
        return Answer(source_id, "", NO_SERVER, None, "", None)

    async def _post(self, base: str, source_id: str, doc: dict[str, Any]) -> Answer:
        async with self._session.post(
            f"{base}{self._url}", json=doc, headers=self._headers, timeout=self._timeout
        ) as resp:
            text = await resp.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = text  # kept as it came, for the failure message
            return Answer(
                source_id,
                base,
                resp.status,
                resp.headers.get("Retry-After"),
                resp.headers.get("Content-Type", ""),
                body,
            )


async def place_volunteers(
    conn: asyncpg.Connection, agency_id: UUID, sites: Sequence[tuple[float, float]]
) -> list[set[int]]:
    """Two volunteers 50 and 150 m north of each site, written straight to the tables (a
    running process learns them from the change feed); each site's set of ids."""
    placed: list[set[int]] = []
    for lat, lon in sites:
        near = set()
        for north in (50, 150):
            vid = await conn.fetchval(
                "INSERT INTO volunteers (agency_id, display_name, token_hash, certified_until)"
                " VALUES ($1, 'V', gen_random_uuid()::text::bytea, now() + interval '1 year')"
                " RETURNING id",
                agency_id,
            )
            vlat, vlon = offset(lat, lon, north, 0)
            await conn.execute(
                "INSERT INTO volunteer_positions (volunteer_id, agency_id, lat, lon,"
                " reported_at) VALUES ($1, $2, $3, $4, now())",
                vid,
                agency_id,
                vlat,
                vlon,
            )
            near.add(vid)
        placed.append(near)
    return placed


async def alerted_once_each(
    conn: asyncpg.Connection,
    burst: CadBurst,
    sent_alert_ids: Callable[[], Iterable[str]],
    *,
    like: str,
) -> dict[str, set[str]]:
    """Check what the burst's incidents (source ids ``LIKE like``) led to, once every alert
    step is done: each incident answered 2xx is stored as created, with the alerts its
    answer counted (at least one), and each of their alerts is among ``sent_alert_ids()``
    (the alert id of every line the log providers wrote) exactly once. Returns each stored
    incident's alert ids."""

    async def outbox_done() -> bool:
        return not await conn.fetchval("SELECT count(*) FROM outbox WHERE done_at IS NULL")

    await wait_until(outbox_done, timeout_s=30, what="every alert step finished")
    rows = await conn.fetch(
        "SELECT i.source_incident_id, a.id::text AS alert_id"
        " FROM incidents i LEFT JOIN alerts a ON a.incident_id = i.id"
        " WHERE i.source_incident_id LIKE $1",
        like,
    )
    alerts_of: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        alerts_of[row["source_incident_id"]].update([row["alert_id"]] if row["alert_id"] else [])
    for source_id, answer in burst.accepted().items():
        assert answer.body["status"] == "created", answer
        assert len(alerts_of[source_id]) == answer.body["alerts_queued"] >= 1, source_id
    made = set().union(*alerts_of.values())
    per_alert = Counter(alert for alert in sent_alert_ids() if alert in made)
    assert set(per_alert) == made, "every alert sent"
    twice = {alert: n for alert, n in per_alert.items() if n > 1}
    assert not twice, f"sent more than once: {twice}"
    return alerts_of
