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


class UnknownLocation(CadParseError):
    """The source sent a placeholder position, (0, 0) "Null Island", meaning "not known".

    Not hostile: parsers catch it and report ``location=None``, so the incident is
    stored (and never alerts) instead of being refused.
    """
