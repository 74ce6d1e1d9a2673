"""The incident state machine, as volunteers and EMS see it (the CAD's own status is input).

received → alerting → responders_en_route → ems_on_scene → closed; cancelled from any
open state. A snapshot that cannot alert stays ``received`` until it closes.
"""

from __future__ import annotations

from enum import StrEnum


class IncidentState(StrEnum):
    RECEIVED = "received"
    ALERTING = "alerting"
    RESPONDERS_EN_ROUTE = "responders_en_route"
    EMS_ON_SCENE = "ems_on_scene"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class IncidentEvent(StrEnum):
    ALERTS_QUEUED = "alerts_queued"
    RESPONDER_ACCEPTED = "responder_accepted"
    EMS_ARRIVED = "ems_arrived"
    CLOSE = "close"
    CANCEL = "cancel"


_S = IncidentState
_E = IncidentEvent
_OPEN = (_S.RECEIVED, _S.ALERTING, _S.RESPONDERS_EN_ROUTE, _S.EMS_ON_SCENE)
_ORDER = {s: i for i, s in enumerate(_OPEN)}
_TARGET = {
    _E.ALERTS_QUEUED: _S.ALERTING,
    _E.RESPONDER_ACCEPTED: _S.RESPONDERS_EN_ROUTE,
    _E.EMS_ARRIVED: _S.EMS_ON_SCENE,
}


class IllegalIncidentTransition(Exception):
    def __init__(self, state: IncidentState, event: IncidentEvent) -> None:
        super().__init__(f"cannot {event.value} an incident that is {state.value}")
        self.state = state
        self.event = event


def is_open(state: IncidentState) -> bool:
    return state in _OPEN


def advance(state: IncidentState, event: IncidentEvent) -> IncidentState:
    """The state after ``event``. Progress only moves forward: a late "alerts queued"
    after EMS arrived leaves the incident at "EMS on scene"."""
    if not is_open(state):
        if (state, event) in ((_S.CLOSED, _E.CLOSE), (_S.CANCELLED, _E.CANCEL)):
            return state
        raise IllegalIncidentTransition(state, event)
    if event is _E.CLOSE:
        return _S.CLOSED
    if event is _E.CANCEL:
        return _S.CANCELLED
    target = _TARGET[event]
    return target if _ORDER[target] > _ORDER[state] else state
