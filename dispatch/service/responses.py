"""A volunteer answering an alert: the state machine applied under a row lock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from dispatch.domain.alert_states import AlertEvent, AlertState, IllegalTransition, apply
from dispatch.store import alerts as alert_store
from dispatch.store import response_log
from dispatch.store.response_log import LogEvent

_LOG_NAMES = {
    AlertEvent.ACCEPT: "alert_accepted",
    AlertEvent.DECLINE: "alert_declined",
}


class AlertNotFound(Exception):
    """No such alert for this volunteer (another volunteer's alert is indistinguishable)."""


@dataclass(frozen=True, slots=True)
class ResponseResult:
    alert_id: UUID
    state: AlertState
    changed: bool


async def respond(
    pool: asyncpg.Pool,
    *,
    alert_id: UUID,
    volunteer_id: int,
    event: AlertEvent,
    now: datetime,
) -> ResponseResult:
    """Apply the volunteer's answer. Raises :class:`IllegalTransition` (→ 409) or AlertNotFound."""
    async with pool.acquire() as conn, conn.transaction():
        alert = await alert_store.lock_alert(conn, alert_id)
        if alert is None or alert.volunteer_id != volunteer_id:
            raise AlertNotFound(str(alert_id))
        target = apply(alert.state, event)  # may raise IllegalTransition
        if target == alert.state:
            return ResponseResult(alert_id, target, changed=False)
        await alert_store.set_state(conn, alert_id, target, now)
        await response_log.append(
            conn,
            [
                LogEvent(
                    alert.agency_id,
                    alert.incident_id,
                    _LOG_NAMES.get(event, f"alert_{target.value}"),
                    now,
                    alert_id,
                    volunteer_id,
                    {"from": alert.state.value, "to": target.value},
                )
            ],
        )
    return ResponseResult(alert_id, target, changed=True)


__all__ = ["AlertNotFound", "IllegalTransition", "ResponseResult", "respond"]
