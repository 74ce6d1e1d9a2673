"""Driving the feed poller of a running app from a test: make a feed due, wait for its poll."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg


async def poll_now(db: asyncpg.Connection, feed_id: int, timeout_s: float = 10.0) -> Any:
    """Make the feed due now, wait until the poller has recorded a poll; the feed's row."""
    before = await db.fetchval("SELECT last_poll_at FROM cad_feeds WHERE id = $1", feed_id)
    await db.execute(
        "UPDATE cad_feeds SET next_poll_at = now() - interval '1 second' WHERE id = $1", feed_id
    )
    async with asyncio.timeout(timeout_s):
        while True:
            row = await db.fetchrow(
                "SELECT *, next_poll_at > now() AS scheduled FROM cad_feeds WHERE id = $1", feed_id
            )
            polled = row["last_poll_at"]
            if row["scheduled"] and polled is not None and (before is None or polled > before):
                return row
            await asyncio.sleep(0.02)


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text page (0 when absent)."""
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(label_text) + r"\}" if labels else "")
    match = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
