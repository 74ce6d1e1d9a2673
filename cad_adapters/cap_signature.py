"""Enveloped XML signatures (``ds:Signature``) on CAP alerts, checked against a pinned certificate.

CAP 1.2 lets a sender sign an alert with an enveloped XML-DSig signature, a
``ds:Signature`` child of ``<alert>``. An agency that pins its sender's
certificate gets only alerts that certificate's key signed; the check is done by
``signxml`` (a maintained XML-DSig implementation) and is fail-closed: anything it
cannot verify is refused with the reason.

What makes it safe to act on the result:

* **defusedxml first.** The document is parsed by :mod:`cad_adapters._xml` (no DTD,
  no entity, no external fetch, size and depth caps) before ``signxml``'s own parser
  sees a byte of it, so nothing hostile reaches a parser that could expand it.
* **See what is signed.** The caller parses the bytes the signature covers
  (:func:`verify_alert` returns them), never the posted document. The reference
  must be the whole alert (``URI=""``), transformed only by the enveloped-signature
  transform and canonicalization, and the signature must be a direct child of the
  alert: a signature over some other element, or over a part of the alert, is
  refused instead of vouching for the rest (signature wrapping).
* **Relayed alerts.** Canadian alerts reach us with two signatures side by side,
  the originator's and the relay's (NAADS), added later. Each top-level signature is
  tried as the document stands (the relay signed over the originator's signature),
  then with the other signatures cut out (the originator signed before the relay
  added its own); the one the pinned key made must cover everything else.
* SHA-1 signatures and digests are refused (``signxml``'s defaults), as is a
  pinned certificate outside its validity period at the injected ``now``.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidSignature
from signxml.verifier import SignatureConfiguration, XMLVerifier

from cad_adapters._xml import parse_xml_spans
from cad_adapters.errors import CadParseError

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
SIGNATURE_TAG = f"{{{DS_NS}}}Signature"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_ALLOWED_TRANSFORMS = frozenset(
    {
        ENVELOPED,
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
        "http://www.w3.org/2006/12/xml-c14n11",
        "http://www.w3.org/2006/12/xml-c14n11#WithComments",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    }
)
MAX_SIGNATURES = 4
"""Most top-level signatures one alert may carry (originator and relays)."""
MAX_PEM_CHARS = 16_384
_MIN_RSA_BITS = 2048
_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"


Certificate = x509.Certificate


class CapSignatureError(CadParseError):
    """A CAP alert's signature is missing, invalid, or not the pinned certificate's."""


def load_certificate(pem: str) -> x509.Certificate:
    """One PEM X.509 certificate with an RSA (2048+ bits) or ECDSA key; ValueError otherwise."""
    if not pem.strip():
        raise ValueError("must be a PEM certificate (-----BEGIN CERTIFICATE----- ...)")
    if len(pem) > MAX_PEM_CHARS:
        raise ValueError(f"must be at most {MAX_PEM_CHARS} characters")
    if "PRIVATE KEY" in pem:
        raise ValueError("contains a private key: give the certificate only, and replace the key")
    if pem.count(_PEM_BEGIN) != 1:
        raise ValueError("must hold exactly one PEM certificate (-----BEGIN CERTIFICATE----- ...)")
    try:
        certificate = x509.load_pem_x509_certificate(pem.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"is not a readable PEM certificate ({str(exc)[:120]})") from None
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise ValueError(f"has a {key.key_size}-bit RSA key; at least {_MIN_RSA_BITS} needed")
    elif not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("must carry an RSA or ECDSA key (the ones XML signatures use)")
    return certificate


@functools.lru_cache(maxsize=64)
def pinned_certificate(pem: str) -> x509.Certificate:
    """:func:`load_certificate`, cached: the same pinned PEM arrives with every request."""
    return load_certificate(pem)


def _cut(document: bytes, spans: list[tuple[int, int]]) -> bytes:
    """``document`` without the byte ranges ``spans``, each with the whitespace after it."""
    out, pos = [], 0
    for start, end in sorted(spans):
        out.append(document[pos:start])
        while end < len(document) and document[end] in b" \t\r\n":
            end += 1
        pos = end
    out.append(document[pos:])
    return b"".join(out)


def _config(now: datetime) -> SignatureConfiguration:
    # location "./": the signature is a child of <alert>, never one buried deeper.
    return SignatureConfiguration(location="./", expect_references=1, verification_time=now)


def _reference_problem(signature: Any) -> str | None:
    """Why the verified reference is not the whole alert, or None when it is."""
    reference = signature.find(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference")
    if reference is None or reference.get("URI") != "":
        return 'the signature must cover the whole alert (Reference URI="")'
    path = f"{{{DS_NS}}}Transforms/{{{DS_NS}}}Transform"
    algorithms = [t.get("Algorithm") for t in reference.iterfind(path)]
    if ENVELOPED not in algorithms or any(a not in _ALLOWED_TRANSFORMS for a in algorithms):
        return "the signature may only use the enveloped-signature and canonicalization transforms"
    return None


class _NthSignatureVerifier(XMLVerifier):
    """Checks the ``index``-th ``ds:Signature`` child of the root (signxml takes the first)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self._index = index

    def _get_signature(self, root: Any) -> Any:
        return root.findall(SIGNATURE_TAG)[self._index]


def _reason(exc: Exception) -> tuple[int, str]:
    """(rank, reason): the most telling failure is reported when every signature fails."""
    if isinstance(exc, InvalidDigest):
        return 0, "the alert was changed after it was signed (digest mismatch)"
    if isinstance(exc, InvalidCertificate):
        return 1, f"the pinned certificate cannot be used: {str(exc)[:200]}"
    if isinstance(exc, InvalidSignature):
        return 2, "the signature was not made with the pinned certificate's key"
    if "SHA1" in str(exc):
        return 2, "the signature uses SHA-1, which is too weak; sign with SHA-256 or stronger"
    return 3, f"the signature could not be verified ({type(exc).__name__}: {str(exc)[:160]})"


def verify_alert(document: bytes, certificate: x509.Certificate, *, now: datetime) -> bytes:
    """Check ``document`` (one CAP ``<alert>``) against ``certificate``; return the signed bytes.

    The returned bytes are the canonical form of the alert without its signature(s),
    exactly what the pinned key signed: parse those, not ``document``. Raises
    :class:`CapSignatureError` (a :class:`CadParseError`) with the reason otherwise.
    """
    root, spans = parse_xml_spans(document, frozenset({SIGNATURE_TAG}))
    top = [(start, end) for element, start, end in spans if any(element is c for c in root)]
    if not top:
        raise CapSignatureError(
            "/alert/Signature",
            "this agency accepts only alerts signed with its pinned certificate;"
            " the alert carries no ds:Signature",
        )
    if len(top) > MAX_SIGNATURES:
        raise CapSignatureError(
            "/alert/Signature", f"{len(top)} signatures; at most {MAX_SIGNATURES} are accepted"
        )
    # Each signature as the document stands (a relay signed over the originator's
    # signature), then with the other signatures set aside (the originator signed before
    # the relay added its own).
    attempts = [(document, k) for k in range(len(top))]
    if len(top) > 1:
        attempts += [(_cut(document, top[:k] + top[k + 1 :]), 0) for k in range(len(top))]
    failures: list[tuple[int, str]] = []
    for candidate, index in attempts:
        try:
            # A fresh verifier per call: XMLVerifier keeps per-call state on itself.
            result = _NthSignatureVerifier(index).verify(
                candidate,
                x509_cert=certificate,
                expect_config=_config(now),
                # Real signers (Environment Canada) write Id values the DSig schema
                # refuses ("NAADS Signature"); the structure is checked as it is read.
                validate_schema=False,
            )
        except Exception as exc:  # noqa: BLE001 - fail closed: any failure means "not verified"
            failures.append(_reason(exc))
            continue
        if isinstance(result, list):  # only with expect_references != 1
            failures.append((0, "expected one signed reference"))
            continue
        problem = _reference_problem(result.signature_xml)
        if problem is not None:
            failures.append((0, problem))
            continue
        return result.signed_data
    raise CapSignatureError("/alert/Signature", min(failures)[1])
