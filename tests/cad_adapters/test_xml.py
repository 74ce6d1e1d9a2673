"""The hardened XML helper refuses DTDs, entities, oversize and over-deep documents."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cad_adapters import _xml
from cad_adapters._xml import parse_xml, split_tag
from cad_adapters.errors import CadParseError

from .conftest import sample_bytes

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<foo>&xxe;</foo>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE foo SYSTEM "http://127.0.0.1:9/evil.dtd"><foo/>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p"> %p;]><foo/>"""

HOSTILE = [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY]


@pytest.mark.parametrize("document", HOSTILE)
def test_dtd_payloads_refused(document: bytes) -> None:
    """Billion laughs, XXE, external DTDs and parameter entities are all refused."""
    with pytest.raises(CadParseError, match="DTD"):
        parse_xml(document, pointer="/x")


@pytest.mark.parametrize("document", HOSTILE)
def test_defusedxml_refuses_even_without_prescan(
    document: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the cheap ``<!DOCTYPE`` pre-scan disabled, defusedxml itself still refuses."""
    monkeypatch.setattr(_xml, "_has_doctype", lambda _data: False)
    with pytest.raises(CadParseError) as info:
        parse_xml(document, pointer="/x")
    assert info.value.pointer == "/x"
    assert "Forbidden" in info.value.detail


def test_utf16_doctype_refused() -> None:
    """A DTD hidden in a UTF-16 document is refused too."""
    document = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'
    with pytest.raises(CadParseError):
        parse_xml(document.encode("utf-16"))


def test_undeclared_entity_refused() -> None:
    """An entity reference without a DTD is malformed XML, not a fetch."""
    with pytest.raises(CadParseError, match="malformed"):
        parse_xml(b"<a>&xxe;</a>")


def test_size_limit() -> None:
    """Documents over the byte limit are refused before parsing."""
    with pytest.raises(CadParseError, match="larger than"):
        parse_xml(b"<a>" + b" " * _xml.MAX_XML_BYTES + b"</a>")


def test_depth_limit() -> None:
    """Nesting deeper than the limit is refused while parsing; the limit itself is fine."""
    depth = _xml.MAX_XML_DEPTH
    ok = b"<a>" * depth + b"</a>" * depth
    assert parse_xml(ok).tag == "a"
    too_deep = b"<a>" * (depth + 1) + b"</a>" * (depth + 1)
    with pytest.raises(CadParseError, match="deeper"):
        parse_xml(too_deep, pointer="/p")


def test_stylesheet_pi_and_xinclude_are_inert() -> None:
    """Processing instructions are dropped and XInclude is never expanded."""
    root = parse_xml(
        b'<?xml-stylesheet href="http://127.0.0.1:9/x.xsl" type="text/xsl"?>'
        b'<a xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<xi:include href="file:///etc/passwd"/></a>'
    )
    assert [split_tag(child.tag) for child in root] == [
        ("http://www.w3.org/2001/XInclude", "include")
    ]


def test_declared_encoding_honoured() -> None:
    """Bytes are parsed with their declared encoding (ISO-8859-1 here)."""
    root = parse_xml('<?xml version="1.0" encoding="ISO-8859-1"?><a>Montréal</a>'.encode("latin-1"))
    assert root.text == "Montréal"


@pytest.mark.parametrize("document", [b"", b"   ", b"<a>", b"not xml", b"<a></b>", b"\xff\xfe\x00"])
def test_malformed_refused(document: bytes) -> None:
    """Empty, truncated or garbage input is a CadParseError."""
    with pytest.raises(CadParseError):
        parse_xml(document)


def test_google_xee_sample_refused() -> None:
    """The google/cap-library XXE sample (DTD, entities, XInclude, schemaLocation) is refused."""
    with pytest.raises(CadParseError, match="DTD"):
        parse_xml(sample_bytes("cap/google_xee.cap"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_cad_parse_error(data: bytes) -> None:
    """Arbitrary bytes either parse or raise CadParseError, never anything else."""
    with contextlib.suppress(CadParseError):
        parse_xml(data)
