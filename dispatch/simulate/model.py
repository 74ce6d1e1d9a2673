"""The behaviour model: what alerted volunteers and EMS do, each default with its source.

Every number here is overridable (``dispatch simulate --set name=value``) and every
default names where it comes from, so a report can say what it assumed. Sources are
the figures in ``shared/notes/domain.md`` (§3 parameter table, §5 outcomes); the few
with no published figure say so (``ASSUMED``) rather than pretend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

ASSUMED: Final = "assumption: no published figure found"

# Periods of Mottlau et al. (JAHA 2022), by the local hour the call came in.
DAY_HOURS: Final = range(8, 16)
EVENING_HOURS: Final = range(16, 24)


def period(hour: int) -> str:
    """``day`` (08–16), ``evening`` (16–24) or ``night`` (00–08) for a local hour."""
    if hour in DAY_HOURS:
        return "day"
    if hour in EVENING_HOURS:
        return "evening"
    return "night"


# Mean accepting volunteers per OHCA by period (Mottlau 2022): day 3.7, evening 4.8, night 1.8;
# the review's 28.7 % median acceptance is spread over the periods in that ratio (equal weight).
_ACCEPTING = {"day": 3.7, "evening": 4.8, "night": 1.8}
_REVIEW_ACCEPTANCE = 0.287


def _acceptance(name: str) -> float:
    mean = sum(_ACCEPTING.values()) / len(_ACCEPTING)
    return round(_REVIEW_ACCEPTANCE * _ACCEPTING[name] / mean, 4)


_ACCEPT_SOURCE = (
    "28.7% median acceptance (Scquizzato et al., Resuscitation 2020;152:16-25) split by the "
    "day/evening/night ratio of accepting volunteers per OHCA, 3.7/4.8/1.8 (Mottlau et al., "
    "JAHA 2022)"
)
_SPEED_SOURCE = (
    "median 2.3 m/s, IQR 1.4-4.0, as a log-normal (GPS study of 2,176 Swedish lay responders, "
    "Resuscitation 2020)"
)
_TURNOUT_SOURCE = (
    "alert to departure: median 1:42 by day, 2:22 at night (Ganter et al., 'Turnout time in "
    "smartphone alerting systems', Resuscitation 2025, doi 10.1016/j.resuscitation.2025.110772; "
    "not in domain.md)"
)


@dataclass(frozen=True, slots=True)
class Behaviour:
    """Per alerted volunteer: answer or not, how fast, how they travel; and EMS when unknown."""

    accept_day: float = _acceptance("day")
    accept_evening: float = _acceptance("evening")
    accept_night: float = _acceptance("night")
    unseen: float = round(1 - 0.756, 3)
    """Share of alerts never seen (no answer: they time out)."""
    answer_median_s: float = 30.0
    answer_sigma: float = 0.8
    turnout_day_s: float = 102.0
    turnout_night_s: float = 142.0
    turnout_sigma: float = 0.5
    speed_median_mps: float = 2.3
    speed_sigma: float = round(math.log(4.0 / 1.4) / (2 * 0.6745), 3)
    route_factor: float = 1.0
    aed_pickup_s: float = 60.0
    dropout: float = round(1 - 27.1 / 37.7, 3)
    """Share of accepting volunteers who never arrive (they cancel on the way)."""
    ems_median_s: float = 491.0
    ems_sigma: float = 0.35
    alert_delay_s: float = 0.0
    """Call received to volunteers alerted, where the source has no dispatch time."""
    busy_after_ems_s: float = 900.0
    """How long a responder stays busy (not alerted elsewhere) after EMS arrive."""
    availability: tuple[float, ...] = (1.0,) * 24
    """Share of the population with the app on and a fresh position, by local hour."""
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        for name in ("accept_day", "accept_evening", "accept_night"):
            if getattr(self, name) + self.unseen > 1.0:
                raise ValueError(f"{name} + unseen must not exceed 1")
        for name in _POSITIVE:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if len(self.availability) != 24 or not all(0.0 <= a <= 1.0 for a in self.availability):
            raise ValueError("availability must hold 24 shares between 0 and 1")

    def acceptance(self, hour: int) -> float:
        return float(getattr(self, f"accept_{period(hour)}"))

    def turnout_median_s(self, hour: int) -> float:
        return self.turnout_night_s if period(hour) == "night" else self.turnout_day_s

    def source_of(self, name: str) -> str:
        return self.sources.get(name) or DEFAULT_SOURCES[name]

    def with_overrides(self, values: Mapping[str, Any], source: str) -> Behaviour:
        """A copy with ``values`` set; each changed parameter's source becomes ``source``."""
        known = {f.name for f in fields(self)} - {"sources"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown behaviour parameter {unknown[0]!r}")
        converted: dict[str, Any] = {}
        for name, value in values.items():
            if name == "availability" and isinstance(value, int | float):
                converted[name] = (float(value),) * 24
            elif name == "availability":
                converted[name] = tuple(float(v) for v in value)
            else:
                converted[name] = float(value)
        sources = {**self.sources, **dict.fromkeys(values, source)}
        return replace(self, **converted, sources=sources)

    def describe(self) -> list[dict[str, Any]]:
        """Every parameter, its value and its source (for the report)."""
        out = []
        for f in fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            if f.name == "availability":
                value = list(value)
            out.append({"name": f.name, "value": value, "source": self.source_of(f.name)})
        return out


_PROBABILITIES: Final = ("accept_day", "accept_evening", "accept_night", "unseen", "dropout")
_POSITIVE: Final = (
    "answer_median_s",
    "answer_sigma",
    "turnout_day_s",
    "turnout_night_s",
    "turnout_sigma",
    "speed_median_mps",
    "speed_sigma",
    "route_factor",
    "ems_median_s",
    "ems_sigma",
)

DEFAULT_SOURCES: Final[Mapping[str, str]] = {
    "accept_day": _ACCEPT_SOURCE,
    "accept_evening": _ACCEPT_SOURCE,
    "accept_night": _ACCEPT_SOURCE,
    "unseen": "alert seen in 75.6% (Haskins et al., Resuscitation 2021;169:67-75)",
    "answer_median_s": f"{ASSUMED}; answers after the policy's answer window are lost",
    "answer_sigma": ASSUMED,
    "turnout_day_s": _TURNOUT_SOURCE,
    "turnout_night_s": _TURNOUT_SOURCE,
    "turnout_sigma": ASSUMED,
    "speed_median_mps": _SPEED_SOURCE,
    "speed_sigma": _SPEED_SOURCE,
    "route_factor": (
        f"{ASSUMED}; 1.0 takes the GPS study's speeds as straight-line speeds "
        "(its median trip: 956 m in 6.2 min)"
    ),
    "aed_pickup_s": (
        f"{ASSUMED}; 51% had trouble retrieving the AED (Scholten et al., Resuscitation 2011)"
    ),
    "dropout": "accepted 37.7%, arrived 27.1% (Haskins et al., Resuscitation 2021)",
    "ems_median_s": (
        "EMS on scene at a median 8:11 (Stockholm 2018-20, Resuscitation 2023, doi "
        "10.1016/j.resuscitation.2023.109921); used only where the incidents carry no EMS time"
    ),
    "ems_sigma": ASSUMED,
    "alert_delay_s": (
        "PulsePoint alerts at the same time as the EMS dispatch (domain.md 2.1): the source's "
        "dispatch time when it has one, else this delay after the call"
    ),
    "busy_after_ems_s": (
        f"{ASSUMED}; until the CAD closes the incident and releases them (the handover "
        "itself is immediate: GoodSAM code of conduct)"
    ),
    "availability": (
        f"{ASSUMED}; the density counts volunteers with the app on and a fresh position"
    ),
}
