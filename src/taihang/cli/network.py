"""The local network directory: `init`, starting and stopping node processes, status.

Layout of a network directory (default `./.taihang`):
  network.toml            channel, crypto suite, and each node's name, org, home, API and P2P port
  genesis.json            the channel's genesis document
  orgs/<org>/ca.pem       the org CA certificate (ca.key beside it, mode 0600)
  keys/<name>.json        the CLI's key store; `admin` is the unencrypted development key
  nodes/<node>/           a node home: config.toml, genesis.json, node_key.json, TLS files, data/

A network of N nodes has N organisations `org1..orgN`, each with its own CA and one validator
(`node<i>` in `org<i>`, weight 1), so no single CA vouches for a quorum. Every node listens on
its own API and P2P port on 127.0.0.1 and lists every other node as a peer. A one-node network
has no P2P port (0) and no peers: it runs the single-validator runtime.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from taihang.constants import PROTOCOL_VERSION
from taihang.crypto import get_suite
from taihang.errors import ConfigurationError
from taihang.ledger.genesis import (
    BalanceSpec,
    Genesis,
    MemberSpec,
    OrgSpec,
    ValidatorSpec,
    encode_genesis_json,
    validate_genesis,
)
from taihang.ledger.transaction import is_valid_name
from taihang.node.config import (
    ApiConfig,
    NodeConfig,
    P2PConfig,
    PeerConfig,
    save_config,
    validate_config,
)
from taihang.node.home import LOG_FILE, find_running_pid
from taihang.node.pki import build_org_ca, issue_node_certificate
from taihang.node.safety import create_safety_record
from taihang.sdk.keys import KeyStore, generate_seed, save_key

NETWORK_FILE = "network.toml"
DEV_KEY_NAME = "admin"
DEFAULT_HOME = Path(".taihang")
DEV_KEY_BALANCE = 1_000_000_000
DEFAULT_NODES = 4
NODES_MAX = 16  # a local network on one machine; beyond this, use real hosts
LOCAL_HOST = "127.0.0.1"


@dataclass
class NodeEntry:
    name: str
    home: Path
    api_port: int
    p2p_port: int = 0  # 0: a one-node network, no P2P listener
    org: str = "org1"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@dataclass
class Network:
    path: Path
    channel: str
    crypto: str
    nodes: list[NodeEntry]

    @property
    def keystore(self) -> KeyStore:
        return KeyStore(self.path / "keys")

    @property
    def api(self) -> str:
        return self.nodes[0].api


def load_network(path: Path) -> Network:
    file = path / NETWORK_FILE
    if not file.exists():
        raise ConfigurationError(
            f"no network at {path} (no {NETWORK_FILE}); "
            "create one with `taihang up` or `taihang init`"
        )
    data = tomllib.loads(file.read_text())
    nodes = [
        NodeEntry(
            n["name"],
            (path / n["home"]).resolve(),
            int(n["api_port"]),
            int(n.get("p2p_port", 0)),
            str(n.get("org", "org1")),
        )
        for n in data["nodes"]
    ]
    return Network(path.resolve(), data["channel"], data["crypto"], nodes)


def find_free_port() -> int:
    return find_free_ports(1)[0]


def find_free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1: every socket stays bound until all are chosen."""
    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in sockets:
            sock.bind((LOCAL_HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


@dataclass(frozen=True)
class NodePlan:
    """What `init` decides for one node before writing anything: identity and ports."""

    name: str
    org: str
    api_port: int
    p2p_port: int
    peers: list[PeerConfig]


def plan_nodes(count: int) -> list[NodePlan]:
    """Node i in org i, distinct free ports, and every other node as a peer.

    A one-node network gets no P2P port and no peers: it runs the single-validator runtime.
    """
    names = [f"node{i}" for i in range(1, count + 1)]
    ports = find_free_ports(count if count == 1 else 2 * count)
    api_ports = ports[:count]
    p2p_ports = ports[count:] if count > 1 else [0]
    return [
        NodePlan(
            name=name,
            org=f"org{i}",
            api_port=api_ports[i - 1],
            p2p_port=p2p_ports[i - 1],
            peers=[
                PeerConfig(name=other, host=LOCAL_HOST, port=port)
                for other, port in zip(names, p2p_ports, strict=True)
                if other != name
            ],
        )
        for i, name in enumerate(names, start=1)
    ]


def init_network(
    path: Path, *, nodes: int = DEFAULT_NODES, channel: str = "default", crypto: str = "ed25519"
) -> Network:
    """Create a network directory: an org with its own CA per node, keys, genesis, node homes."""
    if (path / NETWORK_FILE).exists():
        raise ConfigurationError(f"a network already exists at {path}")
    if not 1 <= nodes <= NODES_MAX:
        raise ConfigurationError(f"--nodes must be between 1 and {NODES_MAX}, not {nodes}")
    if not is_valid_name(channel):
        raise ConfigurationError(f"invalid channel name {channel!r}")
    get_suite(crypto)  # an unknown suite fails here, before anything is written
    path.mkdir(parents=True, exist_ok=True)
    path = path.resolve()
    plans = plan_nodes(nodes)
    orgs = {plan.org: _create_org(path, plan.org) for plan in plans}
    admin = KeyStore(path / "keys").new(DEV_KEY_NAME, None, crypto, development=True)
    created = [_create_node(path, plan, orgs[plan.org], channel, crypto) for plan in plans]
    genesis = Genesis(
        protocol_version=PROTOCOL_VERSION,
        channel=channel,
        crypto=crypto,
        timestamp_ms=time.time_ns() // 1_000_000,
        orgs=[
            OrgSpec(
                id=org.id,
                name=f"Organisation {org.id.removeprefix('org')}",
                ca_cert_pem=org.ca_cert.decode(),
            )
            for org in orgs.values()
        ],
        validators=[validator for _, validator in created],
        members=[  # the development admin administers org1 and issues the `asset` token
            MemberSpec(
                public_key=admin.public_key.hex(), org="org1", roles=["admin", "issuer", "member"]
            )
        ],
        balances=[BalanceSpec(address=admin.address, amount=DEV_KEY_BALANCE)],
    )
    validate_genesis(genesis)
    encoded = encode_genesis_json(genesis)
    (path / "genesis.json").write_bytes(encoded)
    entries = [entry for entry, _ in created]
    for entry in entries:
        (entry.home / "genesis.json").write_bytes(encoded)
    _save_network_file(path, channel, crypto, entries)
    return load_network(path)


@dataclass
class _Org:
    id: str
    ca_key: bytes
    ca_cert: bytes


def _create_org(path: Path, org_id: str) -> _Org:
    org_dir = path / "orgs" / org_id
    org_dir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = build_org_ca(org_id)
    _write_private(org_dir / "ca.key", ca_key)
    (org_dir / "ca.pem").write_bytes(ca_cert)
    return _Org(org_id, ca_key, ca_cert)


def _create_node(
    path: Path, plan: NodePlan, org: _Org, channel: str, crypto: str
) -> tuple[NodeEntry, ValidatorSpec]:
    """A node home: its key (with the safety record), TLS certificate from its org's CA, config."""
    suite = get_suite(crypto)
    home = path / "nodes" / plan.name
    home.mkdir(parents=True, exist_ok=True)
    node_key = save_key(
        home / "node_key.json",
        generate_seed(suite),
        name=plan.name,
        suite=suite,
        password=None,
        development=True,
    )
    create_safety_record(home)  # with the key: see node/safety.py
    tls_key, tls_cert = issue_node_certificate(
        org.ca_key, org.ca_cert, node_name=plan.name, org_id=org.id, hosts=[LOCAL_HOST, "localhost"]
    )
    _write_private(home / "tls.key", tls_key)
    (home / "tls.pem").write_bytes(tls_cert)
    config = NodeConfig(
        name=plan.name,
        channel=channel,
        api=ApiConfig(host=LOCAL_HOST, port=plan.api_port),
        p2p=P2PConfig(host=LOCAL_HOST, port=plan.p2p_port, peers=plan.peers),
    )
    validate_config(config)
    save_config(home / "config.toml", config)
    validator = ValidatorSpec(name=plan.name, org=org.id, public_key=node_key.public_key.hex())
    entry = NodeEntry(plan.name, home, plan.api_port, plan.p2p_port, org.id)
    return entry, validator


def _save_network_file(path: Path, channel: str, crypto: str, entries: list[NodeEntry]) -> None:
    network = {
        "channel": channel,
        "crypto": crypto,
        "nodes": [
            {
                "name": e.name,
                "org": e.org,
                "home": str(e.home.relative_to(path)),
                "api_port": e.api_port,
                "p2p_port": e.p2p_port,
            }
            for e in entries
        ],
    }
    (path / NETWORK_FILE).write_text(tomli_w.dumps(network))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def start_node(entry: NodeEntry) -> int:
    """Start a node process in the background; its output goes to `node.log` in its home."""
    log = open(entry.home / LOG_FILE, "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(
        [sys.executable, "-m", "taihang", "node", "start", "--home", str(entry.home)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    return process.pid


def stop_node(entry: NodeEntry, timeout_s: float = 20.0) -> bool:
    """SIGTERM the node and wait for it to release its lock; SIGKILL after the timeout."""
    pid = find_running_pid(entry.home)
    if pid is None:
        return False
    with_signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if find_running_pid(entry.home) is None:
            return True
        time.sleep(0.1)
    with_signal(pid, signal.SIGKILL)
    return True


def with_signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
