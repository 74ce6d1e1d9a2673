"""The words and data of an alert, a stand-down notice or a self-test, for one channel.

Pure: a claimed outbox row in, an :class:`AlertMessage` out. The provider turns
it into its own format (FCM payload, SMS text, TwiML).
"""

from __future__ import annotations

from typing import Final

from dispatch.domain import delivery_chain as chain
from dispatch.domain.alert_states import AlertState
from dispatch.domain.delivery_chain import Step
from dispatch.store.alerts import ClaimedDelivery
from notify.ports import AlertMessage

_HOW_TO_ANSWER: Final = {
    Step.SMS: "Reply YES to go or NO to decline.",
    Step.VOICE: "",
}
_ANSWER_IN_APP: Final = "Can you go? Answer in the app."


def compose(delivery: ClaimedDelivery, step: Step, address: str, *, ios: bool) -> AlertMessage:
    """The message for ``delivery`` on ``step``, to ``address`` (a device token or a number)."""
    if delivery.channel == chain.STAND_DOWN:
        return stand_down_message(delivery, address)
    critical = ios and delivery.critical_alerts
    if delivery.role == "test":
        return self_test_message(delivery, address, critical=critical)
    return alert_message(delivery, step, address, critical=critical)


def alert_message(
    delivery: ClaimedDelivery, step: Step, address: str, *, critical: bool
) -> AlertMessage:
    where = f" at {delivery.address_text}" if delivery.address_text else ""
    how = _HOW_TO_ANSWER.get(step, _ANSWER_IN_APP)
    data = {"call_type": delivery.call_type_code}
    if delivery.patient is not None:
        data |= {
            "patient_lat": f"{delivery.patient[0]:.6f}",
            "patient_lon": f"{delivery.patient[1]:.6f}",
        }
    if delivery.aed is not None and delivery.role == "aed":
        where += f". First fetch the AED at {delivery.aed.name}"
        data |= {
            "aed_name": delivery.aed.name,
            "aed_lat": f"{delivery.aed.lat:.6f}",
            "aed_lon": f"{delivery.aed.lon:.6f}",
            "aed_access": delivery.aed.access or "",
        }
    return _message(
        delivery,
        address,
        title="Cardiac arrest nearby: CPR needed",
        body=f"Suspected cardiac arrest {round(delivery.distance_m)} m from you{where}. {how}",
        data=data,
        critical=critical,
    )


def stand_down_message(delivery: ClaimedDelivery, address: str) -> AlertMessage:
    state = delivery.alert.state
    return _message(
        delivery,
        address,
        title="Stand down: you are no longer needed",
        body=(
            "The incident is over. Thank you for going."
            if state is AlertState.RELEASED
            else "Enough responders are on the way. Thank you."
        ),
        data={"type": "stand_down", "state": state.value},
    )


def self_test_message(delivery: ClaimedDelivery, address: str, *, critical: bool) -> AlertMessage:
    """A volunteer's self-test: rings like an alert, says it is a test, sends nobody anywhere."""
    return _message(
        delivery,
        address,
        title="TEST alert: no action needed",
        body="This is the test you asked for. If it rang through, real alerts will too.",
        data={"type": "test", "test": "true"},
        critical=critical,
    )


def _message(
    delivery: ClaimedDelivery,
    address: str,
    *,
    title: str,
    body: str,
    data: dict[str, str],
    critical: bool = False,
) -> AlertMessage:
    """The words given, addressed and timed as the claimed delivery says."""
    alert = delivery.alert
    return AlertMessage(
        alert_id=str(alert.alert_id),
        incident_id=str(alert.incident_id),
        volunteer_id=alert.volunteer_id,
        role=delivery.role,
        address=address,
        title=title,
        body=body,
        expires_at=delivery.expires_at,
        language=delivery.language,
        data=data,
        critical=critical,
    )
