"""Integration keys and bearer tokens: random, shown once, stored as hashes.

Tokens are 256-bit random strings, so a fast hash (SHA-256) is enough to make a
stolen database useless for impersonation; a slow password hash would only add
latency to every request. Look-ups go by hash; the final check uses
``hmac.compare_digest`` so no comparison leaks timing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum


class TokenKind(StrEnum):
    AGENCY_KEY = "dak"
    VOLUNTEER = "dvt"
    """Issued by a supervisor or the CLI; valid until the volunteer is erased."""
    SUPERVISOR = "dsv"
    VOLUNTEER_ACCESS = "dva"
    """A device session's short-lived access token."""
    VOLUNTEER_REFRESH = "dvr"
    """A device session's refresh token: used once, then replaced."""
    CONSOLE_SESSION = "dcs"
    """A supervisor's web console session (the cookie's value)."""


def new_token(kind: TokenKind) -> str:
    """A fresh secret with a readable prefix (so leaked keys are recognisable in scans)."""
    return f"{kind.value}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def token_matches(presented: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_token(presented), stored_hash)


CODE_DIGITS = 6


def new_code() -> str:
    """A sign-in code: six decimal digits, uniformly random."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def new_salt() -> bytes:
    return secrets.token_bytes(16)


def hash_code(salt: bytes, code: str) -> bytes:
    return hashlib.sha256(salt + code.encode("ascii", "replace")).digest()


def code_matches(presented: str, salt: bytes, stored_hash: bytes) -> bool:
    """Constant-time: the comparison takes as long whichever digit is wrong."""
    return hmac.compare_digest(hash_code(salt, presented), stored_hash)


def phone_hash(agency_id: object, phone_e164: str) -> bytes:
    """How a number is kept where only look-ups and counts need it (codes, rate limits)."""
    return hashlib.sha256(f"phone:{agency_id}:{phone_e164}".encode()).digest()


def bearer_token(authorization: str | None) -> str | None:
    """The token in an ``Authorization: Bearer …`` header, or None when absent or malformed."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > 512:
        return None
    return value


SIGNATURE_HEADER = "Dispatch-Signature"
SIGNATURE_WINDOW_S = 300


class SignatureError(Exception):
    """A body signature is missing, malformed, outside the window or wrong."""


def sign_body(body: bytes, key: str, timestamp: int) -> str:
    """The ``Dispatch-Signature`` header value a CAD sends with ``body``.

    HMAC-SHA256 over ``"{timestamp}." + body``, keyed with SHA-256 of the
    integration key. Keying with the hash lets the server verify without ever
    storing the key itself; a leaked database still cannot produce the bearer
    token every request also needs.
    """
    mac = hmac.new(hash_token(key), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_body_signature(header: str, body: bytes, key_hash: bytes, now_s: float) -> bytes:
    """Check a ``Dispatch-Signature`` header; returns the signature bytes (for replay checks)."""
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("signature header must look like t=<unix time>,v1=<hex>")
        fields[name] = value
    try:
        timestamp = int(fields["t"])
        claimed = bytes.fromhex(fields["v1"])
    except (KeyError, ValueError):
        raise SignatureError("signature header must look like t=<unix time>,v1=<hex>") from None
    if abs(now_s - timestamp) > SIGNATURE_WINDOW_S:
        raise SignatureError(f"signature timestamp is more than {SIGNATURE_WINDOW_S} s away")
    expected = hmac.new(key_hash, f"{timestamp}.".encode() + body, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, claimed):
        raise SignatureError("signature does not match the body")
    return expected
