"""The network directory: `init`, starting and stopping node processes, status.

Layout of a local network directory (default `./.taihang`):
  network.toml            channel, crypto suite, and each node's name, org, home, API and P2P port
  genesis.json            the channel's genesis document
  orgs/<org>/ca.pem       the org CA certificate (ca.key beside it, mode 0600)
  keys/<name>.json        the CLI's key store; `admin` is the unencrypted development key
  nodes/<node>/           a node home: config.toml, genesis.json, node_key.json, TLS files, data/

A network of N nodes has N organisations `org1..orgN`, each with its own CA and one validator
(`node<i>` in `org<i>`, weight 1), so no single CA vouches for a quorum. Every node listens on
its own API and P2P port on 127.0.0.1 and lists every other node as a peer. A one-node network
has no P2P port (0) and no peers: it runs the single-validator runtime.

`init --observers K` adds K non-voting observers `observer1..observerK`, observer i in org
((i - 1) mod N) + 1, each in genesis `observers` with a home like a validator's. An observer
lists every validator as a peer and does not listen for P2P: validators do not list observers,
the observer dials them and they accept it because genesis names it. network.toml records it
with `role = "observer"`; a node without a role is a validator.

A multi-host network (`init --host` / `--hosts`) is planned and handed over by
`taihang.cli.hosts` (docs/deploy.md); observers are local-only for now.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import tomli_w

from taihang.constants import PROTOCOL_VERSION
from taihang.crypto import get_suite
from taihang.errors import ConfigurationError
from taihang.ledger.genesis import (
    BalanceSpec,
    Genesis,
    MemberSpec,
    ObserverSpec,
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
from taihang.sdk.keys import KeyStore, LoadedKey, generate_seed, save_key

if TYPE_CHECKING:
    from taihang.cli.hosts import HostSpec

NETWORK_FILE = "network.toml"
DEV_KEY_NAME = "admin"
DEFAULT_HOME = Path(".taihang")
DEV_KEY_BALANCE = 1_000_000_000
DEFAULT_NODES = 4
NODES_MAX = 16  # a local network on one machine; beyond this, use real hosts
OBSERVERS_MAX = 16  # observers share the machine with the validators
LOCAL_HOST = "127.0.0.1"
DEFAULT_P2P_PORT = 7051  # multi-host networks: fixed ports, so firewalls can be set up front
DEFAULT_API_PORT = 8545
DEFAULT_LISTEN = "0.0.0.0"  # P2P is mutual TLS with trust rooted in genesis: safe to expose
DEFAULT_API_HOST = LOCAL_HOST  # the API has no client authentication: opened only on purpose
HANDOVER_FILE = "HANDOVER.md"

NodeRole = Literal["validator", "observer"]
VALIDATOR: NodeRole = "validator"
OBSERVER: NodeRole = "observer"


@dataclass
class NodeEntry:
    name: str
    home: Path
    api_port: int
    p2p_port: int = 0  # 0: a one-node network, no P2P listener
    org: str = "org1"
    api_host: str = LOCAL_HOST  # where a client of this network directory reaches the API
    address: str = LOCAL_HOST  # where the other nodes reach this node's P2P port
    role: NodeRole = VALIDATOR

    @property
    def api(self) -> str:
        return f"http://{format_host(self.api_host)}:{self.api_port}"


@dataclass
class Network:
    path: Path
    channel: str
    crypto: str
    nodes: list[NodeEntry]
    keys_dir: str = "keys"  # relative to `path`; a multi-host network keeps them in org1's

    @property
    def keystore(self) -> KeyStore:
        return KeyStore(self.path / self.keys_dir)

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
            str(n.get("api_host", LOCAL_HOST)),
            str(n.get("address", LOCAL_HOST)),
            get_node_role(n),
        )
        for n in data["nodes"]
    ]
    keys_dir = str(data.get("keys", "keys"))
    return Network(path.resolve(), data["channel"], data["crypto"], nodes, keys_dir)


def get_node_role(node: dict[str, object]) -> NodeRole:
    """The `role` of a network.toml node table: a file written before observers has none."""
    role = node.get("role", VALIDATOR)
    if role == VALIDATOR:
        return VALIDATOR
    if role == OBSERVER:
        return OBSERVER
    raise ConfigurationError(f"{NETWORK_FILE}: node {node.get('name')!r} has unknown role {role!r}")


def format_host(host: str) -> str:
    """`host` as it goes before `:port` in a URL: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host


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
    """What `init` decides for one node before writing anything: identity, addresses, ports."""

    name: str
    org: str
    api_port: int
    p2p_port: int
    peers: list[PeerConfig]
    address: str = LOCAL_HOST  # what peers dial and the TLS certificate names
    listen: str = LOCAL_HOST  # where P2P binds
    api_host: str = LOCAL_HOST  # where the API binds
    role: NodeRole = VALIDATOR


def build_node_names(count: int) -> list[str]:
    return [f"node{i}" for i in range(1, count + 1)]


def plan_nodes(count: int, observers: int = 0) -> list[NodePlan]:
    """Node i in org i, distinct free ports, and every other node as a peer; then observers.

    A one-node network gets no P2P port and no peers: it runs the single-validator runtime
    (and so has no observers).
    """
    assert count > 1 or observers == 0, "a one-node network has no P2P port to follow"
    names = build_node_names(count)
    p2p_count = count if count > 1 else 0
    ports = find_free_ports(count + p2p_count + observers)
    api_ports = ports[:count]
    p2p_ports = ports[count : count + p2p_count] or [0]
    validators = [
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
    return validators + plan_observers(validators, ports[count + p2p_count :])


def plan_observers(validators: list[NodePlan], api_ports: list[int]) -> list[NodePlan]:
    """Observer i in the org of validator ((i - 1) mod N) + 1, with every validator as a peer.

    An observer does not listen for P2P (port 0): no validator lists it, it dials them.
    """
    return [
        NodePlan(
            name=f"observer{i}",
            org=validators[(i - 1) % len(validators)].org,
            api_port=api_port,
            p2p_port=0,
            peers=[PeerConfig(name=v.name, host=v.address, port=v.p2p_port) for v in validators],
            role=OBSERVER,
        )
        for i, api_port in enumerate(api_ports, start=1)
    ]


def validate_init_options(
    path: Path, *, nodes: int, observers: int, channel: str, crypto: str, hosted: bool
) -> None:
    """Raise `ConfigurationError` for any `init` option that cannot work, before any write."""
    if (path / NETWORK_FILE).exists():
        raise ConfigurationError(f"a network already exists at {path}")
    if not 1 <= nodes <= NODES_MAX:
        raise ConfigurationError(f"--nodes must be between 1 and {NODES_MAX}, not {nodes}")
    if not 0 <= observers <= OBSERVERS_MAX:
        raise ConfigurationError(
            f"--observers must be between 0 and {OBSERVERS_MAX}, not {observers}"
        )
    if observers and hosted:
        raise ConfigurationError("observers are local-only for now: drop --observers or --host")
    if observers and nodes == 1:
        raise ConfigurationError(
            "a one-node network runs without P2P, so an observer has nothing to follow: "
            "use --nodes 2 or more with --observers"
        )
    if not is_valid_name(channel):
        raise ConfigurationError(f"invalid channel name {channel!r}")
    get_suite(crypto)  # an unknown suite fails here, before anything is written


def init_network(
    path: Path,
    *,
    nodes: int = DEFAULT_NODES,
    observers: int = 0,
    channel: str = "default",
    crypto: str = "ed25519",
    hosts: dict[str, HostSpec] | None = None,
    listen: str | None = None,
    api_host: str = DEFAULT_API_HOST,
) -> Network:
    """Create a network directory: an org with its own CA per node, keys, genesis, node homes.

    Without `hosts` every node runs on this machine (127.0.0.1, free ports), with `observers`
    non-voting observers beside the validators. With `hosts` they run on the machines it names,
    and each org's part lands in `orgs/<org>/` to hand over (`taihang.cli.hosts`).
    Every check happens before the first file is written.
    """
    # hosts.py builds on this module's model, so it is imported here rather than at the top
    from taihang.cli.hosts import plan_hosted_nodes, write_org_handover

    hosted = hosts is not None
    validate_init_options(
        path, nodes=nodes, observers=observers, channel=channel, crypto=crypto, hosted=hosted
    )
    plans = (
        plan_nodes(nodes, observers)
        if hosts is None
        else plan_hosted_nodes(nodes, hosts, listen=listen, api_host=api_host)
    )
    path.mkdir(parents=True, exist_ok=True)
    path = path.resolve()
    keys_dir = "orgs/org1/keys" if hosted else "keys"  # the development admin is org1's
    orgs = {org: _create_org(path, org) for org in dict.fromkeys(p.org for p in plans)}
    admin = KeyStore(path / keys_dir).new(DEV_KEY_NAME, None, crypto, development=True)
    created = [_create_node(path, plan, orgs[plan.org], channel, crypto, hosted) for plan in plans]
    genesis = build_genesis(channel, crypto, list(orgs.values()), created, admin)
    validate_genesis(genesis)
    encoded = encode_genesis_json(genesis)
    (path / "genesis.json").write_bytes(encoded)
    entries = [entry for entry, _ in created]
    for entry in entries:
        (entry.home / "genesis.json").write_bytes(encoded)
    save_network_file(path, channel, crypto, entries, keys_dir=keys_dir, hosted=hosted)
    if hosted:
        for org in orgs:
            write_org_handover(path / "orgs" / org, channel, crypto, encoded, plans, entries)
    return load_network(path)


def build_genesis(
    channel: str,
    crypto: str,
    orgs: list[_Org],
    nodes: list[tuple[NodeEntry, str]],
    admin: LoadedKey,
) -> Genesis:
    """Every org with its CA, every validator and observer (with its public key in hex), and
    the development admin of org1."""
    return Genesis(
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
            for org in orgs
        ],
        validators=[
            ValidatorSpec(name=e.name, org=e.org, public_key=key)
            for e, key in nodes
            if e.role == VALIDATOR
        ],
        observers=[
            ObserverSpec(name=e.name, org=e.org, public_key=key)
            for e, key in nodes
            if e.role == OBSERVER
        ],
        members=[  # the development admin administers org1 and issues the `asset` token
            MemberSpec(
                public_key=admin.public_key.hex(), org="org1", roles=["admin", "issuer", "member"]
            )
        ],
        balances=[BalanceSpec(address=admin.address, amount=DEV_KEY_BALANCE)],
    )


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
    path: Path, plan: NodePlan, org: _Org, channel: str, crypto: str, hosted: bool = False
) -> tuple[NodeEntry, str]:
    """A node home: its key (with the safety record), TLS certificate from its org's CA, config.

    Returns the node's entry and its public key in hex, for genesis.

    A local node's home is `nodes/<node>`; a hosted node's is in its org's hand-over directory,
    and its certificate names the address its peers dial.
    """
    suite = get_suite(crypto)
    home = path / "orgs" / org.id / plan.name if hosted else path / "nodes" / plan.name
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
    tls_hosts = [plan.address] if hosted else [LOCAL_HOST, "localhost"]
    tls_key, tls_cert = issue_node_certificate(
        org.ca_key, org.ca_cert, node_name=plan.name, org_id=org.id, hosts=tls_hosts
    )
    _write_private(home / "tls.key", tls_key)
    (home / "tls.pem").write_bytes(tls_cert)
    config = NodeConfig(
        name=plan.name,
        channel=channel,
        api=ApiConfig(host=plan.api_host, port=plan.api_port),
        p2p=P2PConfig(host=plan.listen, port=plan.p2p_port, peers=plan.peers),
    )
    validate_config(config)
    save_config(home / "config.toml", config)
    entry = NodeEntry(plan.name, home, plan.api_port, plan.p2p_port, org.id, role=plan.role)
    if hosted:
        entry = dataclasses.replace(entry, api_host=plan.address, address=plan.address)
    return entry, node_key.public_key.hex()


def save_network_file(
    path: Path,
    channel: str,
    crypto: str,
    entries: list[NodeEntry],
    *,
    keys_dir: str = "keys",
    hosted: bool = False,
) -> None:
    """Write network.toml; a validator has no `role` key, so older files read the same."""
    network: dict[str, object] = {"channel": channel, "crypto": crypto}
    if keys_dir != "keys":
        network["keys"] = keys_dir
    nodes: list[dict[str, object]] = []
    for e in entries:
        node: dict[str, object] = {
            "name": e.name,
            "org": e.org,
            "home": str(e.home.relative_to(path)),
            "api_port": e.api_port,
            "p2p_port": e.p2p_port,
        }
        if e.role != VALIDATOR:
            node["role"] = e.role
        if hosted:
            node |= {"address": e.address, "api_host": e.api_host}
        nodes.append(node)
    network["nodes"] = nodes
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
