"""Driving the feed poller of a running app from a test: make a feed due, wait for its poll."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from tests.dispatch.helpers import wait_until


async def poll_now(db: asyncpg.Connection, feed_id: int, timeout_s: float = 10.0) -> Any:
    """Make the feed due now, wait until the poller has recorded a poll; the feed's row."""
    before = await db.fetchval("SELECT last_poll_at FROM cad_feeds WHERE id = $1", feed_id)
    await db.execute(
        "UPDATE cad_feeds SET next_poll_at = now() - interval '1 second' WHERE id = $1", feed_id
    )

    async def polled() -> asyncpg.Record | None:
        row = await db.fetchrow(
            "SELECT *, next_poll_at > now() AS scheduled FROM cad_feeds WHERE id = $1", feed_id
        )
        if row is None:
            return None
        last = row["last_poll_at"]
        done = row["scheduled"] and last is not None and (before is None or last > before)
        return row if done else None

    return await wait_until(polled, timeout_s=timeout_s, what=f"feed {feed_id} polled")


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text page (0 when absent)."""
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(label_text) + r"\}" if labels else "")
    match = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
