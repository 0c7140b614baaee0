"""Org CAs and node certificates: fields, chain checks, and a real mutual TLS 1.3 handshake."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from taihang.errors import ConfigurationError, InvalidCertificate
from taihang.node.pki import (
    NODE_VALID_DAYS_DEFAULT,
    build_org_ca,
    is_ca_certificate,
    is_node_certificate,
    issue_node_certificate,
    verify_certificate_chain,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
HOSTS = ["node-a.org1.example", "127.0.0.1", "::1"]


# The shared CAs start at the real time: OpenSSL checks validity against the system clock in the
# TLS tests. Tests about validity periods build their own CA at the fixed `NOW`.
@pytest.fixture(scope="module")
def org1_ca() -> tuple[bytes, bytes]:
    return build_org_ca("org1")


@pytest.fixture(scope="module")
def org2_ca() -> tuple[bytes, bytes]:
    return build_org_ca("org2")


def _issue(
    ca: tuple[bytes, bytes],
    name: str = "node-a",
    org: str = "org1",
    *,
    valid_days: int = NODE_VALID_DAYS_DEFAULT,
    now: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    key_pem, cert_pem = ca
    return issue_node_certificate(
        key_pem, cert_pem, node_name=name, org_id=org, hosts=HOSTS, valid_days=valid_days, now=now
    )


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> object:
    return name.get_attributes_for_oid(oid)[0].value


def test_build_org_ca_is_a_self_signed_ca(org1_ca: tuple[bytes, bytes]) -> None:
    certificate = x509.load_pem_x509_certificate(org1_ca[1])
    assert _attribute(certificate.subject, NameOID.ORGANIZATION_NAME) == "org1"
    assert _attribute(certificate.subject, NameOID.COMMON_NAME) == "org1 CA"
    assert certificate.issuer == certificate.subject
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    assert certificate.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    public_key = certificate.public_key()
    assert isinstance(public_key, Ed25519PublicKey)
    public_key.verify(certificate.signature, certificate.tbs_certificate_bytes)
    assert is_ca_certificate(certificate)
    assert b"PRIVATE KEY" in org1_ca[0]


def test_build_org_ca_validity_follows_now() -> None:
    certificate = x509.load_pem_x509_certificate(build_org_ca("org9", valid_days=10, now=NOW)[1])
    assert certificate.not_valid_before_utc <= NOW
    assert certificate.not_valid_after_utc == NOW + dt.timedelta(days=10)


def test_issue_node_certificate_fields(org1_ca: tuple[bytes, bytes]) -> None:
    _, cert_pem = _issue(org1_ca)
    certificate = x509.load_pem_x509_certificate(cert_pem)
    ca_certificate = x509.load_pem_x509_certificate(org1_ca[1])
    assert certificate.issuer == ca_certificate.subject
    assert _attribute(certificate.subject, NameOID.COMMON_NAME) == "node-a"
    assert _attribute(certificate.subject, NameOID.ORGANIZATION_NAME) == "org1"
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["node-a.org1.example"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert is_node_certificate(certificate)
    verify_certificate_chain(cert_pem, org1_ca[1])


def test_issue_node_certificate_never_outlives_its_ca() -> None:
    ca = build_org_ca("org3", valid_days=30, now=NOW)
    _, cert_pem = _issue(ca, org="org3", now=NOW)
    certificate = x509.load_pem_x509_certificate(cert_pem)
    ca_certificate = x509.load_pem_x509_certificate(ca[1])
    assert certificate.not_valid_after_utc == ca_certificate.not_valid_after_utc


def test_issue_node_certificate_refuses_another_orgs_ca(org1_ca: tuple[bytes, bytes]) -> None:
    with pytest.raises(ConfigurationError, match="belongs to org 'org1'"):
        _issue(org1_ca, org="org2")


def test_issue_node_certificate_refuses_mismatched_ca_key(
    org1_ca: tuple[bytes, bytes], org2_ca: tuple[bytes, bytes]
) -> None:
    with pytest.raises(ConfigurationError, match="does not belong"):
        _issue((org2_ca[0], org1_ca[1]))


@pytest.mark.parametrize("hosts", [[], ["bad host"], ["-x.example"], ["a..b"]])
def test_issue_node_certificate_refuses_bad_hosts(
    org1_ca: tuple[bytes, bytes], hosts: list[str]
) -> None:
    with pytest.raises(ConfigurationError, match="host"):
        issue_node_certificate(org1_ca[0], org1_ca[1], node_name="n", org_id="org1", hosts=hosts)


def test_verify_certificate_chain_rejects_another_orgs_ca(
    org1_ca: tuple[bytes, bytes], org2_ca: tuple[bytes, bytes]
) -> None:
    _, cert_pem = _issue(org2_ca, org="org2")
    with pytest.raises(InvalidCertificate, match="not by"):
        verify_certificate_chain(cert_pem, org1_ca[1])


def test_verify_certificate_chain_rejects_impostor_ca_with_same_name(
    org1_ca: tuple[bytes, bytes],
) -> None:
    impostor = build_org_ca("org1")
    _, cert_pem = _issue(impostor)
    with pytest.raises(InvalidCertificate, match="not signed by"):
        verify_certificate_chain(cert_pem, org1_ca[1])


def test_verify_certificate_chain_rejects_expired() -> None:
    ca = build_org_ca("org1", now=NOW)
    _, cert_pem = _issue(ca, valid_days=30, now=NOW)
    verify_certificate_chain(cert_pem, ca[1], now=NOW + dt.timedelta(days=29))
    with pytest.raises(InvalidCertificate, match="expired"):
        verify_certificate_chain(cert_pem, ca[1], now=NOW + dt.timedelta(days=31))


def test_verify_certificate_chain_rejects_not_yet_valid() -> None:
    ca = build_org_ca("org1", now=NOW)
    _, cert_pem = _issue(ca, now=NOW + dt.timedelta(days=100))
    with pytest.raises(InvalidCertificate, match="not valid before"):
        verify_certificate_chain(cert_pem, ca[1], now=NOW + dt.timedelta(days=99))


def test_verify_certificate_chain_rejects_expired_ca() -> None:
    ca = build_org_ca("org4", valid_days=1, now=NOW)
    _, cert_pem = _issue(ca, org="org4", now=NOW)
    with pytest.raises(InvalidCertificate, match=r"CA certificate .* expired"):
        verify_certificate_chain(cert_pem, ca[1], now=NOW + dt.timedelta(days=2))


def test_verify_certificate_chain_rejects_a_ca_as_node(org1_ca: tuple[bytes, bytes]) -> None:
    with pytest.raises(InvalidCertificate, match="not a node certificate"):
        verify_certificate_chain(org1_ca[1], org1_ca[1])


def test_verify_certificate_chain_rejects_a_node_as_ca(org1_ca: tuple[bytes, bytes]) -> None:
    _, cert_pem = _issue(org1_ca)
    with pytest.raises(InvalidCertificate, match="not a CA"):
        verify_certificate_chain(cert_pem, cert_pem)


def test_verify_certificate_chain_rejects_garbage(org1_ca: tuple[bytes, bytes]) -> None:
    with pytest.raises(InvalidCertificate, match=r"not a PEM X\.509 certificate"):
        verify_certificate_chain(b"not a certificate", org1_ca[1])


def _write_identity(directory: Path, name: str, key_pem: bytes, cert_pem: bytes) -> tuple[str, str]:
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    key_path.write_bytes(key_pem)
    cert_path.write_bytes(cert_pem)
    return str(cert_path), str(key_path)


def _context(purpose: int, identity: tuple[str, str], cas: list[bytes]) -> ssl.SSLContext:
    context = ssl.SSLContext(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(*identity)
    context.load_verify_locations(cadata="".join(ca.decode() for ca in cas))
    context.verify_mode = ssl.CERT_REQUIRED  # the server side asks for the client's certificate
    return context


def _handshake(client: ssl.SSLObject, server: ssl.SSLObject, wires: list[ssl.MemoryBIO]) -> None:
    client_in, client_out, server_in, server_out = wires
    done = {"client": False, "server": False}
    for _ in range(10):  # TLS 1.3 needs two round trips; a bound keeps a bug from hanging
        for side, endpoint in (("client", client), ("server", server)):
            if not done[side]:
                try:
                    endpoint.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
            server_in.write(client_out.read())
            client_in.write(server_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def _connect(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> tuple[ssl.SSLObject, ssl.SSLObject, list[ssl.MemoryBIO]]:
    wires = [ssl.MemoryBIO() for _ in range(4)]
    client = client_context.wrap_bio(wires[0], wires[1], server_hostname=HOSTS[0])
    server = server_context.wrap_bio(wires[2], wires[3], server_side=True)
    _handshake(client, server, wires)
    return client, server, wires


def test_ssl_context_loads_node_identity_and_ca(
    tmp_path: Path, org1_ca: tuple[bytes, bytes]
) -> None:
    key_pem, cert_pem = _issue(org1_ca)
    identity = _write_identity(tmp_path, "node-a", key_pem, cert_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*identity)
    context.load_verify_locations(cadata=org1_ca[1].decode())
    assert context.cert_store_stats()["x509_ca"] == 1


def test_mutual_tls_between_two_orgs_nodes(
    tmp_path: Path, org1_ca: tuple[bytes, bytes], org2_ca: tuple[bytes, bytes]
) -> None:
    node_a = _write_identity(tmp_path, "a", *_issue(org1_ca))
    node_b = _write_identity(tmp_path, "b", *_issue(org2_ca, name="node-b", org="org2"))
    cas = [org1_ca[1], org2_ca[1]]
    server_context = _context(ssl.PROTOCOL_TLS_SERVER, node_a, cas)
    client_context = _context(ssl.PROTOCOL_TLS_CLIENT, node_b, cas)
    client, server, wires = _connect(server_context, client_context)
    assert client.version() == "TLSv1.3"
    client_certificate = server.getpeercert()
    assert client_certificate is not None
    assert ("commonName", "node-b") in [item[0] for item in client_certificate["subject"]]
    client.write(b"ping")
    wires[2].write(wires[1].read())
    assert server.read() == b"ping"


def test_mutual_tls_refuses_a_client_from_an_unknown_ca(
    tmp_path: Path, org1_ca: tuple[bytes, bytes], org2_ca: tuple[bytes, bytes]
) -> None:
    node_a = _write_identity(tmp_path, "a", *_issue(org1_ca))
    node_b = _write_identity(tmp_path, "b", *_issue(org2_ca, name="node-b", org="org2"))
    server_context = _context(ssl.PROTOCOL_TLS_SERVER, node_a, [org1_ca[1]])  # trusts org1 only
    client_context = _context(ssl.PROTOCOL_TLS_CLIENT, node_b, [org1_ca[1], org2_ca[1]])
    with pytest.raises(ssl.SSLError):
        _connect(server_context, client_context)
