"""Who may connect: a node's TLS identity, and the check that a peer is a node of the channel.

Theory of operation
-------------------
Trust comes from the channel's genesis, nothing else. Each org in genesis lists its CA
certificate; each validator and observer is registered as (org, node name). A peer is accepted
only when all of the following hold, checked cheapest first:

1. TLS 1.3 with mutual authentication: OpenSSL verifies that the peer's certificate chains to
   one of the genesis CAs (`build_ssl_context`: `CERT_REQUIRED` both ways, trust store = the
   genesis CAs only, no system CAs, hostname checking off because a node's identity is its
   genesis registration, not a DNS name).
2. `authenticate_certificate`: the certificate's subject holds exactly one O (the org id) and
   one CN (the node name); the org is in genesis; the certificate was issued by *that* org's
   CA (`taihang.node.pki.verify_certificate_chain`: OpenSSL alone would accept org A's CA
   signing a certificate that claims org B); and (org, name) is a registered node.
3. The hello (see `taihang.net.transport`): same protocol version, same genesis hash, and the
   name it announces is the certificate's CN.

Every failure raises `PeerRefused` with a short, stable `reason` (used as a metrics label) and
a sentence for the log.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from taihang.errors import ConfigurationError, InvalidCertificate, InvalidInput
from taihang.ledger.genesis import Genesis, compute_genesis_hash
from taihang.node.pki import verify_certificate_chain

if TYPE_CHECKING:
    from taihang.node.config import NodeConfig

# Stable refusal reasons: metric labels and log fields.
REASON_TLS: Final = "tls"  # the TLS handshake failed (unknown CA, no client certificate, ...)
REASON_BAD_SUBJECT: Final = "bad_subject"
REASON_UNKNOWN_ORG: Final = "unknown_org"
REASON_WRONG_CA: Final = "wrong_ca"  # not issued by the CA of the org it claims
REASON_UNKNOWN_NODE: Final = "unknown_node"
REASON_SELF: Final = "self"
REASON_UNEXPECTED_PEER: Final = "unexpected_peer"  # dialled X, found Y
REASON_MALFORMED_HELLO: Final = "malformed_hello"
REASON_PROTOCOL_VERSION: Final = "protocol_version"
REASON_GENESIS_HASH: Final = "genesis_hash"
REASON_NAME_MISMATCH: Final = "name_mismatch"  # the hello's name is not the certificate's CN
REASON_BANNED: Final = "banned"
REASON_TIMEOUT: Final = "timeout"
REASON_CLOSED: Final = "closed"  # the peer hung up during the handshake


class PeerRefused(InvalidInput):
    """A connection refused during the handshake; `reason` is one of the REASON_* labels."""

    code = "peer_refused"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TransportIdentity:
    """This node's TLS identity and the genesis that says whom to trust."""

    name: str
    cert_pem: bytes
    key_pem: bytes
    genesis: Genesis
    genesis_hash: bytes

    @classmethod
    def build(
        cls, name: str, cert_pem: bytes, key_pem: bytes, genesis: Genesis
    ) -> TransportIdentity:
        """Check our own certificate as a peer would, so a misconfigured node fails at start."""
        try:
            found = authenticate_certificate(_pem_to_der(cert_pem), PeerRegistry.build(genesis))
        except (PeerRefused, ValueError) as error:
            raise ConfigurationError(f"TLS certificate of node {name}: {error}") from None
        if found != name:
            raise ConfigurationError(f"the TLS certificate is for node {found!r}, not {name!r}")
        return cls(name, cert_pem, key_pem, genesis, compute_genesis_hash(genesis))

    @classmethod
    def load(cls, home: Path, config: NodeConfig, genesis: Genesis) -> TransportIdentity:
        """Read `config.tls_cert_file` and `config.tls_key_file` from the node home."""
        try:
            cert_pem = (home / config.tls_cert_file).read_bytes()
            key_pem = (home / config.tls_key_file).read_bytes()
        except OSError as error:
            raise ConfigurationError(f"cannot read the node's TLS files: {error}") from None
        return cls.build(config.name, cert_pem, key_pem, genesis)


@dataclass(frozen=True)
class PeerRegistry:
    """The genesis view the trust check needs: each org's CA, and the registered nodes."""

    ca_pem_by_org: dict[str, bytes]
    nodes: frozenset[tuple[str, str]]  # (org, node name)

    @classmethod
    def build(cls, genesis: Genesis) -> PeerRegistry:
        ca_pem_by_org = {org.id: org.ca_cert_pem.encode() for org in genesis.orgs}
        nodes = frozenset(
            [(v.org, v.name) for v in genesis.validators]
            + [(o.org, o.name) for o in genesis.observers]
        )
        return cls(ca_pem_by_org, nodes)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for _, name in self.nodes)


def authenticate_certificate(cert_der: bytes, registry: PeerRegistry) -> str:
    """The registered node name `cert_der` proves, or raise `PeerRefused` (checks 2 above)."""
    try:
        certificate = x509.load_der_x509_certificate(cert_der)
    except ValueError as error:
        raise PeerRefused(REASON_BAD_SUBJECT, f"unparsable certificate: {error}") from None
    orgs = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = certificate.subject.rfc4514_string()
    if len(orgs) != 1 or len(names) != 1:
        raise PeerRefused(REASON_BAD_SUBJECT, f"subject {subject} needs exactly one O and one CN")
    org, name = str(orgs[0].value), str(names[0].value)
    ca_pem = registry.ca_pem_by_org.get(org)
    if ca_pem is None:
        raise PeerRefused(REASON_UNKNOWN_ORG, f"org {org!r} of {subject} is not in genesis")
    try:
        verify_certificate_chain(ssl.DER_cert_to_PEM_cert(cert_der).encode(), ca_pem)
    except InvalidCertificate as error:
        raise PeerRefused(REASON_WRONG_CA, f"not issued by org {org}'s CA: {error}") from None
    if (org, name) not in registry.nodes:
        raise PeerRefused(
            REASON_UNKNOWN_NODE, f"{name!r} is not a validator or observer of org {org} in genesis"
        )
    return name


def build_ssl_context(
    identity: TransportIdentity,
    *,
    server_side: bool,
    on_tls_failure: Callable[[ssl.SSLError], None] | None = None,
) -> ssl.SSLContext:
    """TLS 1.3 only; present our certificate; require the peer's, chained to a genesis CA.

    `on_tls_failure` is called with the error of every failed handshake made with this
    context. A listener needs it: the event loop does a server's TLS handshake and, on failure,
    closes the connection without telling the application (a dialler gets the exception).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    if on_tls_failure is not None:
        context.sslobject_class = _build_reporting_sslobject_class(on_tls_failure)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False  # identity is the genesis registration, checked after
    context.verify_mode = ssl.CERT_REQUIRED
    cadata = "".join(org.ca_cert_pem for org in identity.genesis.orgs)
    try:
        context.load_verify_locations(cadata=cadata)
    except ssl.SSLError as error:
        raise ConfigurationError(f"genesis CA certificates: {error}") from None
    _load_cert_chain(context, identity.cert_pem, identity.key_pem)
    return context


def _build_reporting_sslobject_class(
    on_tls_failure: Callable[[ssl.SSLError], None],
) -> type[ssl.SSLObject]:
    """An `SSLObject` whose failed handshake is reported; asyncio and uvloop both use
    `SSLContext.sslobject_class` (through `wrap_bio`) and call `do_handshake` on it."""

    class ReportingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise  # not a failure: the handshake waits for more bytes
            except ssl.SSLError as error:
                on_tls_failure(error)
                raise

    return ReportingSSLObject


def _load_cert_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """`ssl` loads keys only from files: write them to a private temporary directory (0700)."""
    with tempfile.TemporaryDirectory(prefix="taihang-tls-") as directory:
        cert_file, key_file = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        cert_file.write_bytes(cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as error:
            raise ConfigurationError(f"the node's TLS certificate or key: {error}") from None


def _pem_to_der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode("ascii", errors="replace"))
