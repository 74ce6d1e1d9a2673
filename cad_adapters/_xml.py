"""Hardened XML parsing for every XML a CAD may send (CAP, PIDF-LO inside EIDO JSON).

Only :mod:`defusedxml` parses here. On top of its defaults this module

* refuses any document type declaration (``<!DOCTYPE``), hence every internal or
  external entity, parameter entity and external DTD (XXE, SSRF, billion laughs);
* caps the document size (:data:`MAX_XML_BYTES`) before parsing and the element
  nesting depth (:data:`MAX_XML_DEPTH`) while parsing;
* never processes XInclude, ``xsi:schemaLocation`` or ``<?xml-stylesheet?>``: the
  tree builder ignores processing instructions and nothing here resolves URIs.

Every refusal is a :class:`CadParseError`; nothing else escapes :func:`parse_xml`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from cad_adapters.errors import CadParseError

MAX_XML_BYTES = 1024 * 1024
"""Largest XML document accepted (1 MiB). Real CAP alerts with signatures are < 30 KB."""

MAX_XML_DEPTH = 32
"""Deepest element nesting accepted. CAP and PIDF-LO need fewer than 12 levels."""


class _DepthLimitedBuilder(TreeBuilder):
    """A tree builder that refuses documents nested deeper than ``max_depth``.

    It can also note where elements with one of ``span_tags`` start and end in the
    input (expat's byte offsets), for callers that must hand an element's original
    bytes on, such as a signed CAP alert inside an envelope.
    """

    def __init__(self, max_depth: int, span_tags: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self._depth = 0
        self._max_depth = max_depth
        self._span_tags = span_tags
        self._open: list[tuple[Element, int]] = []
        self.expat: Any = None
        self.spans: list[tuple[Element, int, int]] = []

    def start(self, tag: Any, attrs: dict[Any, Any], /) -> Element:
        self._depth += 1
        if self._depth > self._max_depth:
            raise CadParseError("", f"XML nested deeper than {self._max_depth} elements")
        element = super().start(tag, attrs)
        if tag in self._span_tags:
            self._open.append((element, self.expat.CurrentByteIndex))
        return element

    def end(self, tag: Any, /) -> Element:
        self._depth -= 1
        element = super().end(tag)
        if tag in self._span_tags:
            opened, start = self._open.pop()
            # The end offset is where the end tag starts; the caller finds its '>'.
            self.spans.append((opened, start, self.expat.CurrentByteIndex))
        return element


def _has_doctype(data: bytes) -> bool:
    # A cheap early refusal for the common encodings; the parser refuses any DTD anyway.
    lowered = data.lower()
    return b"<!doctype" in lowered or b"<\x00!\x00d\x00o\x00c\x00t\x00y\x00p\x00e" in lowered


def parse_xml(
    data: bytes | str,
    *,
    pointer: str = "",
    max_bytes: int = MAX_XML_BYTES,
    max_depth: int = MAX_XML_DEPTH,
) -> Element:
    """Parse ``data`` with defusedxml and return the root element.

    ``bytes`` are parsed as they are, so the document's own encoding declaration
    (e.g. ISO-8859-1) is honoured. A ``str`` (XML embedded in JSON) is stripped of
    leading whitespace and encoded as UTF-8. ``pointer`` names where the XML came
    from and is used for every :class:`CadParseError` raised.
    """
    return _parse(data, pointer, max_bytes, max_depth, frozenset())[0]


def parse_xml_spans(
    data: bytes, span_tags: frozenset[str], *, pointer: str = ""
) -> tuple[Element, list[tuple[Element, int, int]]]:
    """Like :func:`parse_xml`, plus where each element whose tag (``"{namespace}local"``)
    is in ``span_tags`` sits in ``data``: ``(element, start, end)`` in the order the
    elements end, ``data[start:end]`` being the element exactly as sent, from ``<`` of
    its start tag to ``>`` of its end tag.

    Only for ASCII-compatible encodings (UTF-8, ISO-8859-*, ...): a UTF-16 document
    is refused.
    """
    raw = bytes(data)
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or raw[:2] in (b"<\x00", b"\x00<"):
        raise CadParseError(pointer, "elements cannot be cut out of a UTF-16 document")
    root, spans = _parse(raw, pointer, MAX_XML_BYTES, MAX_XML_DEPTH, span_tags)
    out = []
    for element, start, end_tag in spans:
        end = raw.find(b">", end_tag) + 1
        if start < 0 or end <= start:
            raise CadParseError(pointer, "could not locate an element in the document")
        out.append((element, start, end))
    return root, out


def _parse(
    data: bytes | str, pointer: str, max_bytes: int, max_depth: int, span_tags: frozenset[str]
) -> tuple[Element, list[tuple[Element, int, int]]]:
    if isinstance(data, str):
        raw = data.lstrip().encode("utf-8", errors="replace")
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        raise CadParseError(pointer, f"expected XML text, got {type(data).__name__}")
    if len(raw) > max_bytes:
        raise CadParseError(pointer, f"XML document larger than {max_bytes} bytes")
    if not raw.strip():
        raise CadParseError(pointer, "XML document is empty")
    if _has_doctype(raw):
        raise CadParseError(pointer, "XML document type declarations (DTD) are not accepted")
    builder = _DepthLimitedBuilder(max_depth, span_tags)
    parser = DefusedXMLParser(
        target=builder,
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    builder.expat = parser.parser
    try:
        parser.feed(raw)
        root = parser.close()
    except CadParseError as exc:
        raise CadParseError(pointer, exc.detail) from None
    except DefusedXmlException as exc:
        raise CadParseError(pointer, f"XML refused: {type(exc).__name__}") from None
    except ParseError as exc:
        raise CadParseError(pointer, f"malformed XML: {exc}") from None
    except (ValueError, LookupError, RecursionError, MemoryError) as exc:
        # LookupError: unknown encoding declaration; ValueError: odd encodings.
        raise CadParseError(pointer, f"unreadable XML: {type(exc).__name__}") from None
    if not isinstance(root, Element):
        raise CadParseError(pointer, "XML document has no root element")
    return root, builder.spans


def split_tag(tag: object) -> tuple[str, str]:
    """``"{ns}local"`` → ``("ns", "local")``; comments and PIs give ``("", "")``."""
    if not isinstance(tag, str):
        return ("", "")
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return (ns, local)
    return ("", tag)


def children(element: Element, name: str, namespaces: frozenset[str]) -> Iterator[Element]:
    """Direct children called ``name`` in one of ``namespaces`` (matched by URI, not prefix)."""
    for child in element:
        ns, local = split_tag(child.tag)
        if local == name and ns in namespaces:
            yield child


def first_child(element: Element, name: str, namespaces: frozenset[str]) -> Element | None:
    return next(children(element, name, namespaces), None)


def text_of(element: Element | None) -> str | None:
    """The stripped text of ``element``; ``None`` when absent or blank."""
    if element is None or element.text is None:
        return None
    text = element.text.strip()
    return text or None
