"""The volunteer-account part of the OpenAPI document (merged by ``dispatch.web.openapi``)."""

from __future__ import annotations

from typing import Any, Final

from dispatch.web.openapi_common import (
    AGENCY,
    SUPERVISOR,
    VOLUNTEER,
    VOLUNTEER_ID,
    alert_operation,
    json_request,
    json_response,
    newest_page_op,
    operation,
    path_int,
    problem,
)

_SCAN_TYPES: Final = ("application/pdf", "image/jpeg", "image/png")
_BINARY: Final = {"schema": {"type": "string", "format": "binary"}}
_THROTTLED: Final = problem(
    "Too many codes for this number or from this client, or this number's code was voided "
    "by wrong tries",
    retry_after=True,
)


_CREDENTIAL: Final = path_int("credential_id", "The credential")


def _public(summary: str, ok: dict[str, Any], body: str, **errors: Any) -> dict[str, Any]:
    op = operation(summary, {**ok, **errors, "429": _THROTTLED}, body=json_request(body))
    op["security"] = []
    return op


def _account_paths() -> dict[str, Any]:
    sent = {"202": json_response("CodeSent", "A code is on its way (or not: same answer)")}
    tokens = {"200": json_response("SessionTokens", "A device session")}
    return {
        "/v1/volunteers/signup": {
            "post": _public(
                "Join an agency: a 6-digit code is texted to the number",
                sent,
                "Signup",
                **{"404": problem("No such agency")},
            )
        },
        "/v1/volunteers/signin": {
            "post": _public(
                "Sign in on a new device: a 6-digit code is texted to the number",
                sent,
                "Signin",
                **{"404": problem("No such agency")},
            )
        },
        "/v1/volunteers/verify": {
            "post": _public(
                "Exchange the code for a session (access and refresh tokens)",
                tokens,
                "Verify",
                **{"401": problem("The code is wrong, expired or used (one answer for all)")},
            )
        },
        "/v1/volunteers/refresh": {
            "post": _public(
                "Rotate a session's tokens; a refresh token used twice revokes the session",
                tokens,
                "Refresh",
                **{"401": problem("Unknown, expired or revoked; `refresh-token-reused` revoked")},
            )
        },
        "/v1/me/sessions": {
            "get": operation(
                "The volunteer's signed-in devices",
                {"200": json_response("Sessions", "Newest first; `current` marks this one")},
                security=VOLUNTEER,
            )
        },
        "/v1/me/sessions/{session_id}": {
            "delete": operation(
                "Sign a device out (its push registrations stop too)",
                {"204": {"description": "Signed out"}, "404": problem("No such live session")},
                security=VOLUNTEER,
                parameters=[path_int("session_id", "The session")],
            )
        },
    }


def _me_paths() -> dict[str, Any]:
    profile = json_response("Profile", "The profile, and why alerts do not reach them, if so")
    return {
        "/v1/me": {
            "get": operation("The volunteer's own profile", {"200": profile}, security=VOLUNTEER),
            "patch": operation(
                "Change name, language, tier asked for, duty, quiet hours, budget or channels",
                {"200": profile},
                security=VOLUNTEER,
                body=json_request("ProfileChange"),
                description="Going off duty deletes the last position at once.",
            ),
            "delete": operation(
                "Erase the account; the response log keeps its facts under a pseudonym",
                {"204": {"description": "Erased"}},
                security=VOLUNTEER,
            ),
        },
        "/v1/me/alerts": {
            "get": operation(
                "Open alerts first, then the last 30 days with their outcome",
                {"200": json_response("MyAlerts", "Alerts")},
                security=VOLUNTEER,
            )
        },
        "/v1/me/export": {
            "get": operation(
                "Everything held about the volunteer, as JSON",
                {"200": json_response("VolunteerExport", "The export")},
                security=VOLUNTEER,
            )
        },
        "/v1/me/test-alert": {
            "post": operation(
                "A test alert down the volunteer's real delivery chain (3 a day)",
                {
                    "202": json_response("TestAlertQueued", "Queued"),
                    "429": problem("Three test alerts in the last 24 hours", retry_after=True),
                },
                security=VOLUNTEER,
            )
        },
        "/v1/alerts/{alert_id}/feedback": {
            "post": alert_operation(
                "How the volunteer is after an alert; optionally ask to talk to someone",
                {"201": json_response("FeedbackRecorded", "Recorded")},
                body=json_request("Feedback"),
            )
        },
    }


def _credential_paths() -> dict[str, Any]:
    credential = json_response("Credential", "The credential")
    scan_errors = {
        "409": problem("The credential is no longer pending"),
        "413": problem("Larger than 5 MiB"),
        "415": problem("Not application/pdf, image/jpeg or image/png"),
        "422": problem("The bytes are not (all) the declared type"),
    }
    scan = operation(
        "Attach the scan (PDF, JPEG or PNG, at most 5 MiB) while the credential is pending",
        {"200": credential, **scan_errors},
        security=VOLUNTEER,
        parameters=[_CREDENTIAL],
        body={"required": True, "content": {t: _BINARY for t in _SCAN_TYPES}},
        description="The type is read from the bytes, which must be the declared type whole.",
    )
    del scan["responses"]["400"]  # a raw body: nothing to be malformed JSON
    return {
        "/v1/me/credentials": {
            "get": operation(
                "The volunteer's credentials and their review",
                {"200": json_response("CredentialList", "Newest first")},
                security=VOLUNTEER,
            ),
            "post": operation(
                "Declare a credential (CPR/BLS certificate or professional licence)",
                {"201": credential},
                security=VOLUNTEER,
                body=json_request("NewCredential"),
            ),
        },
        "/v1/me/credentials/{credential_id}/scan": {"put": scan},
    }


def _review_paths() -> dict[str, Any]:
    credential = json_response("Credential", "The credential after the review")
    review_errors = {
        "404": problem("No such credential in this agency"),
        "409": problem("Not in a state this review applies to, or already expired"),
    }
    state = {
        "name": "state",
        "in": "query",
        "required": False,
        "schema": {"enum": ["pending", "approved", "rejected"]},
    }
    download = {
        "description": "The scan, as an attachment",
        "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
        "content": {t: _BINARY for t in _SCAN_TYPES},
    }
    return {
        "/v1/agencies/{agency_id}/credentials": {
            "get": newest_page_op(
                "Credentials to review (`state=pending`) or reviewed, newest first",
                json_response("CredentialList", "Credentials"),
                "credentials",
                filters=(state,),
            )
        },
        "/v1/agencies/{agency_id}/credentials/{credential_id}/scan": {
            "get": operation(
                "A credential's scan (never shown inline)",
                {"200": download, "404": problem("No such credential or no scan")},
                security=SUPERVISOR,
                parameters=[AGENCY, _CREDENTIAL],
            )
        },
        "/v1/agencies/{agency_id}/credentials/{credential_id}/approve": {
            "post": operation(
                "Approve: the volunteer is alertable until it expires, tier by its kind",
                {"200": credential, **review_errors},
                security=SUPERVISOR,
                parameters=[AGENCY, _CREDENTIAL],
            )
        },
        "/v1/agencies/{agency_id}/credentials/{credential_id}/reject": {
            "post": operation(
                "Reject (or withdraw an approval) with a reason the volunteer sees",
                {"200": credential, **review_errors},
                security=SUPERVISOR,
                parameters=[AGENCY, _CREDENTIAL],
                body=json_request("CredentialRejection"),
            )
        },
    }


def _oversight_paths() -> dict[str, Any]:
    state = {
        "name": "state",
        "in": "query",
        "required": False,
        "schema": {"enum": ["open", "handled", "all"], "default": "open"},
    }
    return {
        "/v1/agencies/{agency_id}/debrief-requests": {
            "get": newest_page_op(
                "Volunteers who asked to talk to someone after an alert",
                json_response("DebriefRequests", "Newest first"),
                "requests",
                filters=(state,),
            )
        },
        "/v1/agencies/{agency_id}/debrief-requests/{request_id}/handled": {
            "post": operation(
                "Mark a debrief request handled",
                {
                    "200": json_response("DebriefRequest", "The request"),
                    "404": problem("No such debrief request in this agency"),
                    "409": problem("Already handled"),
                },
                security=SUPERVISOR,
                parameters=[AGENCY, path_int("request_id", "The debrief request")],
                body=json_request("DebriefHandled"),
            )
        },
        "/v1/agencies/{agency_id}/audit-log": {
            "get": newest_page_op(
                "Supervisor and operator actions, newest first (append-only)",
                json_response("AuditLog", "Entries"),
                "entries",
            )
        },
        "/v1/agencies/{agency_id}/volunteers/{volunteer_id}/export": {
            "get": operation(
                "Everything held about a volunteer (audited)",
                {"200": json_response("VolunteerExport", "The export")},
                security=SUPERVISOR,
                parameters=[AGENCY, VOLUNTEER_ID],
            )
        },
    }


def volunteer_paths() -> dict[str, Any]:
    return {
        **_account_paths(),
        **_me_paths(),
        **_credential_paths(),
        **_review_paths(),
        **_oversight_paths(),
    }
