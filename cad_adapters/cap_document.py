"""A CAP document as agencies post it: one ``<alert>`` or an EDXL-DE envelope of alerts,
signed or not.

:func:`read_cap` turns the posted bytes into one :class:`IncidentReport` per alert:

* a bare ``<alert>`` gives one report (:mod:`cad_adapters.cap`);
* an EDXL-DE 1.0 envelope gives one report per embedded alert, in document order
  (:mod:`cad_adapters.edxl`; anything else in it is refused). An envelope whose
  ``distributionStatus`` is not ``Actual`` makes every report a test;
* with a pinned certificate every alert must carry a valid enveloped signature made
  with its key (:mod:`cad_adapters.cap_signature`) and the report is read from the
  bytes that signature covers. An alert inside an envelope is verified as the
  standalone document it was when it was signed: its own bytes, cut out of the
  envelope as sent. Without a pinned certificate signatures are not checked, and
  :attr:`CapDocument.signature` says so.

A refusal anywhere refuses the whole document, with a pointer below the alert's
place in the envelope (``/EDXLDistribution/contentObject[2]/.../alert/sent``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal
from xml.etree.ElementTree import Element

from cad_adapters._xml import parse_xml, parse_xml_spans, split_tag
from cad_adapters.cap import CAP_NAMESPACES, alert_report, is_cap_alert
from cad_adapters.cap_signature import Certificate, verify_alert
from cad_adapters.edxl import Envelope, is_edxl_envelope, unwrap
from cad_adapters.errors import CadParseError
from cad_adapters.models import IncidentReport

SignatureCheck = Literal["verified", "not_checked"]
_ALERT_TAGS = frozenset(f"{{{ns}}}alert" for ns in CAP_NAMESPACES)
_ENCODING = re.compile(
    rb"""^(?:\xef\xbb\xbf)?<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z][\w.-]*)["']"""
)


@dataclass(frozen=True, slots=True)
class CapDocument:
    reports: tuple[IncidentReport, ...]
    envelope: str | None
    """``"EDXL-DE"`` when the alerts came out of an envelope, else None."""
    distribution_id: str | None
    signature: SignatureCheck


class _Under:
    """Re-raises a :class:`CadParseError` with ``prefix`` before its pointer."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, CadParseError) and self._prefix:
            inner = exc.pointer or "/alert"
            raise type(exc)(self._prefix + inner, exc.detail) from None


def _standalone(envelope: bytes, alert: bytes) -> bytes:
    """An embedded alert's bytes as a document of its own, in the envelope's encoding."""
    declared = _ENCODING.match(envelope)
    if declared is None:
        return alert
    return b'<?xml version="1.0" encoding="' + declared.group(1) + b'"?>' + alert


def _signed_report(
    document: bytes, pinned: Certificate, now: datetime, tz: tzinfo
) -> IncidentReport:
    return alert_report(parse_xml(verify_alert(document, pinned, now=now)), default_tz=tz)


def _envelope_reports(
    xml: bytes,
    envelope: Envelope,
    spans: dict[int, tuple[int, int]],
    pinned: Certificate | None,
    now: datetime | None,
    tz: tzinfo,
) -> list[IncidentReport]:
    reports = []
    for embedded in envelope.alerts:
        with _Under(embedded.pointer):
            if pinned is None or now is None:
                report = alert_report(embedded.element, default_tz=tz)
            else:
                start, end = spans[id(embedded.element)]
                report = _signed_report(_standalone(xml, xml[start:end]), pinned, now, tz)
        reports.append(dataclasses.replace(report, is_test=True) if envelope.is_test else report)
    return reports


def read_cap(
    xml: bytes,
    *,
    default_tz: tzinfo,
    pinned: Certificate | None = None,
    now: datetime | None = None,
) -> CapDocument:
    """The reports of a posted CAP document; ``pinned`` requires signatures (checked at ``now``).

    Raises :class:`CadParseError` (with a pointer) for anything refused, including a
    missing or invalid signature when ``pinned`` is set.
    """
    if pinned is not None and now is None:
        raise ValueError("checking signatures needs the current time")
    root: Element
    spans: dict[int, tuple[int, int]] = {}
    if pinned is None:
        root = parse_xml(xml)
    else:
        root, found = parse_xml_spans(xml, _ALERT_TAGS)
        # The elements stay alive with ``root``, so their ids are stable keys here.
        spans = {id(element): (start, end) for element, start, end in found}
    check: SignatureCheck = "not_checked" if pinned is None else "verified"
    if is_edxl_envelope(root):
        envelope = unwrap(root)
        reports = _envelope_reports(xml, envelope, spans, pinned, now, default_tz)
        return CapDocument(tuple(reports), "EDXL-DE", envelope.distribution_id, check)
    if pinned is None or now is None:
        report = alert_report(root, default_tz=default_tz)
    elif not is_cap_alert(root):
        ns, name = split_tag(root.tag)
        raise CadParseError("", f"not a CAP alert: root element {{{ns}}}{name}")
    else:
        report = _signed_report(xml, pinned, now, default_tz)
    return CapDocument((report,), None, None, check)
