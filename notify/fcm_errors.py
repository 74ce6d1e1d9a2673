"""FCM's error answers mapped to our :class:`~notify.errors.ErrorCode` and outcome.

FCM v1 reports per-message errors as an HTTP status with a JSON body whose
``details[]`` may carry an ``FcmError`` code; firebase-admin wraps it in a
``FirebaseError`` whose ``http_response`` keeps the raw answer. Token refresh
failures come from google-auth instead. Everything here reads those by duck
typing, so it needs neither SDK to be importable.
"""

from __future__ import annotations

import json
from typing import Any

from notify.errors import ErrorCode, parse_retry_after
from notify.ports import DeliveryOutcome

FCM_ERROR_DETAIL_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_DETAIL_TYPE = "type.googleapis.com/google.rpc.BadRequest"

_Outcome = tuple[DeliveryOutcome, ErrorCode]

# FCM ``details[].errorCode`` -> (outcome, our code). INVALID_ARGUMENT is split
# further (token vs payload) in ``classify_fcm_error``.
FCM_ERROR_TABLE: dict[str, _Outcome] = {
    "UNREGISTERED": (DeliveryOutcome.PERMANENT, ErrorCode.UNREGISTERED),
    "SENDER_ID_MISMATCH": (DeliveryOutcome.PERMANENT, ErrorCode.SENDER_ID_MISMATCH),
    "QUOTA_EXCEEDED": (DeliveryOutcome.RETRYABLE, ErrorCode.QUOTA_EXCEEDED),
    "UNAVAILABLE": (DeliveryOutcome.RETRYABLE, ErrorCode.UNAVAILABLE),
    "INTERNAL": (DeliveryOutcome.RETRYABLE, ErrorCode.SERVER_ERROR),
    "THIRD_PARTY_AUTH_ERROR": (DeliveryOutcome.PERMANENT, ErrorCode.THIRD_PARTY_AUTH),
    "APNS_AUTH_ERROR": (DeliveryOutcome.PERMANENT, ErrorCode.THIRD_PARTY_AUTH),
}

# The SDK's platform code (``FirebaseError.code``) when no FCM errorCode is present.
PLATFORM_CODE_TABLE: dict[str, _Outcome] = {
    "DEADLINE_EXCEEDED": (DeliveryOutcome.RETRYABLE, ErrorCode.TIMEOUT),
    "UNAVAILABLE": (DeliveryOutcome.RETRYABLE, ErrorCode.UNAVAILABLE),
    "INTERNAL": (DeliveryOutcome.RETRYABLE, ErrorCode.SERVER_ERROR),
    "RESOURCE_EXHAUSTED": (DeliveryOutcome.RETRYABLE, ErrorCode.QUOTA_EXCEEDED),
    "UNAUTHENTICATED": (DeliveryOutcome.PERMANENT, ErrorCode.AUTH_ERROR),
    "PERMISSION_DENIED": (DeliveryOutcome.PERMANENT, ErrorCode.AUTH_ERROR),
    "NOT_FOUND": (DeliveryOutcome.PERMANENT, ErrorCode.CONFIG_ERROR),
    "INVALID_ARGUMENT": (DeliveryOutcome.PERMANENT, ErrorCode.INVALID_ARGUMENT),
    "FAILED_PRECONDITION": (DeliveryOutcome.PERMANENT, ErrorCode.PROVIDER_ERROR),
}


def _error_body(exc: Any) -> dict[str, Any]:
    response = getattr(exc, "http_response", None)
    if response is None:
        return {}
    try:
        body = json.loads(response.content or b"{}")
    except (ValueError, TypeError):
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _token_is_the_problem(error: dict[str, Any]) -> bool:
    message = str(error.get("message", "")).lower()
    if "registration token" in message or "installation id" in message:
        return True
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == BAD_REQUEST_DETAIL_TYPE:
            for violation in detail.get("fieldViolations") or []:
                field = str(violation.get("field", "")) if isinstance(violation, dict) else ""
                if field.split(".")[-1] in ("token", "fid"):
                    return True
    return False


def classify_fcm_error(exc: Any) -> tuple[DeliveryOutcome, ErrorCode, float | None]:
    """``(outcome, error_code, retry_after_s)`` for a per-message ``FirebaseError``."""
    error = _error_body(exc)
    fcm_code = None
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_DETAIL_TYPE:
            fcm_code = detail.get("errorCode")
    response = getattr(exc, "http_response", None)
    status = int(getattr(response, "status_code", 0) or 0)
    headers = getattr(response, "headers", None)
    retry_after = parse_retry_after(headers) if headers is not None else None

    outcome: _Outcome
    if fcm_code == "INVALID_ARGUMENT" or (
        fcm_code is None and getattr(exc, "code", None) == "INVALID_ARGUMENT"
    ):
        code = (
            ErrorCode.INVALID_TOKEN if _token_is_the_problem(error) else ErrorCode.INVALID_ARGUMENT
        )
        outcome = (DeliveryOutcome.PERMANENT, code)
    elif fcm_code in FCM_ERROR_TABLE:
        outcome = FCM_ERROR_TABLE[fcm_code]
    elif status == 429:
        outcome = (DeliveryOutcome.RETRYABLE, ErrorCode.RATE_LIMITED)
    elif status >= 500:
        outcome = (DeliveryOutcome.RETRYABLE, ErrorCode.SERVER_ERROR)
    elif response is None and getattr(exc, "code", None) in ("UNAVAILABLE", "UNKNOWN"):
        outcome = (DeliveryOutcome.RETRYABLE, ErrorCode.NETWORK_ERROR)
    elif str(getattr(exc, "code", "")) in PLATFORM_CODE_TABLE:
        outcome = PLATFORM_CODE_TABLE[str(exc.code)]
    elif 400 <= status < 500:
        outcome = (DeliveryOutcome.PERMANENT, ErrorCode.PROVIDER_ERROR)
    else:
        outcome = (DeliveryOutcome.RETRYABLE, ErrorCode.NETWORK_ERROR)
    if outcome[0] is DeliveryOutcome.PERMANENT:
        retry_after = None
    return outcome[0], outcome[1], retry_after


def classify_auth_failure(exc: BaseException) -> tuple[DeliveryOutcome, ErrorCode]:
    """Token refresh failures (google.auth RefreshError / TransportError, by duck typing)."""
    cause: BaseException | None = exc
    while cause is not None:
        name = type(cause).__name__
        if name == "RefreshError":
            if getattr(cause, "retryable", False):
                return DeliveryOutcome.RETRYABLE, ErrorCode.AUTH_UNAVAILABLE
            return DeliveryOutcome.PERMANENT, ErrorCode.AUTH_ERROR
        if name == "TransportError":
            return DeliveryOutcome.RETRYABLE, ErrorCode.AUTH_UNAVAILABLE
        cause = getattr(cause, "cause", None) or cause.__cause__
    return DeliveryOutcome.RETRYABLE, ErrorCode.INTERNAL
