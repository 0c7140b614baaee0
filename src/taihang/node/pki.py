"""X.509 identities for node TLS: an org's CA and the node certificates it issues.

Each org runs its own CA, listed in the channel's genesis; a node's TLS certificate chains to
it, and peers accept a connection only when the other side's certificate does (mutual TLS 1.3,
DESIGN.md §3, Transport). The chain is one level deep: the CA signs node certificates directly
(pathLenConstraint 0), so checking a peer is one signature under a key we already trust.

All keys are Ed25519: the signatures are small and fast, and Python's `ssl` (OpenSSL 3) uses
Ed25519 certificates in TLS 1.3. The CA and node private keys are returned as unencrypted
PKCS#8 PEM; whoever stores them writes them with mode 0600 (see `taihang.sdk.keys`).

Times are inputs (`now`), so tests can issue certificates in the past or future; `None` means
the system clock, read here at the edge. Certificates start `CLOCK_SKEW` before `now` so that a
peer whose clock runs a little behind ours still accepts a fresh certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptographyInvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from taihang.errors import ConfigurationError, InvalidCertificate

CA_VALID_DAYS_DEFAULT: Final = 3650
NODE_VALID_DAYS_DEFAULT: Final = 825  # the CA/Browser Forum's long-standing TLS maximum
CLOCK_SKEW: Final = dt.timedelta(minutes=5)
ORG_ID_CHARS_MAX: Final = 61  # the CA's common name "<org_id> CA" must fit X.509's 64
NODE_NAME_CHARS_MAX: Final = 64  # X.509's upper bound for a common name
HOSTS_MAX: Final = 64
DNS_NAME_CHARS_MAX: Final = 253
DNS_LABEL: Final = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
NODE_USAGES: Final = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)

SubjectAltName = x509.DNSName | x509.IPAddress


def build_org_ca(
    org_id: str, *, valid_days: int = CA_VALID_DAYS_DEFAULT, now: dt.datetime | None = None
) -> tuple[bytes, bytes]:
    """A new org CA: (private key PEM, self-signed certificate PEM), subject O=org, CN=org CA."""
    _validate_subject_text("org id", org_id, ORG_ID_CHARS_MAX)
    _validate_valid_days(valid_days)
    start = _utc(now)
    key = Ed25519PrivateKey.generate()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_id),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{org_id} CA"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_SKEW)
        .not_valid_after(start + dt.timedelta(days=valid_days))
        # path_length=0: this CA signs node certificates, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, algorithm=None)  # Ed25519 has its hash built in
    )
    return _encode_private_key(key), certificate.public_bytes(serialization.Encoding.PEM)


def issue_node_certificate(
    ca_key_pem: bytes,
    ca_cert_pem: bytes,
    *,
    node_name: str,
    org_id: str,
    hosts: list[str],
    valid_days: int = NODE_VALID_DAYS_DEFAULT,
    now: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """A node's TLS identity signed by its org's CA: (private key PEM, certificate PEM).

    `hosts` (DNS names or IP addresses) become the subject alternative names. The certificate
    never outlives its CA: its end is cut to the CA's.
    """
    _validate_subject_text("node name", node_name, NODE_NAME_CHARS_MAX)
    _validate_valid_days(valid_days)
    alt_names = build_subject_alt_names(hosts)
    ca_key = _load_ca_key(ca_key_pem)
    ca_cert = _load_certificate(ca_cert_pem, "CA certificate", error=ConfigurationError)
    _validate_ca_pair(ca_key, ca_cert, org_id)
    start = _utc(now)
    end = min(start + dt.timedelta(days=valid_days), ca_cert.not_valid_after_utc)
    key = Ed25519PrivateKey.generate()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_id),
            x509.NameAttribute(NameOID.COMMON_NAME, node_name),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_SKEW)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # TLS 1.3 with Ed25519 only signs the handshake: digitalSignature, no key encipherment.
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(NODE_USAGES)), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, algorithm=None)
    )
    return _encode_private_key(key), certificate.public_bytes(serialization.Encoding.PEM)


def verify_certificate_chain(
    cert_pem: bytes, ca_cert_pem: bytes, *, now: dt.datetime | None = None
) -> None:
    """Raise `InvalidCertificate` unless `cert_pem` is a node certificate issued by the CA.

    Checks, cheapest first: both parse; the CA is a CA and in its validity period; the
    certificate names the CA as issuer, is in its validity period and is a node (TLS client
    and server, not a CA) certificate; last, the CA's Ed25519 signature over it.
    """
    at = _utc(now)
    certificate = _load_certificate(cert_pem, "certificate", error=InvalidCertificate)
    ca_cert = _load_certificate(ca_cert_pem, "CA certificate", error=InvalidCertificate)
    subject = certificate.subject.rfc4514_string()
    ca_subject = ca_cert.subject.rfc4514_string()
    if not is_ca_certificate(ca_cert):
        raise InvalidCertificate(f"{ca_subject} is not a CA certificate (basicConstraints)")
    _validate_validity(ca_cert, at, f"CA certificate {ca_subject}")
    if certificate.issuer != ca_cert.subject:
        raise InvalidCertificate(
            f"certificate {subject} was issued by {certificate.issuer.rfc4514_string()}, "
            f"not by {ca_subject}"
        )
    _validate_validity(certificate, at, f"certificate {subject}")
    if not is_node_certificate(certificate):
        raise InvalidCertificate(
            f"certificate {subject} is not a node certificate "
            "(it must not be a CA and must allow TLS server and client authentication)"
        )
    ca_public_key = ca_cert.public_key()
    if not isinstance(ca_public_key, Ed25519PublicKey):
        raise InvalidCertificate(f"CA certificate {ca_subject} does not hold an Ed25519 key")
    try:
        ca_public_key.verify(certificate.signature, certificate.tbs_certificate_bytes)
    except CryptographyInvalidSignature:
        raise InvalidCertificate(
            f"certificate {subject} is not signed by CA {ca_subject}'s key"
        ) from None


def is_ca_certificate(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def is_node_certificate(certificate: x509.Certificate) -> bool:
    """Not a CA, and allowed both ends of a TLS connection (peers dial each other)."""
    if is_ca_certificate(certificate):
        return False
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return all(usage in usages for usage in NODE_USAGES)


def build_subject_alt_names(hosts: list[str]) -> list[SubjectAltName]:
    """IP addresses and DNS names for `hosts`, in order, without duplicates."""
    if not hosts:
        raise ConfigurationError("a node certificate needs at least one host (DNS name or IP)")
    if len(hosts) > HOSTS_MAX:
        raise ConfigurationError(f"a node certificate holds at most {HOSTS_MAX} hosts")
    names: list[SubjectAltName] = []
    for host in hosts:
        name = _build_alt_name(host)
        if name not in names:
            names.append(name)
    return names


def _build_alt_name(host: str) -> SubjectAltName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass  # not an IP address: it must be a DNS name
    name = host.lower().rstrip(".")
    labels = name.split(".")
    if len(name) > DNS_NAME_CHARS_MAX or not all(DNS_LABEL.match(label) for label in labels):
        raise ConfigurationError(f"host {host!r} is neither an IP address nor a valid DNS name")
    return x509.DNSName(name)


def _validate_ca_pair(ca_key: Ed25519PrivateKey, ca_cert: x509.Certificate, org_id: str) -> None:
    ca_public_key = ca_cert.public_key()
    expected = _raw(ca_key.public_key())
    if not isinstance(ca_public_key, Ed25519PublicKey) or _raw(ca_public_key) != expected:
        raise ConfigurationError("the CA private key does not belong to the CA certificate")
    if not is_ca_certificate(ca_cert):
        raise ConfigurationError("the CA certificate is not a CA (basicConstraints)")
    organizations = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    ca_org = organizations[0].value if organizations else None
    if ca_org != org_id:
        raise ConfigurationError(f"the CA belongs to org {ca_org!r}, not to {org_id!r}")


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _validate_validity(certificate: x509.Certificate, at: dt.datetime, what: str) -> None:
    if at < certificate.not_valid_before_utc:
        raise InvalidCertificate(
            f"{what} is not valid before {certificate.not_valid_before_utc.isoformat()}"
        )
    if at > certificate.not_valid_after_utc:
        raise InvalidCertificate(f"{what} expired at {certificate.not_valid_after_utc.isoformat()}")


def _validate_subject_text(what: str, text: str, chars_max: int) -> None:
    if not 0 < len(text) <= chars_max or not text.isprintable():
        raise ConfigurationError(f"{what} {text!r} must be 1-{chars_max} printable characters")


def _validate_valid_days(valid_days: int) -> None:
    if valid_days < 1:
        raise ConfigurationError(f"valid_days must be at least 1, got {valid_days}")


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _load_ca_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise ConfigurationError(
            f"the CA private key is not an unencrypted PEM key: {error}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError("the CA private key is not an Ed25519 key")
    return key


def _load_certificate(
    pem: bytes, what: str, *, error: type[ConfigurationError | InvalidCertificate]
) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as cause:
        raise error(f"the {what} is not a PEM X.509 certificate: {cause}") from None


def _encode_private_key(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    assert now.tzinfo is not None, "pass an aware datetime: a naive one has no defined instant"
    return now.astimezone(dt.UTC)
