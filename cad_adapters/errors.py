"""The one error type every CAD parser raises for input it refuses."""

from __future__ import annotations


class CadParseError(ValueError):
    """A CAD document was refused.

    ``pointer`` names the offending field as a JSON Pointer (RFC 6901) for JSON
    documents or an element path for XML, so the HTTP layer can name it in its
    problem+json answer; ``""`` means the document as a whole.
    """

    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__(f"{pointer or '/'}: {detail}")
        self.pointer = pointer
        self.detail = detail
