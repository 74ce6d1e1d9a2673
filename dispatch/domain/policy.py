"""An agency's alert policy: how many volunteers, how far, in which waves, until when.

Defaults and the evidence behind them (``shared/notes/domain.md`` §3–5):

* first wave 7 volunteers within 500 m — the only evaluated phased policy (NZ
  simulation) alerts 7 of 30 within 1 km and replaces each decliner; 500 m is the
  common urban radius (GoodSAM NSW/SCAS, Ringh RCT, SMS-livräddare regional);
* a second wave at 60 s widens to 1,300 m (SAMBA trial radius) for up to 15 in all;
* target 3 accepted responders (GoodSAM's 3 nearest; Region der Lebensretter's
  2 to the patient + 1 via an AED; PulsePoint's ~3.4 per event);
* at most 30 alerted in all (SMS-livräddare and HartslagNu caps; over-alerting
  drives churn: ~16 per event and 7,317 deregistrations in Denmark);
* no new alerts 10 minutes after the call (a volunteer arriving later rarely beats EMS;
  median volunteer walk 956 m in 6.2 min);
* a volunteer silent for 90 s counts as not coming and is replaced (``not_coming_after_s``;
  longer than the delivery chain's last step, see :func:`check_answer_windows`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from dispatch.domain.field_error import FieldError


class PolicyError(FieldError):
    """An alert policy document refused at a field."""


@dataclass(frozen=True, slots=True)
class Wave:
    """From ``after_s`` seconds after the call, keep up to ``live`` volunteers alerted within
    ``radius_m`` (alerted and not yet declined, timed out or cancelled)."""

    after_s: float
    radius_m: float
    live: int


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    waves: tuple[Wave, ...] = (Wave(0, 500, 7), Wave(60, 1300, 15))
    target_accepted: int = 3
    max_alerted: int = 30
    stop_after_s: float = 600
    not_coming_after_s: float = 90
    """Silent this long after being alerted counts as not coming (the slot is refilled)."""
    replace_declined: bool = True
    lay_unknown_place: bool = False
    """Whether lay responders may go where the place type is unknown (default: public only)."""
    stand_down_on_ems_on_scene: bool = False
    aed_radius_m: float = 500
    """AEDs searched around the patient (HartslagNu's AED circle)."""
    aed_max_detour_m: float = 300
    """Longest extra walk to fetch an AED (about 2 min at the median 2.3 m/s)."""
    version: int = 1

    def __post_init__(self) -> None:
        validate(self)

    def wave_at(self, elapsed_s: float) -> int:
        """Index of the wave in force ``elapsed_s`` after the call."""
        current = 0
        for index, wave in enumerate(self.waves):
            if wave.after_s <= elapsed_s:
                current = index
        return current

    def to_json(self) -> dict[str, Any]:
        return {
            "waves": [
                {"after_s": w.after_s, "radius_m": w.radius_m, "live": w.live} for w in self.waves
            ],
            "target_accepted": self.target_accepted,
            "max_alerted": self.max_alerted,
            "stop_after_s": self.stop_after_s,
            "not_coming_after_s": self.not_coming_after_s,
            "replace_declined": self.replace_declined,
            "lay_unknown_place": self.lay_unknown_place,
            "stand_down_on_ems_on_scene": self.stand_down_on_ems_on_scene,
            "aed_radius_m": self.aed_radius_m,
            "aed_max_detour_m": self.aed_max_detour_m,
        }


def validate(policy: AlertPolicy) -> None:
    if not 1 <= len(policy.waves) <= 10:
        raise PolicyError("/waves", "must hold 1 to 10 waves")
    previous: Wave | None = None
    for i, wave in enumerate(policy.waves):
        here = f"/waves/{i}"
        for name, value, low, high in (
            ("after_s", wave.after_s, 0, 3600),
            ("radius_m", wave.radius_m, 50, 20_000),
            ("live", wave.live, 1, 100),
        ):
            if not math.isfinite(value) or not low <= value <= high:
                raise PolicyError(f"{here}/{name}", f"must be between {low} and {high}")
        if previous is None and wave.after_s != 0:
            raise PolicyError(f"{here}/after_s", "the first wave starts at 0")
        if previous is not None:
            if wave.after_s <= previous.after_s:
                raise PolicyError(f"{here}/after_s", "waves must start later than the one before")
            if wave.radius_m < previous.radius_m:
                raise PolicyError(f"{here}/radius_m", "a wave never narrows the radius")
            if wave.live < previous.live:
                raise PolicyError(f"{here}/live", "a wave never alerts fewer than the one before")
        previous = wave
    for name, value, low, high in (
        ("target_accepted", policy.target_accepted, 1, 20),
        ("max_alerted", policy.max_alerted, 1, 200),
        ("stop_after_s", policy.stop_after_s, 30, 7200),
        ("not_coming_after_s", policy.not_coming_after_s, 10, 1800),
        ("aed_radius_m", policy.aed_radius_m, 0, 5000),
        ("aed_max_detour_m", policy.aed_max_detour_m, 0, 5000),
    ):
        if not math.isfinite(value) or not low <= value <= high:
            raise PolicyError(f"/{name}", f"must be between {low} and {high}")
    if policy.max_alerted < policy.waves[0].live:
        raise PolicyError("/max_alerted", "must be at least the first wave's size")


def _number(data: Mapping[str, Any], name: str, pointer: str, *, integer: bool) -> Any:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"{pointer}/{name}", "must be a number")
    # JSON does not tell 5 from 5.0 (nor does JSON Schema's "integer"): both are whole.
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise PolicyError(f"{pointer}/{name}", "must be an integer")
    return value


_OLD_NOT_COMING: Final = "answer_timeout_s"
"""Still read (documents stored or written before the rename), never written."""


def check_answer_windows(
    *, not_coming_after_s: float, push_ack_timeout_s: float, next_channel_after_s: float
) -> str | None:
    """Why the policy's and the delivery chain's windows contradict each other, or None.

    The chain's last step (a call, at the latest after the live stream's and the push's
    receipt windows and one text window) must be due before the volunteer counts as not
    coming: otherwise a volunteer is replaced while the chain is still trying to reach
    them, and the call goes out for a slot already given to someone else.
    """
    last_step_s = last_step_due_s(
        push_ack_timeout_s=push_ack_timeout_s, next_channel_after_s=next_channel_after_s
    )
    if not_coming_after_s <= last_step_s:
        return (
            f"not_coming_after_s ({not_coming_after_s:g} s) must be longer than the delivery"
            f" chain's last step: 2 × push_ack_timeout_s + next_channel_after_s ="
            f" 2 × {push_ack_timeout_s:g} + {next_channel_after_s:g} = {last_step_s:g} s"
        )
    return None


def last_step_due_s(*, push_ack_timeout_s: float, next_channel_after_s: float) -> float:
    """When the chain's last step is due at the latest, from the alert: a live stream's
    receipt window, then the push's (both ``push_ack_timeout_s``), then one text window."""
    return 2 * push_ack_timeout_s + next_channel_after_s


def answer_window_s(
    policy: AlertPolicy, *, push_ack_timeout_s: float, next_channel_after_s: float
) -> float:
    """How long a silent volunteer keeps their slot under ``policy`` and these windows.

    ``not_coming_after_s`` when it is longer than the chain (the admin paths refuse any
    other change); otherwise, for settings stored before the two were checked against
    each other and incidents on an older policy version, the chain's last step plus one
    answer window: nobody is counted as not coming while a step is still due.
    """
    last_step_s = last_step_due_s(
        push_ack_timeout_s=push_ack_timeout_s, next_channel_after_s=next_channel_after_s
    )
    if policy.not_coming_after_s > last_step_s:
        return policy.not_coming_after_s
    return last_step_s + next_channel_after_s


def policy_from_json(data: Any, *, version: int = 1) -> AlertPolicy:
    """Read and validate a policy document (admin API, CLI, the database); names bad fields."""
    if not isinstance(data, Mapping):
        raise PolicyError("", "must be an object")
    if _OLD_NOT_COMING in data:
        if "not_coming_after_s" in data:
            raise PolicyError(
                f"/{_OLD_NOT_COMING}", "is the old name of not_coming_after_s: give one"
            )
        data = {**data, "not_coming_after_s": data[_OLD_NOT_COMING]}
        del data[_OLD_NOT_COMING]
    known = set(AlertPolicy().to_json())
    unknown = sorted(set(data) - known)
    if unknown:
        raise PolicyError(f"/{unknown[0]}", "is not a known field")
    defaults = AlertPolicy()
    kwargs: dict[str, Any] = {"version": version}
    if "waves" in data:
        waves = data["waves"]
        if not isinstance(waves, list):
            raise PolicyError("/waves", "must be a list")
        parsed = []
        for i, wave in enumerate(waves):
            if not isinstance(wave, Mapping) or set(wave) != {"after_s", "radius_m", "live"}:
                raise PolicyError(f"/waves/{i}", "must be {after_s, radius_m, live}")
            parsed.append(
                Wave(
                    float(_number(wave, "after_s", f"/waves/{i}", integer=False)),
                    float(_number(wave, "radius_m", f"/waves/{i}", integer=False)),
                    int(_number(wave, "live", f"/waves/{i}", integer=True)),
                )
            )
        kwargs["waves"] = tuple(parsed)
    for name in ("target_accepted", "max_alerted"):
        if name in data:
            kwargs[name] = int(_number(data, name, "", integer=True))
    for name in ("stop_after_s", "not_coming_after_s", "aed_radius_m", "aed_max_detour_m"):
        if name in data:
            kwargs[name] = float(_number(data, name, "", integer=False))
    for name in ("replace_declined", "lay_unknown_place", "stand_down_on_ems_on_scene"):
        if name in data:
            if not isinstance(data[name], bool):
                raise PolicyError(f"/{name}", "must be true or false")
            kwargs[name] = data[name]
    merged = {**{k: getattr(defaults, k) for k in kwargs if k != "version"}, **kwargs}
    return AlertPolicy(**merged)
