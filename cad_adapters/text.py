"""Text that PostgreSQL can store: no NUL and no unpaired UTF-16 surrogate.

JSON can carry both (``"\\u0000"``, ``"\\ud800"``) and Python decodes them happily,
but neither ``text`` nor ``jsonb`` accepts them: left alone they surface as a 500
deep inside a transaction. Every document is checked once, right after decoding.
"""

from __future__ import annotations

import re
from typing import Any, Final

# A JSON text can only smuggle either character in as an escape: raw NUL is an invalid
# control character and raw surrogates are not valid UTF-8. Most documents contain
# neither escape, so the walk below runs only when this finds one.
_SUSPECT_ESCAPE: Final = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None when it can."""
    if "\x00" in text:
        return "must not contain a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain an unpaired surrogate (invalid Unicode)"
    return None


def storable(text: str) -> str:
    """``text`` with NUL and unpaired surrogates replaced (for text we must keep, not refuse)."""
    if unstorable(text) is None:
        return text
    return text.replace("\x00", "\ufffd").encode("utf-8", errors="replace").decode("utf-8")


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def first_unstorable(document: Any) -> tuple[str, str] | None:
    """(JSON Pointer, reason) of the first key or string that cannot be stored, if any."""
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        value, pointer = stack.pop()
        if isinstance(value, str):
            reason = unstorable(value)
            if reason is not None:
                return pointer, reason
        elif isinstance(value, dict):
            for key, item in value.items():
                here = f"{pointer}/{_escape(key)}"
                reason = unstorable(key)
                if reason is not None:
                    # Named with U+FFFD in place of what cannot be stored (nor logged).
                    return storable(here), f"field name {reason}"
                stack.append((item, here))
        elif isinstance(value, list):
            stack.extend((item, f"{pointer}/{i}") for i, item in enumerate(value))
    return None


def may_hold_unstorable(json_text: str) -> bool:
    """Cheap pre-check on the raw JSON text: can any decoded string hold NUL or a surrogate?"""
    return _SUSPECT_ESCAPE.search(json_text) is not None
