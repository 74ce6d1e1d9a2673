"""What an alert, a stand-down notice and a self-test say on each channel."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from dispatch.domain import delivery_chain as chain
from dispatch.domain.alert_states import AlertState
from dispatch.domain.delivery_chain import Step
from dispatch.service.alert_messages import compose
from dispatch.store.alerts import AedDirections, AlertRow, ClaimedDelivery

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
ALERT_ID = UUID("00000000-0000-4000-8000-000000000001")
INCIDENT_ID = UUID("00000000-0000-4000-8000-000000000002")
AGENCY_ID = UUID("00000000-0000-4000-8000-000000000003")


def _delivery(**changes: object) -> ClaimedDelivery:
    delivery = ClaimedDelivery(
        outbox_id=1,
        attempts=0,
        channel=chain.START,
        alert=AlertRow(ALERT_ID, AGENCY_ID, INCIDENT_ID, 42, AlertState.QUEUED),
        role="cpr",
        distance_m=312.4,
        expires_at=NOW + timedelta(minutes=10),
        language="nl",
        call_type_code="CARDIAC",
        address_text="Kerkstraat 1",
        patient=(52.1, 5.2),
    )
    return replace(delivery, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("step", "ending"),
    [
        (Step.PUSH, "Can you go? Answer in the app."),
        (Step.LOG, "Can you go? Answer in the app."),
        (Step.SMS, "Reply YES to go or NO to decline."),
        (Step.VOICE, ". "),
    ],
)
def test_the_alert_says_how_far_and_where_and_how_to_answer_on_that_channel(
    step: Step, ending: str
) -> None:
    message = compose(_delivery(), step, "addr", ios=False)
    assert message.title == "Cardiac arrest nearby: CPR needed"
    assert message.body.startswith("Suspected cardiac arrest 312 m from you at Kerkstraat 1.")
    assert message.body.endswith(ending)
    assert (message.alert_id, message.incident_id) == (str(ALERT_ID), str(INCIDENT_ID))
    assert (message.volunteer_id, message.role, message.address) == (42, "cpr", "addr")
    assert message.language == "nl"
    assert message.expires_at == NOW + timedelta(minutes=10)


def test_the_alert_carries_the_patient_place_but_no_aed_for_a_cpr_role() -> None:
    aed = AedDirections("Town hall", 52.11, 5.21, "lobby")
    message = compose(_delivery(aed=aed), Step.PUSH, "t", ios=False)
    assert dict(message.data) == {
        "call_type": "CARDIAC",
        "patient_lat": "52.100000",
        "patient_lon": "5.200000",
    }
    assert "AED" not in message.body


def test_an_aed_runner_is_told_where_to_fetch_the_aed_first() -> None:
    aed = AedDirections("Town hall", 52.11, 5.21, None)
    message = compose(_delivery(role="aed", aed=aed, address_text=None), Step.SMS, "+1", ios=False)
    assert message.body == (
        "Suspected cardiac arrest 312 m from you. First fetch the AED at Town hall. "
        "Reply YES to go or NO to decline."
    )
    assert message.data["aed_name"] == "Town hall"
    assert (message.data["aed_lat"], message.data["aed_lon"]) == ("52.110000", "5.210000")
    assert message.data["aed_access"] == ""


def test_an_alert_without_a_known_patient_place_has_no_coordinates() -> None:
    message = compose(_delivery(patient=None), Step.PUSH, "t", ios=False)
    assert dict(message.data) == {"call_type": "CARDIAC"}


@pytest.mark.parametrize(
    ("ios", "agency_allows", "critical"),
    [(True, True, True), (True, False, False), (False, True, False)],
)
def test_a_critical_alert_only_on_ios_and_only_where_the_agency_has_it(
    ios: bool, agency_allows: bool, critical: bool
) -> None:
    message = compose(_delivery(critical_alerts=agency_allows), Step.PUSH, "t", ios=ios)
    assert message.critical is critical


@pytest.mark.parametrize(
    ("state", "body"),
    [
        (AlertState.STOOD_DOWN, "Enough responders are on the way. Thank you."),
        (AlertState.RELEASED, "The incident is over. Thank you for going."),
    ],
)
def test_a_stand_down_notice_says_why_and_is_never_critical(state: AlertState, body: str) -> None:
    alert = AlertRow(ALERT_ID, AGENCY_ID, INCIDENT_ID, 42, state)
    delivery = _delivery(channel=chain.STAND_DOWN, alert=alert, critical_alerts=True)
    message = compose(delivery, Step.PUSH, "t", ios=True)
    assert message.title == "Stand down: you are no longer needed"
    assert message.body == body
    assert dict(message.data) == {"type": "stand_down", "state": state.value}
    assert message.critical is False


def test_a_self_test_says_it_is_a_test_and_sends_nobody_anywhere() -> None:
    message = compose(_delivery(role="test", critical_alerts=True), Step.PUSH, "t", ios=True)
    assert message.title == "TEST alert: no action needed"
    assert "patient_lat" not in message.data
    assert dict(message.data) == {"type": "test", "test": "true"}
    assert message.critical is True
