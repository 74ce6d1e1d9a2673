"""Incidents with their alerts and response log written straight into the tables.

The review routes only read; writing the rows directly lets a test lay out exactly the
history it checks (times, answers, EMS arrival) without driving the whole engine.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import count
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from tests.dispatch.conftest import AgencyFixture

_numbers = count(1)


async def supervised_get(
    client: Any, agency: AgencyFixture, path: str, params: Mapping[str, str] | None = None
) -> Any:
    """``GET /v1/agencies/{agency_id}/{path}`` with the agency's supervisor token."""
    return await client.get(
        f"/v1/agencies/{agency.agency_id}/{path}",
        params=params or {},
        headers=agency.supervisor_auth,
    )


async def supervised_json(
    client: Any, agency: AgencyFixture, path: str, params: Mapping[str, str] | None = None
) -> Any:
    """The JSON of a ``supervised_get`` that must succeed."""
    resp = await supervised_get(client, agency, path, params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def refused_parameters(resp: Any) -> list[str]:
    """The query parameters a 400 problem names, in its order."""
    assert resp.status == 400, await resp.text()
    assert resp.content_type == "application/problem+json"
    return [p["name"] for p in (await resp.json())["invalid-params"]]


@dataclass
class Responder:
    """One alerted volunteer: seconds from receipt to each step, None if it never came."""

    volunteer_id: int
    sent_s: float | None = 5.0
    accept_s: float | None = None
    on_scene_s: float | None = None
    role: str = "cpr"


@dataclass
class Seeded:
    received_at: datetime
    cardiac_arrest: bool | None = True
    test: bool = False
    state: str = "closed"
    status: str = "closed"
    call_type: str = "09-E-01"
    address: str | None = "Dam 1, Amsterdam"
    number: str | None = None
    alerting: bool = True
    responders: list[Responder] = field(default_factory=list)
    ems_s: float | None = None
    not_alertable: str | None = None
    receipt_delay_s: float = 2.0


async def seed(db: asyncpg.Connection, agency_id: UUID, spec: Seeded) -> UUID:
    incident_id = uuid4()
    number = spec.number or f"INC-{next(_numbers):05d}"
    receipt = spec.received_at + timedelta(seconds=spec.receipt_delay_s)
    ems_at = receipt + timedelta(seconds=spec.ems_s) if spec.ems_s is not None else None
    report: dict[str, Any] = {"incident_id": number}
    if spec.address is not None:
        report["address"] = {"text": spec.address}
    await db.execute(
        """
        INSERT INTO incidents (id, agency_id, source, source_incident_id, version_at,
            version_seq, content_hash, status, is_test, is_cardiac_arrest, call_type_code,
            lat, lon, place_type, received_at, report, state, created_at, updated_at,
            alerting_started_at, first_ems_on_scene_at)
        VALUES ($1, $2, 'generic', $3, $4, 1, '\\x00', $5, $6, $7, $8, 52.37, 4.89, 'public',
                $9, $10, $11, $12, $12, $13, $14)
        """,
        incident_id,
        agency_id,
        number,
        receipt,
        spec.status,
        spec.test,
        spec.cardiac_arrest,
        spec.call_type,
        spec.received_at,
        report,
        spec.state,
        receipt,
        receipt if spec.alerting else None,
        ems_at,
    )
    events: list[tuple[UUID | None, int | None, str, datetime, dict[str, Any]]] = [
        (None, None, "incident_received", receipt, {})
    ]
    if spec.not_alertable:
        events.append((None, None, "not_alertable", receipt, {"reason": spec.not_alertable}))
    for r in spec.responders:
        alert_id = uuid4()
        await db.execute(
            """
            INSERT INTO alerts (id, agency_id, incident_id, volunteer_id, role, state,
                distance_m, expires_at, created_at)
            VALUES ($1, $2, $3, $4, $5, 'sent', 100, $6, $6)
            """,
            alert_id,
            agency_id,
            incident_id,
            r.volunteer_id,
            r.role,
            receipt,
        )
        events.append((alert_id, r.volunteer_id, "alert_queued", receipt, {}))
        for name, seconds in (
            ("alert_sent", r.sent_s),
            ("alert_accepted", r.accept_s),
            ("alert_on_scene", r.on_scene_s),
        ):
            if seconds is not None:
                events.append(
                    (alert_id, r.volunteer_id, name, receipt + timedelta(seconds=seconds), {})
                )
    if ems_at is not None:
        events.append((None, None, "unit_status", ems_at, {"status": "on_scene"}))
    await db.executemany(
        """
        INSERT INTO response_log (agency_id, incident_id, alert_id, volunteer_id, event, at,
            details)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        [(agency_id, incident_id, *e) for e in events],
    )
    return incident_id


async def volunteer(db: asyncpg.Connection, agency_id: UUID, name: str = "V", **cols: Any) -> int:
    names = ["agency_id", "display_name", "token_hash", *cols]
    values = [agency_id, name, uuid4().bytes, *cols.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    volunteer_id: int = await db.fetchval(
        f"INSERT INTO volunteers ({', '.join(names)}) VALUES ({placeholders}) RETURNING id",
        *values,
    )
    return volunteer_id


def csv_rows(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def as_cell(value: Any) -> str:
    """A JSON value as its CSV cell (the rule documented in dispatch.web.review_format)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value)
