"""Signing volunteers up through the API in tests: a movable clock, codes from the log provider."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatch.web import app_keys as keys
from tests.dispatch.helpers import wait_until


class MovableClock:
    """Real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def sent(client: Any) -> list[Any]:
    """Every message the log provider delivered so far (it stands for the phones)."""
    log = client.server.app[keys.PROVIDERS].log
    assert log is not None
    return list(log.sent)


def codes_sent(client: Any, phone: str) -> int:
    return len([m for m in sent(client) if m.address == phone and m.data.get("kind") == "code"])


async def code_for(client: Any, phone: str, *, after: int = 0, timeout_s: float = 5.0) -> str:
    """The code in the ``after``-th+1 text to ``phone`` (waits for the notice worker)."""

    async def texts() -> list[Any]:
        codes = [m for m in sent(client) if m.address == phone and m.data.get("kind") == "code"]
        return codes if len(codes) > after else []

    body = (await wait_until(texts, timeout_s=timeout_s, what=f"code text {after + 1}"))[after].body
    found = re.search(r"\b(\d{6})\b", body)
    assert found is not None, body
    return found.group(1)


async def sign_up(
    client: Any, agency_id: Any, phone: str, name: str = "Ann", *, device: str | None = None
) -> dict[str, Any]:
    """A new self-registered volunteer with a device session: the verify answer."""
    before = codes_sent(client, phone)
    resp = await client.post(
        "/v1/volunteers/signup",
        json={"agency_id": str(agency_id), "display_name": name, "phone_e164": phone},
    )
    assert resp.status == 202, await resp.text()
    code = await code_for(client, phone, after=before)
    return await verify(client, agency_id, phone, code, device=device)


async def sign_in(client: Any, agency_id: Any, phone: str) -> dict[str, Any]:
    before = codes_sent(client, phone)
    resp = await client.post(
        "/v1/volunteers/signin", json={"agency_id": str(agency_id), "phone_e164": phone}
    )
    assert resp.status == 202, await resp.text()
    return await verify(client, agency_id, phone, await code_for(client, phone, after=before))


async def verify(
    client: Any, agency_id: Any, phone: str, code: str, *, device: str | None = None
) -> dict[str, Any]:
    body = {"agency_id": str(agency_id), "phone_e164": phone, "code": code}
    if device:
        body["device_label"] = device
    resp = await client.post("/v1/volunteers/verify", json=body)
    assert resp.status == 200, await resp.text()
    tokens: dict[str, Any] = await resp.json()
    return tokens


async def sent_of_kind(client: Any, kind: str, count: int, timeout_s: float = 5.0) -> list[Any]:
    """The messages of this notice kind, once at least ``count`` went out."""

    async def found() -> list[Any]:
        messages = [m for m in sent(client) if m.data.get("kind") == kind]
        return messages if len(messages) >= count else []

    return await wait_until(found, timeout_s=timeout_s, what=f"{count} {kind} notices")
