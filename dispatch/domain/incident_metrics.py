"""Per-incident response metrics, computed from the response log (the log is the data)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_EMS_ON_SCENE = frozenset({"on_scene", "patient_contact"})


@dataclass(frozen=True, slots=True)
class IncidentMetrics:
    received_at: datetime
    first_alert_sent_at: datetime | None
    first_accept_at: datetime | None
    first_volunteer_on_scene_at: datetime | None
    first_ems_on_scene_at: datetime | None

    @staticmethod
    def _since(start: datetime, end: datetime | None) -> float | None:
        return round((end - start).total_seconds(), 3) if end is not None else None

    @property
    def volunteer_before_ems(self) -> bool | None:
        """None while either has not arrived (unknown, not "no")."""
        if self.first_volunteer_on_scene_at is None or self.first_ems_on_scene_at is None:
            return None
        return self.first_volunteer_on_scene_at < self.first_ems_on_scene_at

    def to_json(self) -> dict[str, Any]:
        lead = None
        if self.first_volunteer_on_scene_at and self.first_ems_on_scene_at:
            lead = self._since(self.first_volunteer_on_scene_at, self.first_ems_on_scene_at)
        stamp = {
            "received_at": self.received_at,
            "first_alert_sent_at": self.first_alert_sent_at,
            "first_accept_at": self.first_accept_at,
            "first_volunteer_on_scene_at": self.first_volunteer_on_scene_at,
            "first_ems_on_scene_at": self.first_ems_on_scene_at,
        }
        return {
            **{k: v.isoformat() if v else None for k, v in stamp.items()},
            "seconds_to_first_alert_sent": self._since(self.received_at, self.first_alert_sent_at),
            "seconds_to_first_accept": self._since(self.received_at, self.first_accept_at),
            "seconds_to_first_volunteer_on_scene": self._since(
                self.received_at, self.first_volunteer_on_scene_at
            ),
            "seconds_to_first_ems_on_scene": self._since(
                self.received_at, self.first_ems_on_scene_at
            ),
            "volunteer_before_ems": self.volunteer_before_ems,
            "volunteer_lead_seconds": lead,
        }


def compute(
    received_at: datetime, events: Iterable[tuple[str, datetime, Mapping[str, Any]]]
) -> IncidentMetrics:
    """``events`` are (event name, time, details) rows of one incident's response log."""
    firsts: dict[str, datetime] = {}

    def first(name: str, at: datetime) -> None:
        if name not in firsts or at < firsts[name]:
            firsts[name] = at

    for name, at, details in events:
        if name == "alert_sent":
            first("sent", at)
        elif name == "alert_accepted":
            first("accept", at)
        elif name == "alert_on_scene":
            first("volunteer", at)
        elif name == "unit_status" and details.get("status") in _EMS_ON_SCENE:
            first("ems", at)
    return IncidentMetrics(
        received_at=received_at,
        first_alert_sent_at=firsts.get("sent"),
        first_accept_at=firsts.get("accept"),
        first_volunteer_on_scene_at=firsts.get("volunteer"),
        first_ems_on_scene_at=firsts.get("ems"),
    )
