"""Codes, self-tests and aftercare through the real server, the real SDKs and wire fakes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.dispatch.delivery_stack import new_scenario
from tests.dispatch.helpers import incident, wait_until
from tests.dispatch.test_delivery_e2e import Stack, session, stack
from tests.fakes.fcm_server import FcmRecord
from tests.fakes.twilio_server import TwilioRecord

pytestmark = pytest.mark.slow
__all__ = ["session", "stack"]  # module fixtures shared with the delivery e2e tests


async def _eventually(probe: Callable[[], list[Any]], timeout_s: float = 10.0) -> list[Any]:
    async def found() -> list[Any]:
        return probe()

    return await wait_until(found, timeout_s=timeout_s, every_s=0.05)


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, token: str | None = None, **kw: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.request(method, url, headers=headers, **kw) as resp:
        return resp.status, await resp.json() if resp.content_type.endswith("json") else None


async def test_a_sign_up_code_is_texted_through_twilio(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    scenario = await new_scenario(
        stack.server.base, session, stack.dsn, ack_s=5, answer_s=30, volunteers=[]
    )
    phone = "+15550200001"
    base = stack.server.base
    status, _ = await _call(
        session,
        "POST",
        f"{base}/v1/volunteers/signup",
        json={"agency_id": str(scenario.agency_id), "display_name": "Sam", "phone_e164": phone},
    )
    assert status == 202
    (text,) = await _eventually(lambda: stack.twilio.sent_to(phone))
    code = re.search(r"\b(\d{6})\b", text.one("Body"))
    assert code is not None
    status, tokens = await _call(
        session,
        "POST",
        f"{base}/v1/volunteers/verify",
        json={"agency_id": str(scenario.agency_id), "phone_e164": phone, "code": code.group(1)},
    )
    assert status == 200
    status, me = await _call(session, "GET", f"{base}/v1/me", tokens["access_token"])
    assert (status, me["phone_e164"]) == (200, phone)


async def test_a_self_test_rings_down_the_real_chain_marked_as_a_test(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    device, phone = "tok-selftest-0001", "+15550200002"
    scenario = await new_scenario(
        stack.server.base, session, stack.dsn, ack_s=1, answer_s=30, volunteers=[(device, phone)]
    )
    (volunteer,) = scenario.volunteers
    status, queued = await _call(
        session, "POST", f"{stack.server.base}/v1/me/test-alert", volunteer.token
    )
    assert status == 202
    (push,) = await _eventually(lambda: stack.fcm.sends_to(device))
    message = push.message
    assert message["data"]["test"] == "true"
    assert message["data"]["alert_id"] == queued["alert_id"]
    assert message["apns"]["payload"]["aps"]["alert"]["title"].startswith("TEST alert")
    # No receipt within the agency's window: the text follows, as for a real alert.
    (text,) = await _eventually(lambda: stack.twilio.sent_to(phone))
    assert text.one("Body").startswith("TEST alert")
    timeline = await scenario.timeline(queued["incident_id"])
    assert [e["event"] for e in timeline][:2] == ["self_test_requested", "alert_queued"]


def _notices(stack: Stack, device: str, phone: str) -> tuple[list[FcmRecord], list[TwilioRecord]]:
    pushes = [r for r in stack.fcm.sends_to(device) if r.message["data"].get("kind") == "aftercare"]
    texts = [r for r in stack.twilio.sent_to(phone) if "How are you" in r.one("Body")]
    return pushes, texts


async def test_responders_are_followed_up_by_push_else_text_when_the_incident_closes(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    device, phone = "tok-aftercare-0001", "+15550200003"
    scenario = await new_scenario(
        stack.server.base,
        session,
        stack.dsn,
        ack_s=30,
        answer_s=60,
        volunteers=[(device, None), (None, phone)],
    )
    incident_id, _ = await scenario.post_incident("aftercare-e2e")
    accepted = []
    for volunteer in scenario.volunteers:
        _, inbox = await _call(session, "GET", f"{stack.server.base}/v1/me/alerts", volunteer.token)
        alert_id = inbox["alerts"][0]["alert_id"]
        accepted.append(alert_id)
        status, _ = await _call(
            session, "POST", f"{stack.server.base}/v1/alerts/{alert_id}/accept", volunteer.token
        )
        assert status == 200
    status, _ = await _call(
        session,
        "POST",
        f"{stack.server.base}/v1/cad/{scenario.agency_id}/incidents",
        scenario.key,
        json={**incident("aftercare-e2e"), "status": "closed", "version": 2},
    )
    assert status == 202

    async def both() -> tuple[list[Any], list[Any]] | None:
        found = _notices(stack, device, phone)
        return found if all(found) else None

    pushes, texts = await wait_until(both, timeout_s=10, every_s=0.05, what="push and text")
    assert len(pushes) == 1
    assert len(texts) == 1
    assert pushes[0].message["data"]["incident_id"] == incident_id
    assert pushes[0].message["data"]["about_alert_id"] == accepted[0]
