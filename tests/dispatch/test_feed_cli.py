"""``dispatch feed add|list``, run as an operator would, against a live local feed: a mapping
is checked against a sample before it is stored, and ``--dry-run`` shows what it gives."""

from __future__ import annotations

import json

import asyncpg
import pytest

from tests.cad_adapters.feed_fixtures import DALLAS, feed_fixture
from tests.dispatch.serve_process import dispatch_cli
from tests.fakes.feed_server import FeedServer, serving

pytestmark = pytest.mark.slow


async def _cli(database_url: str, *args: str) -> tuple[int, str, str]:
    done = await dispatch_cli({"DATABASE_URL": database_url}, *args)
    return done.returncode, done.stdout, done.stderr


async def test_feed_add_checks_the_mapping_against_a_sample(
    database_url: str, db: asyncpg.Connection
) -> None:
    """A path that matches nothing in the live document is refused with the reason and
    nothing is stored; --dry-run prints each incident as mapped and stores nothing; a
    fitting mapping (or a ready one) is stored and listed with its health."""
    agency = await db.fetchval("INSERT INTO agencies (id, name) VALUES (gen_random_uuid(), 'A')"
                               " RETURNING id::text")  # fmt: skip
    document = feed_fixture("dallas_active_calls.json")
    document["meta"] = document.pop("summary")
    fake = FeedServer(document=document)
    async with serving(fake) as url:
        base = ("feed", "add", "--agency", agency, "--name", "dallas", "--url", url)
        code, _, err = await _cli(database_url, *base, "--mapping", json.dumps(DALLAS))
        assert code == 1
        assert (
            "document_time: path '$.summary.generated_at' matches nothing in the sample document"
        ) in err
        assert "every one of the sample's 3 items is refused" in err
        assert await db.fetchval("SELECT count(*) FROM cad_feeds") == 0

        fake.document = feed_fixture("dallas_active_calls.json")
        dry = ("--mapping", json.dumps(DALLAS), "--dry-run")
        code, out, err = await _cli(database_url, *base, *dry)
        assert code == 0, err
        shown = json.loads(out)
        assert [(i["id"], i["received_at_from"], i["lat"]) for i in shown["incidents"]] == [
            ("26-0210001", "document", None),
            ("26-0210002", "document", None),
            ("26-0210003", "document", None),
        ]
        assert shown["incidents"][0]["received_at"] == "2026-11-26T15:30:00+00:00"
        assert (shown["refused"], shown["problems"]) == ([], [])
        assert await db.fetchval("SELECT count(*) FROM cad_feeds") == 0

        code, out, err = await _cli(database_url, *base, "--mapping", json.dumps(DALLAS))
        assert code == 0, err
        assert out.startswith("feed_id: ")
        code, _, err = await _cli(database_url, *base, "--mapping", json.dumps(DALLAS))
        assert (code, "already has a feed named 'dallas'" in err) == (1, True)

        fake.document = feed_fixture("pulsepoint_incidents.json")
        pulse = ("feed", "add", "--agency", agency, "--name", "pp", "--url", url)
        code, out, err = await _cli(database_url, *pulse, "--template", "pulsepoint")
        assert code == 0, err
        code, _, err = await _cli(
            database_url, *pulse, "--template", "pulsepoint", "--mapping",
            '{"fields": {"lat": "Lattitude"}}',
        )  # fmt: skip
        assert code == 1
        assert "fields/lat: path 'Lattitude' matches nothing in the sample's 3 items" in err

    stored = await db.fetch("SELECT name, mapping FROM cad_feeds ORDER BY name")
    assert [(r["name"], r["mapping"].get("template")) for r in stored] == [
        ("dallas", None),
        ("pp", "pulsepoint"),
    ]
    code, out, err = await _cli(database_url, "feed", "list", "--agency", agency)
    assert code == 0, err
    assert [line.split("\t")[:2] for line in out.splitlines()] == [
        ["dallas", "PENDING"],
        ["pp", "PENDING"],
    ]
