"""Who may connect: the certificate checks against genesis, and loading a node's identity."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from net_support import Pki, forge_certificate

from taihang.errors import ConfigurationError
from taihang.ledger.genesis import compute_genesis_hash
from taihang.net import PeerRefused, TransportIdentity
from taihang.net.trust import PeerRegistry, authenticate_certificate, build_ssl_context
from taihang.node.config import NodeConfig
from taihang.node.pki import build_org_ca, issue_node_certificate


def der(cert_pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert_pem.decode())


def refusal(pki: Pki, cert_pem: bytes) -> str:
    with pytest.raises(PeerRefused) as caught:
        authenticate_certificate(der(cert_pem), PeerRegistry.build(pki.genesis))
    return caught.value.reason


def test_authenticate_certificate_names_registered_validators_and_observers(pki: Pki) -> None:
    registry = PeerRegistry.build(pki.genesis)
    for name in ("n1", "n3", "o1"):
        assert authenticate_certificate(der(pki.tls[name][1]), registry) == name


def test_authenticate_certificate_refuses_another_orgs_claim(pki: Pki) -> None:
    _, cert_pem = forge_certificate(*pki.cas["org1"], org="org2", name="n3")
    assert refusal(pki, cert_pem) == "wrong_ca"


def test_authenticate_certificate_refuses_an_org_not_in_genesis(pki: Pki) -> None:
    ca = build_org_ca("org9")
    _, cert_pem = issue_node_certificate(*ca, node_name="n1", org_id="org9", hosts=["127.0.0.1"])
    assert refusal(pki, cert_pem) == "unknown_org"


def test_authenticate_certificate_refuses_a_node_of_another_org(pki: Pki) -> None:
    # n3 is registered in org2; a genuine org1 certificate for "n3" is not that node.
    _, cert_pem = issue_node_certificate(
        *pki.cas["org1"], node_name="n3", org_id="org1", hosts=["127.0.0.1"]
    )
    assert refusal(pki, cert_pem) == "unknown_node"


def test_authenticate_certificate_refuses_the_ca_itself(pki: Pki) -> None:
    assert refusal(pki, pki.cas["org1"][1]) == "wrong_ca"  # a CA is not a node certificate


def test_identity_load_reads_the_home_and_checks_the_certificate(pki: Pki, tmp_path: Path) -> None:
    key_pem, cert_pem = pki.tls["n2"]
    (tmp_path / "tls.pem").write_bytes(cert_pem)
    (tmp_path / "tls.key").write_bytes(key_pem)
    identity = TransportIdentity.load(tmp_path, NodeConfig(name="n2", channel="test"), pki.genesis)
    assert identity.name == "n2"
    assert identity.genesis_hash == compute_genesis_hash(pki.genesis)
    build_ssl_context(identity, server_side=True)  # the key and certificate load
    with pytest.raises(ConfigurationError, match="not 'n1'"):
        TransportIdentity.load(tmp_path, NodeConfig(name="n1", channel="test"), pki.genesis)


def test_identity_load_fails_fast_without_tls_files(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="TLS files"):
        TransportIdentity.load(tmp_path, NodeConfig(name="n1", channel="test"), pki.genesis)
