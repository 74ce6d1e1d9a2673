"""The log provider: every message in its file, only a bounded recent window in memory."""

from __future__ import annotations

import json
from pathlib import Path

from notify.log import LogNotifier
from notify.ports import DeliveryOutcome
from tests.notify.conftest import make_alert


async def test_memory_keeps_a_recent_window_and_the_file_keeps_everything(
    tmp_path: Path,
) -> None:
    record = tmp_path / "sent.jsonl"
    notifier = LogNotifier(record, recent=50)
    for n in range(300):
        result = await notifier.send(make_alert(alert_id=f"al-{n}"), timeout_s=5)
        assert result.outcome is DeliveryOutcome.ACCEPTED
    assert [m.alert_id for m in notifier.sent] == [f"al-{n}" for n in range(250, 300)]
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [line["alert_id"] for line in lines] == [f"al-{n}" for n in range(300)]
