"""Helpers for the transport tests: a two-org genesis with real certificates, and transports on
127.0.0.1 with real TLS. The fixtures that use them are in conftest.py.

Nodes: n1, n2 (org1 validators), n3, n4 (org2 validators), o1 (org2 observer).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from taihang.constants import PROTOCOL_VERSION
from taihang.crypto import get_suite
from taihang.ledger.genesis import (
    Genesis,
    MemberSpec,
    ObserverSpec,
    OrgSpec,
    ValidatorSpec,
    compute_genesis_hash,
)
from taihang.net import FrameKind, Transport, TransportIdentity
from taihang.net.frames import HEADER, HEADER_BYTES, Hello, encode_hello
from taihang.net.trust import build_ssl_context
from taihang.node.config import P2PConfig, PeerConfig

SUITE = get_suite("ed25519")
NODES = {"n1": "org1", "n2": "org1", "n3": "org2", "n4": "org2", "o1": "org2"}
VALIDATORS = ("n1", "n2", "n3", "n4")


def key_hex(n: int) -> str:
    return SUITE.public_key_from_seed(bytes([n]) * 32).hex()


@dataclass
class Pki:
    """The orgs' CAs, the genesis, and each node's TLS key and certificate."""

    cas: dict[str, tuple[bytes, bytes]]
    genesis: Genesis
    tls: dict[str, tuple[bytes, bytes]]  # name -> (key PEM, cert PEM)

    def identity(self, name: str, genesis: Genesis | None = None) -> TransportIdentity:
        key_pem, cert_pem = self.tls[name]
        return TransportIdentity.build(name, cert_pem, key_pem, genesis or self.genesis)

    def raw_identity(self, name: str, key_pem: bytes, cert_pem: bytes) -> TransportIdentity:
        """An identity that skips our own checks: to play an intruder."""
        return TransportIdentity(
            name, cert_pem, key_pem, self.genesis, compute_genesis_hash(self.genesis)
        )


def build_genesis(
    cas: dict[str, tuple[bytes, bytes]], timestamp_ms: int = 1_700_000_000_000
) -> Genesis:
    return Genesis(
        protocol_version=PROTOCOL_VERSION,
        channel="test",
        crypto="ed25519",
        timestamp_ms=timestamp_ms,
        orgs=[
            OrgSpec(id=org, name=org.upper(), ca_cert_pem=ca[1].decode()) for org, ca in cas.items()
        ],
        validators=[
            ValidatorSpec(name=name, org=NODES[name], public_key=key_hex(i + 1))
            for i, name in enumerate(VALIDATORS)
        ],
        observers=[ObserverSpec(name="o1", org="org2", public_key=key_hex(9))],
        members=[MemberSpec(public_key=key_hex(20), org="org1", roles=["admin"])],
    )


def forge_certificate(
    ca_key_pem: bytes, ca_cert_pem: bytes, *, org: str, name: str
) -> tuple[bytes, bytes]:
    """A node certificate signed by `ca_key_pem` whose subject claims any org: what pki refuses."""
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, Ed25519PrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    key = Ed25519PrivateKey.generate()
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, algorithm=None)
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def p2p_config(port: int, peers: dict[str, int] | None = None, **overrides: Any) -> P2PConfig:
    fields: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "peers": [PeerConfig(name, "127.0.0.1", p) for name, p in sorted((peers or {}).items())],
        "reconnect_ms_min": 10,
        "reconnect_ms_max": 100,
        "handshake_timeout_ms": 2_000,
    }
    fields.update(overrides)
    return P2PConfig(**fields)


@dataclass
class Node:
    """A transport with a recording `on_frame` and `on_peer`."""

    name: str
    transport: Transport
    frames: list[tuple[str, FrameKind, bytes]] = field(default_factory=list)
    peer_events: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.transport.config.port


def make_node(identity: TransportIdentity, config: P2PConfig, **kwargs: Any) -> Node:
    frames: list[tuple[str, FrameKind, bytes]] = []
    events: list[tuple[str, bool]] = []
    transport = Transport(
        identity,
        config,
        lambda peer, kind, body: frames.append((peer, kind, body)),
        lambda peer, up: events.append((peer, up)),
        **kwargs,
    )
    return Node(identity.name, transport, frames, events)


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def connect_raw(
    identity: TransportIdentity, port: int, hello: Hello | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A hand-driven peer: TLS and hello with `identity`, then the test writes what it likes."""
    context = build_ssl_context(identity, server_side=False)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    hello = hello or Hello(PROTOCOL_VERSION, identity.genesis_hash, identity.name)
    writer.write(encode_hello(hello))
    length, _ = HEADER.unpack(await reader.readexactly(HEADER_BYTES))
    await reader.readexactly(length)
    return reader, writer


Runner = Callable[[Callable[[], Coroutine[Any, Any, None]]], None]
