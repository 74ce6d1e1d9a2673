"""Small real files of each scan type, and liars, for the credential tests."""

from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png() -> bytes:
    """A 1x1 white PNG."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", pixels)
        + _chunk(b"IEND", b"")
    )


def jpeg() -> bytes:
    """The markers of a JPEG around a token payload (start, JFIF header, end)."""
    jfif = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return (
        b"\xff\xd8"
        + jfif
        + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
        + b"\x00" * 32
        + b"\xff\xd9"
    )


def pdf(padding: int = 0) -> bytes:
    body = (
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    )
    tail = b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
    return body + b"%" + b"x" * max(0, padding - len(body) - len(tail) - 2) + b"\n" + tail


def sized_pdf(size: int) -> bytes:
    data = pdf(size)
    assert len(data) == size, len(data)
    return data


def elf_with_pdf_header() -> bytes:
    """An executable wearing a PDF header: no PDF trailer, an ELF body."""
    return b"%PDF-1.7\n" + b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 4000


def pdf_with_script() -> bytes:
    return pdf().replace(b"/Type /Catalog", b"/Type /Catalog /OpenAction << /S /JavaScript >>")
