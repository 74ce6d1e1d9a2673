"""Scans of credentials: the type is read from the bytes, never taken from the sender.

Only PDF, JPEG and PNG are kept, and only when the bytes are the declared type from the
first byte to the last: a PDF header on an executable has no PDF trailer, a PNG must
start with its header chunk and end with its end chunk, a JPEG must start and end with
its markers. PDFs that would run something when opened (JavaScript, launch actions,
embedded files) are refused too: supervisors open these files.
"""

from __future__ import annotations

import re
from typing import Final

MAX_SCAN_BYTES: Final = 5 * 1024 * 1024
MEDIA_TYPES: Final = ("application/pdf", "image/jpeg", "image/png")

_PDF_HEADER: Final = re.compile(rb"%PDF-[12]\.[0-9]")
_PDF_ACTIVE: Final = (b"/JavaScript", b"/JS", b"/Launch", b"/EmbeddedFile", b"/RichMedia")
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PNG_END: Final = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_TAIL: Final = 1024


class ScanRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _is_pdf(data: bytes) -> bool:
    return _PDF_HEADER.match(data) is not None and b"%%EOF" in data[-_TAIL:]


def _is_png(data: bytes) -> bool:
    return data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR" and data.endswith(_PNG_END)


def _is_jpeg(data: bytes) -> bool:
    return data.startswith(b"\xff\xd8\xff") and data.rstrip(b"\x00").endswith(b"\xff\xd9")


def sniff(data: bytes) -> str | None:
    """The media type the bytes are, whole, or None."""
    if _is_pdf(data):
        return "application/pdf"
    if _is_png(data):
        return "image/png"
    if _is_jpeg(data):
        return "image/jpeg"
    return None


def media_type_allowed(declared: str) -> bool:
    return declared in MEDIA_TYPES


def check_scan(declared: str, data: bytes) -> str:
    """The scan's media type; :class:`ScanRefused` (415, 413 or 422) when it is not kept."""
    if not media_type_allowed(declared):
        raise ScanRefused(415, "send application/pdf, image/jpeg or image/png")
    if len(data) > MAX_SCAN_BYTES:
        raise ScanRefused(413, f"at most {MAX_SCAN_BYTES} bytes")
    if not data:
        raise ScanRefused(422, "the scan is empty")
    found = sniff(data)
    if found is None:
        raise ScanRefused(422, f"the bytes are not a whole {declared} file")
    if found != declared:
        raise ScanRefused(422, f"declared {declared} but the bytes are {found}")
    if found == "application/pdf" and any(marker in data for marker in _PDF_ACTIVE):
        raise ScanRefused(422, "PDFs with scripts, launch actions or embedded files are refused")
    return found
