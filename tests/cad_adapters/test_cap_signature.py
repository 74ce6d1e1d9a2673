"""CAP alerts signed with an enveloped XML signature, checked against a pinned certificate.

Every key and certificate is made by the test; the signer is signxml's.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from cad_adapters.cap_document import read_cap
from cad_adapters.cap_signature import load_certificate, pinned_certificate
from cad_adapters.errors import CadParseError

from .conftest import sample_bytes
from .signing import Signer, new_signer, rsa_signer, sign, without_declaration

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"
NOW = datetime.now(UTC)


def alert(identifier: str = "SIG-1", sender: str = "cad@psap.example.org") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="{CAP12}">
  <identifier>{identifier}</identifier>
  <sender>{sender}</sender>
  <sent>2026-03-01T10:00:00+01:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Private</scope>
  <info Id="info-1">
    <category>Health</category>
    <event>Cardiac arrest</event>
    <urgency>Immediate</urgency><severity>Extreme</severity><certainty>Observed</certainty>
    <area><areaDesc>Stationsplein 1</areaDesc><circle>52.378901,4.900272 0.02</circle></area>
  </info>
</alert>
""".encode()


@pytest.fixture(scope="module")
def signer() -> Signer:
    return new_signer()


def read(document: bytes, signer: Signer, now: datetime = NOW) -> list[str]:
    pinned = load_certificate(signer.pem)
    result = read_cap(document, default_tz=UTC, pinned=pinned, now=now)
    assert result.signature == "verified"
    return [r.source_incident_id for r in result.reports]


def refusal(document: bytes, signer: Signer, now: datetime = NOW) -> CadParseError:
    with pytest.raises(CadParseError) as info:
        read(document, signer, now)
    return info.value


@pytest.mark.parametrize(
    "c14n",
    [
        CanonicalizationMethod.CANONICAL_XML_1_0,
        CanonicalizationMethod.CANONICAL_XML_1_1,
        CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    ],
)
def test_signed_alert_is_accepted_with_its_pinned_certificate(
    signer: Signer, c14n: CanonicalizationMethod
) -> None:
    """An ECDSA-signed alert verifies against the pinned certificate, whatever the c14n."""
    assert read(sign(alert(), signer, c14n=c14n), signer) == ["cad@psap.example.org/SIG-1"]


def test_rsa_signed_alert_is_accepted() -> None:
    signer = rsa_signer()
    assert read(sign(alert(), signer), signer) == ["cad@psap.example.org/SIG-1"]


def test_one_changed_byte_is_refused(signer: Signer) -> None:
    """Moving the location by one digit after signing breaks the digest."""
    signed = sign(alert(), signer)
    tampered = signed.replace(b"52.378901", b"52.378902")
    assert len(tampered) == len(signed)
    assert sum(a != b for a, b in zip(signed, tampered, strict=True)) == 1
    error = refusal(tampered, signer)
    assert error.pointer == "/alert/Signature"
    assert "changed after it was signed" in error.detail


def test_signed_by_another_key_is_refused(signer: Signer) -> None:
    """A valid signature by someone else's key (with their certificate inside) is refused."""
    error = refusal(sign(alert(), new_signer(name="someone-else.example.org")), signer)
    assert "not made with the pinned certificate's key" in error.detail


def test_unsigned_alert_is_refused(signer: Signer) -> None:
    error = refusal(alert(), signer)
    assert (error.pointer, "carries no ds:Signature" in error.detail) == ("/alert/Signature", True)


def test_without_a_pinned_certificate_nothing_is_checked(signer: Signer) -> None:
    """No pin: signed, unsigned and tampered alerts are all read, marked not_checked."""
    for document in (alert(), sign(alert(), signer), sign(alert(), signer).replace(b"9", b"8")):
        result = read_cap(document, default_tz=UTC)
        assert result.signature == "not_checked"
        assert len(result.reports) == 1


def test_sha1_signatures_are_refused_as_too_weak() -> None:
    signer = rsa_signer()
    weak = sign(alert(), signer, algorithm=SignatureMethod.RSA_SHA1, digest=DigestAlgorithm.SHA1)
    assert "SHA-1" in refusal(weak, signer).detail


def test_originator_and_relay_signatures_side_by_side(signer: Signer) -> None:
    """A relay signs the originator's signed alert again: pinning either certificate works
    (the relay's covers the originator's signature, the originator's is checked with the
    relay's set aside); a third party's certificate does not."""
    relay = new_signer(name="relay.example.org")
    relayed = sign(sign(alert(), signer), relay)
    assert read(relayed, signer) == ["cad@psap.example.org/SIG-1"]
    assert read(relayed, relay) == ["cad@psap.example.org/SIG-1"]
    assert "not made with" in refusal(relayed, new_signer(name="third.example.org")).detail
    tampered = relayed.replace(b"SIG-1", b"SIG-2")
    for pinned in (signer, relay):
        assert "changed after it was signed" in refusal(tampered, pinned).detail


def test_expired_or_future_pinned_certificate_refuses() -> None:
    """The pinned certificate must be valid at the (injected) time of the check."""
    expired = new_signer(not_before=NOW - timedelta(days=30), not_after=NOW - timedelta(days=1))
    error = refusal(sign(alert(), expired), expired)
    assert "pinned certificate cannot be used" in error.detail
    assert "expired" in error.detail
    assert read(sign(alert(), expired), expired, now=NOW - timedelta(days=2))


# --- signature wrapping: what we read is exactly what was signed ---------------------


def test_signature_over_a_part_of_the_alert_is_refused(signer: Signer) -> None:
    """A genuine signature that covers only <info> (Reference URI="#info-1") cannot vouch
    for a sender and identifier outside it, even though the signature itself verifies."""
    partial = sign(alert(), signer, reference_uri="#info-1")
    forged = partial.replace(b"cad@psap.example.org", b"attacker@example.net")
    for document in (partial, forged):
        error = refusal(document, signer)
        assert "must cover the whole alert" in error.detail


def test_a_genuine_alert_wrapped_inside_another_is_refused(signer: Signer) -> None:
    """A signed alert hidden in an extension element of a forged alert, its signature
    moved up to the forged root: the signature does not cover the forged alert."""
    genuine = sign(alert(), signer)
    signature = re.search(rb"<ds:Signature.*</ds:Signature>", genuine, re.S)
    assert signature is not None
    inner = genuine.replace(signature.group(0), b"")
    forged = alert(identifier="FORGED", sender="attacker@example.net").replace(
        b"</alert>",
        b'<x:wrapped xmlns:x="urn:example:x">'
        + without_declaration(inner)
        + b"</x:wrapped>"
        + signature.group(0)
        + b"</alert>",
    )
    error = refusal(forged, signer)
    assert "changed after it was signed" in error.detail


def test_signature_must_be_a_child_of_alert(signer: Signer) -> None:
    """The same signature moved inside <info> is not looked for there."""
    genuine = sign(alert(), signer)
    signature = re.search(rb"<ds:Signature.*</ds:Signature>", genuine, re.S)
    assert signature is not None
    moved = genuine.replace(signature.group(0), b"").replace(
        b"</info>", signature.group(0) + b"</info>"
    )
    assert "carries no ds:Signature" in refusal(moved, signer).detail


def test_what_is_read_is_the_signed_content(signer: Signer) -> None:
    """Comments are not signed (c14n without comments) and cannot smuggle content in: the
    report comes from the canonical signed bytes."""
    signed = sign(alert(), signer)
    commented = signed.replace(b"<identifier>SIG-1", b"<identifier><!-- x -->SIG-1")
    assert read(commented, signer) == ["cad@psap.example.org/SIG-1"]


def test_entities_inside_a_signed_alert_are_refused_by_defusedxml(signer: Signer) -> None:
    """A DTD with an external entity put into a signed message is refused by the defusedxml
    gate (naming the DTD) before any signature code parses it."""
    signed = sign(alert(), signer)
    hostile = signed.replace(
        b"?>", b'?><!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>', 1
    ).replace(b"Stationsplein 1", b"&x;")
    error = refusal(hostile, signer)
    assert "DTD" in error.detail
    assert "root:" not in error.detail


# --- envelopes ------------------------------------------------------------------------


def envelope(*alerts: bytes) -> bytes:
    objects = b"".join(
        b"<de:contentObject><de:xmlContent><de:embeddedXMLContent>"
        + without_declaration(a)
        + b"</de:embeddedXMLContent></de:xmlContent></de:contentObject>"
        for a in alerts
    )
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<de:EDXLDistribution xmlns:de="urn:oasis:names:tc:emergency:EDXL:DE:1.0">'
        b"<de:distributionID>D-9</de:distributionID>"
        b"<de:distributionStatus>Actual</de:distributionStatus>"
        + objects
        + b"</de:EDXLDistribution>"
    )


def test_signed_alerts_inside_an_envelope_are_verified_one_by_one(signer: Signer) -> None:
    """Each embedded alert is verified as the standalone document it was signed as (inclusive
    c14n too, which would see the envelope's namespace if the alert were not cut out)."""
    first = sign(alert("ENV-1"), signer)
    second = sign(alert("ENV-2"), signer, c14n=CanonicalizationMethod.CANONICAL_XML_1_1)
    assert read(envelope(first, second), signer) == [
        "cad@psap.example.org/ENV-1",
        "cad@psap.example.org/ENV-2",
    ]


def test_one_unsigned_alert_refuses_the_envelope(signer: Signer) -> None:
    error = refusal(envelope(sign(alert("ENV-1"), signer), alert("ENV-2")), signer)
    assert error.pointer == (
        "/EDXLDistribution/contentObject[2]/xmlContent/embeddedXMLContent/alert/Signature"
    )


# --- the pinned certificate itself ----------------------------------------------------


def test_load_certificate_refusals(signer: Signer) -> None:
    """Only one readable certificate with a usable key is accepted; never a private key."""
    from cryptography.hazmat.primitives import serialization

    private = signer.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    weak = new_signer(rsa_bits=1024)
    cases = {
        "": "must be a PEM certificate",
        "hello": "exactly one PEM certificate",
        signer.pem + private: "private key",
        signer.pem + signer.pem: "exactly one",
        signer.pem.replace("M", "A", 3): "not a readable PEM certificate",
        weak.pem: "1024-bit RSA key",
        "x" * 20_000: "at most 16384",
    }
    for pem, reason in cases.items():
        with pytest.raises(ValueError, match=reason):
            load_certificate(pem)
    assert pinned_certificate(signer.pem) is pinned_certificate(signer.pem)


# --- a real relayed alert (shared sample) ---------------------------------------------


def _certificates(document: bytes) -> list[str]:
    return [
        "-----BEGIN CERTIFICATE-----\n" + c.decode().strip() + "\n-----END CERTIFICATE-----\n"
        for c in re.findall(rb"<X509Certificate>([^<]+)</X509Certificate>", document)
    ]


def test_real_environment_canada_signature_behind_a_relay_signature() -> None:
    """Environment Canada's alert as relayed by NAADS carries two signatures; with EC's
    certificate pinned (checked within its validity) the alert verifies: the relay's later
    signature is set aside, and EC's covers everything else."""
    data = sample_bytes("cap/tannerryan_PelmorexNAADS_WindWarning.xml")
    relay, originator = (load_certificate(pem) for pem in _certificates(data))
    when = originator.not_valid_before_utc + timedelta(days=30)
    result = read_cap(data, default_tz=UTC, pinned=originator, now=when)
    assert result.signature == "verified"
    assert result.reports[0].source_incident_id == (
        "cap-pac@canada.ca/urn:oid:2.49.0.1.124.0642871265.2019"
    )
    tampered = data.replace(b"<event>wind</event>", b"<event>wind!</event>")
    with pytest.raises(CadParseError, match="changed after it was signed"):
        read_cap(tampered, default_tz=UTC, pinned=originator, now=when)
    assert relay.subject != originator.subject


def test_real_sha1_signatures_are_refused_as_too_weak() -> None:
    data = sample_bytes("cap/google_canada_signed.cap")
    pinned = load_certificate(_certificates(data)[1])
    with pytest.raises(CadParseError, match="SHA-1"):
        read_cap(
            data, default_tz=UTC, pinned=pinned, now=pinned.not_valid_before_utc + timedelta(1)
        )
