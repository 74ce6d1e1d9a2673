"""Credentials: volunteers declare them and attach scans; the agency's supervisors review.

A scan is served only to the agency's supervisors, always as an attachment with
``nosniff`` and a sandboxing CSP: a browser never renders a volunteer's upload inline.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from aiohttp import web

from dispatch.domain.credentials import CredentialKind
from dispatch.domain.scans import MAX_SCAN_BYTES, ScanRefused, check_scan, media_type_allowed
from dispatch.service import credentials as credential_service
from dispatch.store import audit
from dispatch.store import credentials as credential_store
from dispatch.web import app_keys as keys
from dispatch.web.auth import volunteer_of
from dispatch.web.body import json_body, read_upload
from dispatch.web.params import int_param, newest_page, query_choice, supervisor
from dispatch.web.problems import Problem, invalid, not_found, wrong_state

routes = web.RouteTableDef()

_EXTENSIONS: Final = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}


def _wrong_state(exc: credential_service.WrongState) -> Problem:
    return wrong_state("credential-state", "Not possible in this state", exc, exc.state.value)


# --- volunteers -----------------------------------------------------------------------------


@routes.get("/v1/me/credentials")
async def my_credentials(request: web.Request) -> web.Response:
    volunteer = await volunteer_of(request)
    async with request.app[keys.POOL].acquire() as conn:
        found = await credential_store.of_volunteer(conn, volunteer.volunteer_id)
    return web.json_response({"credentials": found})


@routes.post("/v1/me/credentials")
async def submit_credential(request: web.Request) -> web.Response:
    volunteer = await volunteer_of(request)
    data = await json_body(request, "NewCredential")
    try:
        created = await credential_service.submit(
            request.app[keys.POOL],
            agency_id=volunteer.agency_id,
            volunteer_id=volunteer.volunteer_id,
            kind=CredentialKind(data["kind"]),
            issuer=data["issuer"].strip(),
            number=data["number"].strip() if "number" in data else None,
            expires_on=date.fromisoformat(data["expires_on"]),
            now=request.app[keys.CLOCK].now(),
        )
    except credential_service.Expired:
        raise invalid("/expires_on", "has already passed (in the agency's time zone)") from None
    return web.json_response(created, status=201)


@routes.put("/v1/me/credentials/{credential_id}/scan")
async def upload_scan(request: web.Request) -> web.Response:
    """The bytes must be the declared type whole; a refused upload stores nothing."""
    volunteer = await volunteer_of(request)
    credential_id = int_param(request, "credential_id")
    declared = request.content_type
    if not media_type_allowed(declared):
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send application/pdf, image/jpeg or image/png",
        )
    data = await read_upload(request, MAX_SCAN_BYTES)
    try:
        media_type = check_scan(declared, data)
    except ScanRefused as exc:
        raise Problem(exc.status, "scan-refused", "Scan refused", exc.detail) from None
    try:
        stored = await credential_service.attach_scan(
            request.app[keys.POOL],
            volunteer_id=volunteer.volunteer_id,
            credential_id=credential_id,
            media_type=media_type,
            data=data,
            now=request.app[keys.CLOCK].now(),
        )
    except credential_service.NotFound:
        raise not_found("credential") from None
    except credential_service.WrongState as exc:
        raise _wrong_state(exc) from None
    return web.json_response(stored)


# --- supervisors ----------------------------------------------------------------------------


@routes.get("/v1/agencies/{agency_id}/credentials")
async def agency_credentials(request: web.Request) -> web.Response:
    return await newest_page(request, "credentials", credential_store.for_agency, _state)


def _state(request: web.Request) -> dict[str, Any]:
    return {"state": query_choice(request, "state", ("pending", "approved", "rejected"), None)}


@routes.get("/v1/agencies/{agency_id}/credentials/{credential_id}/scan")
async def download_scan(request: web.Request) -> web.Response:
    agency_id, actor = await supervisor(request)
    credential_id = int_param(request, "credential_id")
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        found = await credential_store.scan(conn, agency_id, credential_id)
        if found is None:
            raise not_found("scan")
        await audit.record(
            conn,
            agency_id=agency_id,
            actor=actor,
            action="scan_downloaded",
            target_type="credential",
            target_id=credential_id,
            at=request.app[keys.CLOCK].now(),
        )
    media_type, content = found
    name = f"credential-{credential_id}.{_EXTENSIONS[media_type]}"
    return web.Response(
        body=content,
        content_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "no-store",
        },
    )


async def _review(request: web.Request, approve: bool) -> web.Response:
    agency_id, actor = await supervisor(request)
    credential_id = int_param(request, "credential_id")
    reason = None
    if not approve:
        reason = (await json_body(request, "CredentialRejection"))["reason"].strip()
    assert actor.supervisor_id is not None
    try:
        reviewed = await credential_service.review(
            request.app[keys.POOL],
            agency_id=agency_id,
            credential_id=credential_id,
            approve=approve,
            reason=reason,
            supervisor_id=actor.supervisor_id,
            now=request.app[keys.CLOCK].now(),
        )
    except credential_service.NotFound:
        raise not_found("credential") from None
    except credential_service.WrongState as exc:
        raise _wrong_state(exc) from None
    except credential_service.Expired:
        raise Problem(
            409, "credential-expired", "Credential expired", "an expired credential is not approved"
        ) from None
    request.app[keys.NOTICE_WORKER].wakeup.set()
    return web.json_response(reviewed)


@routes.post("/v1/agencies/{agency_id}/credentials/{credential_id}/approve")
async def approve_credential(request: web.Request) -> web.Response:
    return await _review(request, approve=True)


@routes.post("/v1/agencies/{agency_id}/credentials/{credential_id}/reject")
async def reject_credential(request: web.Request) -> web.Response:
    return await _review(request, approve=False)
