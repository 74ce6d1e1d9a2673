"""Keys, self-signed certificates and enveloped XML signatures made by the tests themselves.

Signing uses signxml's signer (lxml) here in the tests only; the code under test
never parses with lxml before defusedxml has vetted the bytes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import XMLSigner
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Signer:
    key: PrivateKey
    certificate: x509.Certificate

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def algorithm(self) -> SignatureMethod:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return SignatureMethod.RSA_SHA256
        return SignatureMethod.ECDSA_SHA256


def new_signer(
    *,
    rsa_bits: int | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    name: str = "cap-signer.example.org",
) -> Signer:
    """A fresh key (ECDSA P-256, or RSA of ``rsa_bits``) and a self-signed certificate."""
    key: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        if rsa_bits
        else ec.generate_private_key(ec.SECP256R1())
    )
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return Signer(key, certificate)


class _AnySigner(XMLSigner):
    """signxml's signer, also willing to make SHA-1 signatures (old senders still do)."""

    def check_deprecated_methods(self) -> None:
        return None


@functools.cache
def rsa_signer() -> Signer:
    """One RSA-2048 signer per test run (generating RSA keys is slow)."""
    return new_signer(rsa_bits=2048, name="rsa-signer.example.org")


def sign(
    document: bytes,
    signer: Signer,
    *,
    c14n: CanonicalizationMethod = CanonicalizationMethod.CANONICAL_XML_1_0,
    reference_uri: str | None = None,
    algorithm: SignatureMethod | None = None,
    digest: DigestAlgorithm = DigestAlgorithm.SHA256,
) -> bytes:
    """``document`` with an enveloped ds:Signature appended to its root, as a sender signs."""
    root = etree.fromstring(document)
    signed = _AnySigner(
        signature_algorithm=algorithm or signer.algorithm,
        digest_algorithm=digest,
        c14n_algorithm=c14n,
    ).sign(root, key=signer.key, cert=[signer.certificate], reference_uri=reference_uri)
    out: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    return out


def without_declaration(document: bytes) -> bytes:
    """The document from its root element on, for embedding in an envelope as it is."""
    return document.split(b"?>", 1)[1].lstrip() if document.startswith(b"<?xml") else document
