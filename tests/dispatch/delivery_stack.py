"""The real ``dispatch serve`` process wired to wire-level FCM and Twilio fakes, for e2e tests.

The fakes run in threads of the test process; the service reaches them over
127.0.0.1 through the real SDKs (FCM base URL and Twilio base URL settings) and
receives signed Twilio callbacks from them on its public URL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dispatch.domain.policy import AlertPolicy, last_step_due_s
from dispatch.store import agencies as agency_store
from tests.dispatch.helpers import CENTRE, incident, offset, wait_until
from tests.dispatch.serve_process import ServeProcess
from tests.fakes.fcm_server import FakeFcm
from tests.fakes.twilio_server import FakeTwilio

PROJECT_ID = "cpr-e2e-project"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "e2e-auth-token"
FROM_NUMBER = "+15550000000"


def service_account(path: Path, key: rsa.RSAPrivateKey, token_uri: str) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT_ID,
                "private_key_id": "e2e-key-1",
                "private_key": pem,
                "client_email": f"notify@{PROJECT_ID}.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": token_uri,
            }
        )
    )
    return path


def provider_env(fcm: FakeFcm, twilio: FakeTwilio, sa_file: Path) -> dict[str, str]:
    return {
        "DISPATCH_FCM_SERVICE_ACCOUNT_FILE": str(sa_file),
        "DISPATCH_FCM_BASE_URL": fcm.url,
        "DISPATCH_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "DISPATCH_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "DISPATCH_TWILIO_FROM": FROM_NUMBER,
        "DISPATCH_TWILIO_BASE_URL": twilio.url,
        "DISPATCH_SMS_RATE_PER_S": "50",
        "DISPATCH_VOICE_RATE_PER_S": "50",
        "DISPATCH_RETRY_BASE_S": "0.2",
        "DISPATCH_NOTIFIER_SEND_TIMEOUT_S": "3",
    }


@dataclass
class Volunteer:
    volunteer_id: int
    token: str
    phone: str | None
    device: str | None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Scenario:
    """One agency with its own volunteers on the shared server."""

    base: str
    session: aiohttp.ClientSession
    agency_id: UUID
    key: str
    supervisor: str
    volunteers: list[Volunteer] = field(default_factory=list)

    async def timeline(self, incident_id: str) -> list[dict[str, Any]]:
        async with self.session.get(
            f"{self.base}/v1/incidents/{incident_id}/timeline",
            headers={"Authorization": f"Bearer {self.key}"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            events: list[dict[str, Any]] = (await resp.json())["events"]
            return events

    async def wait_for(
        self,
        incident_id: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout_s: float = 10.0,
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []

        async def met() -> list[dict[str, Any]] | None:
            nonlocal events
            events = await self.timeline(incident_id)
            return events if predicate(events) else None

        def names() -> list[tuple[str, str | None]]:
            return [(e["event"], e["details"].get("channel")) for e in events]

        return await wait_until(met, timeout_s=timeout_s, every_s=0.05, show=names)

    async def post_incident(self, source_id: str) -> tuple[str, float]:
        started = time.time()
        async with self.session.post(
            f"{self.base}/v1/cad/{self.agency_id}/incidents",
            json=incident(source_id),
            headers={"Authorization": f"Bearer {self.key}"},
        ) as resp:
            assert resp.status == 202, await resp.text()
            body = await resp.json()
        assert body["alerts_queued"] == len(self.volunteers), body
        return str(body["incident_id"]), started


def count(events: list[dict[str, Any]], name: str, channel: str | None = None) -> int:
    return sum(
        1
        for e in events
        if e["event"] == name and (channel is None or e["details"].get("channel") == channel)
    )


async def new_scenario(
    base: str,
    session: aiohttp.ClientSession,
    dsn: str,
    *,
    ack_s: int,
    answer_s: int,
    volunteers: list[tuple[str | None, str | None]],
) -> Scenario:
    """An agency with fallback windows and volunteers given as ``(device token, phone)``."""
    conn = await asyncpg.connect(dsn)
    try:
        agency_id, key = await agency_store.create_agency(conn, name="Delivery e2e")
        _, supervisor = await agency_store.create_supervisor(conn, agency_id=agency_id, name="S")
    finally:
        await conn.close()
    scenario = Scenario(base, session, agency_id, key, supervisor)
    sup = {"Authorization": f"Bearer {supervisor}"}
    last_step_s = last_step_due_s(push_ack_timeout_s=ack_s, next_channel_after_s=answer_s)
    if last_step_s >= AlertPolicy().not_coming_after_s:
        # Nobody counts as not coming while the chain still has a step due (refused else).
        async with session.put(
            f"{base}/v1/agencies/{agency_id}/policy",
            json={"not_coming_after_s": last_step_s + 60},
            headers=sup,
        ) as resp:
            assert resp.status == 200, await resp.text()
    async with session.put(
        f"{base}/v1/agencies/{agency_id}/delivery-settings",
        json={"push_ack_timeout_s": ack_s, "next_channel_after_s": answer_s},
        headers=sup,
    ) as resp:
        assert resp.status == 200, await resp.text()
    for index, (device, phone) in enumerate(volunteers):
        body: dict[str, Any] = {"display_name": f"V{index}"}
        if phone:
            body["phone_e164"] = phone
        async with session.post(
            f"{base}/v1/agencies/{agency_id}/volunteers", json=body, headers=sup
        ) as resp:
            assert resp.status == 201, await resp.text()
            created = await resp.json()
        volunteer = Volunteer(created["volunteer_id"], created["token"], phone, device)
        lat, lon = offset(*CENTRE, 20 + 10 * index, 0)
        async with session.put(
            f"{base}/v1/me/location", json={"lat": lat, "lon": lon}, headers=volunteer.auth
        ) as resp:
            assert resp.status == 204, await resp.text()
        if device:
            async with session.put(
                f"{base}/v1/me/devices",
                json={"fcm_token": device, "platform": "android"},
                headers=volunteer.auth,
            ) as resp:
                assert resp.status == 200, await resp.text()
        scenario.volunteers.append(volunteer)
    return scenario


async def start_server(env: dict[str, str], log_path: Path) -> ServeProcess:
    server = ServeProcess(env, log_path)
    await server.wait_ready()
    return server
