"""Read a large JSON object member by member, and one big array in it element by element.

``json.loads`` on tens of megabytes is one C call that holds the interpreter for the
whole decode. Here the standard decoder runs once per member or array element, so a
caller can pace the work (and stop at the first bad element). Same strictness as the
rest of the service: no NaN or Infinity, and nothing but whitespace after the object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_WS = re.compile(r"[ \t\n\r]*")


class JsonSyntaxError(ValueError):
    """The text is not well-formed JSON (or not an object at the top)."""


def _reject_constant(name: str) -> None:
    raise JsonSyntaxError(f"{name} is not allowed in JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> str:
        """Skip whitespace; the next character ('' at the end)."""
        match = _WS.match(self.text, self.pos)
        assert match is not None  # the pattern matches the empty string
        self.pos = match.end()
        return self.text[self.pos : self.pos + 1]

    def expect(self, char: str) -> None:
        if self.skip() != char:
            raise self.error(f"expected {char!r}")
        self.pos += 1

    def value(self) -> Any:
        self.skip()
        try:
            value, self.pos = _DECODER.raw_decode(self.text, self.pos)
        except json.JSONDecodeError as exc:
            raise JsonSyntaxError(
                f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
        except RecursionError:
            raise self.error("nested too deeply") from None
        except ValueError as exc:  # e.g. integers with thousands of digits
            raise JsonSyntaxError(f"malformed JSON: {exc}") from None
        return value

    def error(self, what: str) -> JsonSyntaxError:
        line = self.text.count("\n", 0, self.pos) + 1
        column = self.pos - self.text.rfind("\n", 0, self.pos)
        return JsonSyntaxError(f"malformed JSON at line {line} column {column}: {what}")

    def ends_after_item(self, close: str) -> bool:
        """Past the separator after an item: True at ``close``, False at ``,``."""
        following = self.skip()
        if following == close:
            self.pos += 1
            return True
        if following != ",":
            raise self.error(f"expected ',' or {close!r}")
        self.pos += 1
        return False

    def elements(self) -> Iterator[Any]:
        """The elements of the array starting here, decoded one at a time."""
        self.expect("[")
        if self.skip() == "]":
            self.pos += 1
            return
        while True:
            yield self.value()
            if self.ends_after_item("]"):
                return


def object_members(text: str, *, streamed: frozenset[str]) -> Iterator[tuple[str, Any]]:
    """The members of the top-level object, in document order.

    A member named in ``streamed`` whose value is an array comes as an iterator over its
    elements; whatever of it the caller leaves unread is read (and checked) before the
    next member. Every other value comes decoded.
    """
    reader = _Reader(text)
    reader.expect("{")
    if reader.skip() == "}":
        reader.pos += 1
    else:
        while True:
            if reader.skip() != '"':
                raise reader.error("expected a member name")
            name = reader.value()
            reader.expect(":")
            if name in streamed and reader.skip() == "[":
                elements = reader.elements()
                yield name, elements
                for _ in elements:
                    pass
            else:
                yield name, reader.value()
            if reader.ends_after_item("}"):
                break
    if reader.skip():
        raise reader.error("unexpected data after the object")
