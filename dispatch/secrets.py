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
    SUPERVISOR = "dsv"


def new_token(kind: TokenKind) -> str:
    """A fresh secret with a readable prefix (so leaked keys are recognisable in scans)."""
    return f"{kind.value}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def token_matches(presented: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_token(presented), stored_hash)


def bearer_token(authorization: str | None) -> str | None:
    """The token in an ``Authorization: Bearer …`` header, or None when absent or malformed."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > 512:
        return None
    return value
