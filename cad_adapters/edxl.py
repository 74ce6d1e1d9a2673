"""OASIS EDXL-DE 1.0 envelopes: the CAP alerts they carry, and nothing else.

NSW RFS (among others) publishes its CAP alerts wrapped in an
``<EDXLDistribution>``, one ``contentObject`` per alert::

    EDXLDistribution/contentObject/xmlContent/embeddedXMLContent/alert

Only that shape is unwrapped. Anything else an envelope may carry is refused with
the reason, so nothing arrives unread: a ``nonXMLContent`` (a link or a base64
file), a ``keyXMLContent``, embedded XML that is not a CAP alert, or several
documents in one ``contentObject``. ``distributionStatus`` other than ``Actual``
(``Exercise``, ``System``, ``Test``) marks every alert inside as a test, whatever
the alerts say, so an exercise envelope never alerts volunteers.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from cad_adapters._xml import children, first_child, split_tag, text_of
from cad_adapters.cap import is_cap_alert
from cad_adapters.errors import CadParseError

EDXL_DE_NS = "urn:oasis:names:tc:emergency:EDXL:DE:1.0"
_DE = frozenset({EDXL_DE_NS})
DISTRIBUTION_STATUSES = frozenset({"Actual", "Exercise", "System", "Test"})
MAX_ENVELOPE_ALERTS = 250
"""Most alerts one envelope may carry (a 1 MiB envelope of ~4 KB alerts holds ~250)."""

_ROOT = "/EDXLDistribution"


@dataclass(frozen=True, slots=True)
class EmbeddedAlert:
    pointer: str
    """Where the alert sits, e.g. ``/EDXLDistribution/contentObject[2]/xmlContent/
    embeddedXMLContent``; an error inside the alert is reported below it."""
    element: Element


@dataclass(frozen=True, slots=True)
class Envelope:
    distribution_id: str | None
    is_test: bool
    alerts: tuple[EmbeddedAlert, ...]


def is_edxl_envelope(root: Element) -> bool:
    return split_tag(root.tag)[1] == "EDXLDistribution"


def unwrap(root: Element) -> Envelope:
    """The CAP alerts of an EDXL-DE 1.0 envelope, in document order."""
    ns, _ = split_tag(root.tag)
    if ns != EDXL_DE_NS:
        raise CadParseError("", f"only EDXL-DE 1.0 envelopes are accepted, not {ns[:80]!r}")
    status = text_of(first_child(root, "distributionStatus", _DE))
    if status not in DISTRIBUTION_STATUSES:
        raise CadParseError(
            f"{_ROOT}/distributionStatus",
            f"expected one of {', '.join(sorted(DISTRIBUTION_STATUSES))}, got {str(status)[:40]!r}",
        )
    objects = list(children(root, "contentObject", _DE))
    if not objects:
        raise CadParseError(_ROOT, "the envelope carries no contentObject")
    if len(objects) > MAX_ENVELOPE_ALERTS:
        raise CadParseError(
            _ROOT, f"{len(objects)} contentObjects; at most {MAX_ENVELOPE_ALERTS} are accepted"
        )
    alerts = tuple(
        _embedded_alert(obj, f"{_ROOT}/contentObject[{n}]") for n, obj in enumerate(objects, 1)
    )
    return Envelope(
        distribution_id=text_of(first_child(root, "distributionID", _DE)),
        is_test=status != "Actual",
        alerts=alerts,
    )


def _embedded_alert(content: Element, pointer: str) -> EmbeddedAlert:
    if first_child(content, "nonXMLContent", _DE) is not None:
        raise CadParseError(
            f"{pointer}/nonXMLContent", "only CAP alerts embedded as XML are accepted"
        )
    xml_content = list(children(content, "xmlContent", _DE))
    if len(xml_content) != 1:
        raise CadParseError(pointer, "expected one xmlContent carrying a CAP alert")
    pointer = f"{pointer}/xmlContent"
    if first_child(xml_content[0], "keyXMLContent", _DE) is not None:
        raise CadParseError(
            f"{pointer}/keyXMLContent", "only a whole embedded CAP alert is accepted"
        )
    embedded = list(children(xml_content[0], "embeddedXMLContent", _DE))
    if len(embedded) != 1:
        raise CadParseError(pointer, "expected one embeddedXMLContent carrying a CAP alert")
    pointer = f"{pointer}/embeddedXMLContent"
    documents = list(embedded[0])
    if len(documents) != 1:
        raise CadParseError(
            pointer, f"expected exactly one embedded document, found {len(documents)}"
        )
    if not is_cap_alert(documents[0]):
        ns, name = split_tag(documents[0].tag)
        raise CadParseError(pointer, f"only CAP alerts are accepted, not {{{ns[:80]}}}{name[:40]}")
    return EmbeddedAlert(pointer=pointer, element=documents[0])
