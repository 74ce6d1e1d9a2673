"""A volunteer answering an alert: the state machine applied under the incident's lock.

The incident row is locked first (then the alert), so answers to one incident are
serialised: when the answer that reaches the target commits, the stand-down of
everyone still waiting commits with it, and no later accept can slip past the
target. Replacements for a decline or a cancellation are queued in the same
transaction when the caller passes the position cache; otherwise the incident's
deadline is set to now and the ticker does it within one tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

import asyncpg

from dispatch.domain.alert_states import AlertEvent, AlertState, IllegalTransition, apply
from dispatch.service import progress
from dispatch.service.events import EventBuffer
from dispatch.service.positions import PositionCache
from dispatch.store import agencies as agency_store
from dispatch.store import alerts as alert_store
from dispatch.store import incidents as incident_store

_LOG_NAMES: Final = {
    AlertEvent.ACCEPT: "alert_accepted",
    AlertEvent.DECLINE: "alert_declined",
}
_ANSWERS: Final = frozenset({AlertEvent.ACCEPT, AlertEvent.DECLINE})


class AlertNotFound(Exception):
    """No such alert for this volunteer (another volunteer's alert is indistinguishable)."""


@dataclass(frozen=True, slots=True)
class ResponseResult:
    alert_id: UUID
    state: AlertState
    changed: bool
    alerts_queued: int = 0


async def respond(
    pool: asyncpg.Pool,
    *,
    alert_id: UUID,
    volunteer_id: int,
    event: AlertEvent,
    now: datetime,
    positions: PositionCache | None = None,
) -> ResponseResult:
    """Apply the volunteer's move. Raises :class:`IllegalTransition` (→ 409) or AlertNotFound."""
    async with pool.acquire() as conn, conn.transaction():
        owner = await alert_store.owner(conn, alert_id)
        if owner is None or owner.volunteer_id != volunteer_id:
            raise AlertNotFound(str(alert_id))
        incident_id = owner.incident_id
        await incident_store.lock(conn, incident_id)
        # All the incident's alerts, in id order, as the outbox worker (which holds only a
        # key-share lock on the incident) and the wave planner lock them: taking this one
        # first inverted that order and deadlocked with a worker finishing a batch.
        await alert_store.views_for_incident(conn, incident_id)
        alert = await alert_store.lock_alert(conn, alert_id)
        assert alert is not None
        target = apply(alert.state, event)  # may raise IllegalTransition
        if target == alert.state:
            return ResponseResult(alert_id, target, changed=False)
        await alert_store.set_state(conn, alert_id, target, now)
        if event in _ANSWERS:
            await alert_store.mark_answered(conn, alert_id, now)
        events = EventBuffer(alert.agency_id, incident_id, now)
        events.add(
            _LOG_NAMES.get(event, f"alert_{target.value}"),
            alert_id=alert_id,
            volunteer_id=volunteer_id,
            previous=alert.state.value,
        )
        queued = 0
        agency = await agency_store.policy(conn, alert.agency_id) if positions is not None else None
        if positions is not None and agency is not None:
            queued = await progress.advance(conn, positions, agency, incident_id, events)
        else:
            await incident_store.check_now(conn, incident_id, now)
        await events.flush(conn)
    return ResponseResult(alert_id, target, changed=True, alerts_queued=queued)


__all__ = ["AlertNotFound", "IllegalTransition", "ResponseResult", "respond"]
