"""The alert state machine.

States follow one alert to one volunteer for one incident. Transitions not in
:data:`TRANSITIONS` are refused; repeating the transition that produced the
current state is accepted as a no-op, because phones retry on flaky networks.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final


class AlertState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    ACCEPTED = "accepted"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    RELEASED = "released"
    DECLINED = "declined"
    TIMED_OUT = "timed_out"
    STOOD_DOWN = "stood_down"
    CANCELLED = "cancelled"
    FAILED = "failed"


class AlertEvent(StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    ACCEPT = "accept"
    DECLINE = "decline"
    DEPART = "depart"
    ARRIVE = "arrive"
    RELEASE = "release"
    TIME_OUT = "time_out"
    STAND_DOWN = "stand_down"
    CANCEL = "cancel"
    FAIL = "fail"


_S = AlertState
_E = AlertEvent
_WAITING: Final = (_S.QUEUED, _S.SENT, _S.DELIVERED)
_RESPONDING: Final = (_S.ACCEPTED, _S.EN_ROUTE, _S.ON_SCENE)

TRANSITIONS: Final[Mapping[tuple[AlertState, AlertEvent], AlertState]] = {
    (_S.QUEUED, _E.SENT): _S.SENT,
    (_S.QUEUED, _E.FAIL): _S.FAILED,
    (_S.SENT, _E.DELIVERED): _S.DELIVERED,
    **{(s, _E.ACCEPT): _S.ACCEPTED for s in _WAITING},
    **{(s, _E.DECLINE): _S.DECLINED for s in _WAITING},
    **{(s, _E.TIME_OUT): _S.TIMED_OUT for s in _WAITING},
    **{(s, _E.STAND_DOWN): _S.STOOD_DOWN for s in _WAITING},
    (_S.ACCEPTED, _E.DEPART): _S.EN_ROUTE,
    (_S.ACCEPTED, _E.ARRIVE): _S.ON_SCENE,
    (_S.EN_ROUTE, _E.ARRIVE): _S.ON_SCENE,
    **{(s, _E.RELEASE): _S.RELEASED for s in _RESPONDING},
    **{(s, _E.CANCEL): _S.CANCELLED for s in (*_WAITING, *_RESPONDING)},
}

# A late "sent"/"delivered" receipt after the volunteer already answered is not an error,
# just old news: the state does not move backwards.
_IGNORED_LATE: Final = frozenset({_E.SENT, _E.DELIVERED})


class IllegalTransition(Exception):
    def __init__(self, state: AlertState, event: AlertEvent) -> None:
        super().__init__(f"cannot {event.value} an alert that is {state.value}")
        self.state = state
        self.event = event


def apply(state: AlertState, event: AlertEvent) -> AlertState:
    """The state after ``event``; ``state`` itself for a replay or a late receipt.

    Raises :class:`IllegalTransition` for anything else.
    """
    target = TRANSITIONS.get((state, event))
    if target is not None:
        return target
    if any(t == state for (_, e), t in TRANSITIONS.items() if e == event):
        return state
    if event in _IGNORED_LATE and state not in (_S.QUEUED,):
        return state
    raise IllegalTransition(state, event)
