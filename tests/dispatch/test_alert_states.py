"""The alert state machine (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch.domain.alert_states import (
    TRANSITIONS,
    AlertEvent,
    AlertState,
    IllegalTransition,
    apply,
)

TERMINAL = {
    AlertState.DECLINED,
    AlertState.TIMED_OUT,
    AlertState.STOOD_DOWN,
    AlertState.CANCELLED,
    AlertState.RELEASED,
    AlertState.FAILED,
}


@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [
        (AlertState.QUEUED, AlertEvent.SENT, AlertState.SENT),
        (AlertState.SENT, AlertEvent.ACCEPT, AlertState.ACCEPTED),
        (AlertState.QUEUED, AlertEvent.ACCEPT, AlertState.ACCEPTED),
        (AlertState.DELIVERED, AlertEvent.DECLINE, AlertState.DECLINED),
        (AlertState.ACCEPTED, AlertEvent.ACCEPT, AlertState.ACCEPTED),
        (AlertState.ACCEPTED, AlertEvent.SENT, AlertState.ACCEPTED),
        (AlertState.ACCEPTED, AlertEvent.ARRIVE, AlertState.ON_SCENE),
        (AlertState.ACCEPTED, AlertEvent.CANCEL, AlertState.CANCELLED),
    ],
)
def test_legal_moves(state: AlertState, event: AlertEvent, expected: AlertState) -> None:
    """Moves a volunteer or a receipt can make, including harmless replays."""
    assert apply(state, event) is expected


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (AlertState.ACCEPTED, AlertEvent.DECLINE),
        (AlertState.DECLINED, AlertEvent.ACCEPT),
        (AlertState.STOOD_DOWN, AlertEvent.ACCEPT),
        (AlertState.TIMED_OUT, AlertEvent.ACCEPT),
        (AlertState.FAILED, AlertEvent.DECLINE),
        (AlertState.ON_SCENE, AlertEvent.DEPART),
    ],
)
def test_illegal_moves_name_the_current_state(state: AlertState, event: AlertEvent) -> None:
    """Illegal moves raise with the state, which the API returns in its 409."""
    with pytest.raises(IllegalTransition) as raised:
        apply(state, event)
    assert raised.value.state is state


@given(st.sampled_from(AlertState), st.lists(st.sampled_from(AlertEvent), max_size=12))
def test_terminal_states_never_leave(start: AlertState, events: list[AlertEvent]) -> None:
    """Once declined, timed out, stood down, cancelled, released or failed, an alert stays so."""
    state = start
    for event in events:
        try:
            nxt = apply(state, event)
        except IllegalTransition:
            continue
        if state in TERMINAL:
            assert nxt is state
        state = nxt


@given(st.sampled_from(AlertState), st.sampled_from(AlertEvent))
def test_apply_agrees_with_the_table(state: AlertState, event: AlertEvent) -> None:
    """Every listed transition is taken; nothing unlisted moves the state elsewhere."""
    try:
        result = apply(state, event)
    except IllegalTransition:
        assert (state, event) not in TRANSITIONS
        return
    assert result is TRANSITIONS.get((state, event), state)
