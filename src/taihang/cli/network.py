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

A multi-host network (`init --host` / `--hosts`, docs/deploy.md) has the same organisations,
but everything an org's operator needs sits in one directory to hand over, and nothing of
another org does:
  network.toml            every node with its address (the coordinator's view); keys in org1
  genesis.json
  orgs/<org>/             the hand-over: ca.pem, ca.key, genesis.json, HANDOVER.md, a
                          network.toml of its own nodes (for `taihang status` on its host),
                          <node>/ (its node homes) and, for org1, keys/admin.json
The org directory, less ca.key, becomes `/var/lib/taihang` on the org's host, so the node
home is `/var/lib/taihang/<node>` (deploy/systemd) and `taihang status --home /var/lib/taihang`
works there.
Each node listens for peers on `listen` (0.0.0.0) at its P2P port (7051), binds its API to
`api_host` (127.0.0.1: the API has no client authentication, so opening it is the operator's
deliberate choice) at its API port (8545), and its TLS certificate names its address.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import msgspec
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
from taihang.node.pki import build_org_ca, build_subject_alt_names, issue_node_certificate
from taihang.node.safety import create_safety_record
from taihang.sdk.keys import KeyStore, LoadedKey, generate_seed, save_key

NETWORK_FILE = "network.toml"
DEV_KEY_NAME = "admin"
DEFAULT_HOME = Path(".taihang")
DEV_KEY_BALANCE = 1_000_000_000
DEFAULT_NODES = 4
NODES_MAX = 16  # a local network on one machine; beyond this, use real hosts
LOCAL_HOST = "127.0.0.1"
DEFAULT_P2P_PORT = 7051  # multi-host networks: fixed ports, so firewalls can be set up front
DEFAULT_API_PORT = 8545
DEFAULT_LISTEN = "0.0.0.0"  # P2P is mutual TLS with trust rooted in genesis: safe to expose
DEFAULT_API_HOST = LOCAL_HOST  # the API has no client authentication: opened only on purpose
HANDOVER_FILE = "HANDOVER.md"


@dataclass
class NodeEntry:
    name: str
    home: Path
    api_port: int
    p2p_port: int = 0  # 0: a one-node network, no P2P listener
    org: str = "org1"
    api_host: str = LOCAL_HOST  # where a client of this network directory reaches the API
    address: str = LOCAL_HOST  # where the other nodes reach this node's P2P port

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
        )
        for n in data["nodes"]
    ]
    keys_dir = str(data.get("keys", "keys"))
    return Network(path.resolve(), data["channel"], data["crypto"], nodes, keys_dir)


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


def build_node_names(count: int) -> list[str]:
    return [f"node{i}" for i in range(1, count + 1)]


def plan_nodes(count: int) -> list[NodePlan]:
    """Node i in org i, distinct free ports, and every other node as a peer.

    A one-node network gets no P2P port and no peers: it runs the single-validator runtime.
    """
    names = build_node_names(count)
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


# --- multi-host networks -----------------------------------------------------------------------
class HostSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where one node of a multi-host network runs: a `[nodes.<name>]` table of a hosts file.

    `listen` and `api_host`, when given, override `init --listen` / `--api-host` for this node.
    """

    address: str
    p2p_port: int = DEFAULT_P2P_PORT
    api_port: int = DEFAULT_API_PORT
    listen: str | None = None
    api_host: str | None = None


class HostsFile(msgspec.Struct, forbid_unknown_fields=True):
    nodes: dict[str, HostSpec] = msgspec.field(default_factory=dict)


def load_hosts_file(path: Path) -> dict[str, HostSpec]:
    """The `[nodes.<name>]` tables of a hosts file (TOML), or `ConfigurationError`."""
    try:
        data = tomllib.loads(path.read_text())
        hosts = msgspec.convert(data, HostsFile).nodes
    except OSError as exc:
        raise ConfigurationError(f"cannot read hosts file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ConfigurationError(f"hosts file {path}: {exc}") from None
    if not hosts:
        raise ConfigurationError(f"hosts file {path} names no node (add [nodes.node1] tables)")
    return hosts


def parse_host_option(text: str) -> tuple[str, HostSpec]:
    """`NAME=ADDRESS[:P2P_PORT[:API_PORT]]`; an IPv6 address goes in brackets: `[2001:db8::1]`."""
    usage = f"--host {text!r} must look like node1=10.0.0.11 or node1=host.example.org:7051:8545"
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ConfigurationError(usage)
    if rest.startswith("["):
        address, bracket, rest = rest[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ConfigurationError(usage)
        ports = rest[1:].split(":") if rest else []
    else:
        address, *ports = rest.split(":")
    if not address or len(ports) > 2 or not all(p.isdigit() for p in ports):
        raise ConfigurationError(usage)
    numbers = [int(p) for p in ports] + [DEFAULT_P2P_PORT, DEFAULT_API_PORT][len(ports) :]
    return name, HostSpec(address=address, p2p_port=numbers[0], api_port=numbers[1])


def read_hosts(file: Path | None, options: list[str]) -> dict[str, HostSpec] | None:
    """The hosts of `--hosts FILE` and every `--host`; None when neither is given (local)."""
    if file is None and not options:
        return None
    hosts = dict(load_hosts_file(file)) if file is not None else {}
    for option in options:
        name, spec = parse_host_option(option)
        if name in hosts:
            raise ConfigurationError(f"node {name!r} is given more than once")
        hosts[name] = spec
    return hosts


def plan_hosted_nodes(
    count: int, hosts: dict[str, HostSpec], *, listen: str | None, api_host: str
) -> list[NodePlan]:
    """Node i in org i at the address `hosts` gives it; every other node as a peer.

    Every check happens here, before `init` writes anything. A one-node network still gets no
    P2P port: it runs the single-validator runtime.
    """
    names = build_node_names(count)
    validate_hosts(names, hosts, listen=listen, api_host=api_host)
    p2p_ports = {name: hosts[name].p2p_port if count > 1 else 0 for name in names}
    return [
        NodePlan(
            name=name,
            org=f"org{i}",
            api_port=hosts[name].api_port,
            p2p_port=p2p_ports[name],
            peers=[
                PeerConfig(name=other, host=hosts[other].address, port=p2p_ports[other])
                for other in names
                if other != name and count > 1
            ],
            address=hosts[name].address,
            listen=hosts[name].listen or listen or compute_listen(hosts[name].address),
            api_host=hosts[name].api_host or api_host,
        )
        for i, name in enumerate(names, start=1)
    ]


def validate_hosts(
    names: list[str], hosts: dict[str, HostSpec], *, listen: str | None, api_host: str
) -> None:
    """Raise `ConfigurationError` unless `hosts` places exactly the nodes `names`, soundly."""
    unknown = sorted(set(hosts) - set(names))
    if unknown:
        raise ConfigurationError(
            f"unknown node name(s) {', '.join(unknown)}: this network has "
            f"{', '.join(names)} (choose the count with --nodes)"
        )
    missing = [name for name in names if name not in hosts]
    if missing:
        raise ConfigurationError(f"no address for {', '.join(missing)} (every node needs one)")
    bindings: dict[tuple[str, int], str] = {}
    for name in names:
        spec = hosts[name]
        build_subject_alt_names([spec.address])  # a valid DNS name or IP, or it raises
        bind = spec.listen or listen or compute_listen(spec.address)
        validate_bind_host(f"{name}: listen", bind, ipv4_only=False)
        validate_bind_host(f"{name}: api_host", spec.api_host or api_host, ipv4_only=True)
        ports = [("API", spec.api_port)] + ([("P2P", spec.p2p_port)] if len(names) > 1 else [])
        for what, port in ports:
            if not 0 < port < 65536:
                raise ConfigurationError(f"{name}: {what} port {port} out of range (1-65535)")
            key = (spec.address.lower(), port)
            if key in bindings:
                raise ConfigurationError(
                    f"{name}: {spec.address}:{port} ({what}) is already taken by {bindings[key]}"
                )
            bindings[key] = f"{name} {what}"


def validate_bind_host(what: str, host: str, *, ipv4_only: bool) -> None:
    """A host to bind must be an IP address (IPv4 for the API, which binds an IPv4 socket)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigurationError(f"{what} {host!r} must be an IP address (0.0.0.0: all)") from None
    if ipv4_only and address.version != 4:
        raise ConfigurationError(f"{what} {host!r} must be an IPv4 address")


def compute_listen(address: str) -> str:
    """The default P2P listen host: every IPv6 interface for an IPv6 address, else IPv4."""
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(address).version == 6:
            return "::"
    return DEFAULT_LISTEN


def compute_client_host(api_host: str) -> str:
    """Where a client on the node's own machine reaches an API bound to `api_host`."""
    return {"0.0.0.0": LOCAL_HOST, "::": "::1"}.get(api_host, api_host)


def init_network(
    path: Path,
    *,
    nodes: int = DEFAULT_NODES,
    channel: str = "default",
    crypto: str = "ed25519",
    hosts: dict[str, HostSpec] | None = None,
    listen: str | None = None,
    api_host: str = DEFAULT_API_HOST,
) -> Network:
    """Create a network directory: an org with its own CA per node, keys, genesis, node homes.

    Without `hosts` every node runs on this machine (127.0.0.1, free ports). With `hosts` they
    run on the machines it names, and each org's part lands in `orgs/<org>/` to hand over.
    Every check happens before the first file is written.
    """
    if (path / NETWORK_FILE).exists():
        raise ConfigurationError(f"a network already exists at {path}")
    if not 1 <= nodes <= NODES_MAX:
        raise ConfigurationError(f"--nodes must be between 1 and {NODES_MAX}, not {nodes}")
    if not is_valid_name(channel):
        raise ConfigurationError(f"invalid channel name {channel!r}")
    get_suite(crypto)  # an unknown suite fails here, before anything is written
    hosted = hosts is not None
    plans = (
        plan_nodes(nodes)
        if hosts is None
        else plan_hosted_nodes(nodes, hosts, listen=listen, api_host=api_host)
    )
    path.mkdir(parents=True, exist_ok=True)
    path = path.resolve()
    keys_dir = "orgs/org1/keys" if hosted else "keys"  # the development admin is org1's
    orgs = {plan.org: _create_org(path, plan.org) for plan in plans}
    admin = KeyStore(path / keys_dir).new(DEV_KEY_NAME, None, crypto, development=True)
    created = [_create_node(path, plan, orgs[plan.org], channel, crypto, hosted) for plan in plans]
    genesis = build_genesis(channel, crypto, list(orgs.values()), [v for _, v in created], admin)
    validate_genesis(genesis)
    encoded = encode_genesis_json(genesis)
    (path / "genesis.json").write_bytes(encoded)
    entries = [entry for entry, _ in created]
    for entry in entries:
        (entry.home / "genesis.json").write_bytes(encoded)
    _save_network_file(path, channel, crypto, entries, keys_dir=keys_dir, hosted=hosted)
    if hosted:
        for org in orgs:
            _write_org_handover(path / "orgs" / org, channel, crypto, encoded, plans, entries)
    return load_network(path)


def build_genesis(
    channel: str, crypto: str, orgs: list[_Org], validators: list[ValidatorSpec], admin: LoadedKey
) -> Genesis:
    """Every org with its CA, every validator, and the development admin of org1."""
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
        validators=validators,
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
) -> tuple[NodeEntry, ValidatorSpec]:
    """A node home: its key (with the safety record), TLS certificate from its org's CA, config.

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
    validator = ValidatorSpec(name=plan.name, org=org.id, public_key=node_key.public_key.hex())
    entry = NodeEntry(plan.name, home, plan.api_port, plan.p2p_port, org.id)
    if hosted:
        entry = dataclasses.replace(entry, api_host=plan.address, address=plan.address)
    return entry, validator


def _save_network_file(
    path: Path,
    channel: str,
    crypto: str,
    entries: list[NodeEntry],
    *,
    keys_dir: str = "keys",
    hosted: bool = False,
) -> None:
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
        if hosted:
            node |= {"address": e.address, "api_host": e.api_host}
        nodes.append(node)
    network["nodes"] = nodes
    (path / NETWORK_FILE).write_text(tomli_w.dumps(network))


def _write_org_handover(
    org_dir: Path,
    channel: str,
    crypto: str,
    genesis: bytes,
    plans: list[NodePlan],
    entries: list[NodeEntry],
) -> None:
    """Complete `orgs/<org>/`: genesis, a network file of its nodes, and HANDOVER.md."""
    org = org_dir.name
    own = [(plan, entry) for plan, entry in zip(plans, entries, strict=True) if plan.org == org]
    (org_dir / "genesis.json").write_bytes(genesis)
    local_entries = [
        dataclasses.replace(entry, api_host=compute_client_host(plan.api_host))
        for plan, entry in own
    ]
    _save_network_file(org_dir, channel, crypto, local_entries, hosted=True)
    text = build_handover_text(org, channel, genesis, [plan for plan, _ in own], plans)
    (org_dir / HANDOVER_FILE).write_text(text)


def build_handover_text(
    org: str, channel: str, genesis: bytes, own: list[NodePlan], plans: list[NodePlan]
) -> str:
    """HANDOVER.md of one org: what is in its directory, where it goes, what to open."""
    lines = [
        f"# {org}: hand-over for channel `{channel}`",
        "",
        f"Everything {org}'s operator needs, and nothing that belongs to another organisation.",
        "DEVELOPMENT ONLY: `taihang init` made every organisation's keys on one machine. In",
        "production each organisation makes its own CA and node keys and only certificates and",
        "public keys are exchanged (docs/deploy.md, 'The production ceremony').",
        "",
        "| node | address | P2P listens on | API binds to |",
        "|---|---|---|---|",
    ]
    for plan in own:
        p2p = f"{format_host(plan.listen)}:{plan.p2p_port}" if plan.p2p_port else "-"
        lines.append(f"| {plan.name} | {plan.address} | {p2p} | {plan.api_host}:{plan.api_port} |")
    lines += [
        "",
        f"- `ca.pem`: {org}'s CA certificate (also in genesis). `ca.key`: its private key",
        "  (mode 0600). Keep it offline; no other organisation may ever receive it.",
        "- `genesis.json`: the channel's genesis, the same on every node; compare its SHA-256",
        f"  with the other organisations: {hashlib.sha256(genesis).hexdigest()}",
        "- `<node>/`: a node home: config.toml, genesis.json, node_key.json (the consensus",
        "  key), safety.json, tls.pem, tls.key. Copy this directory, less `ca.key`, to the",
        "  node's host as `/var/lib/taihang` and start the node with",
        "  `systemctl enable --now taihang-node@<node>` (deploy/systemd/).",
        "- `network.toml`: lets `taihang status --home /var/lib/taihang` check these nodes.",
    ]
    if org == "org1":
        lines.append("- `keys/admin.json`: the development admin key of org1 (unencrypted).")
    for plan in own:
        others = sorted({p.address for p in plans if p.name != plan.name and p.p2p_port})
        if plan.p2p_port and others:
            lines.append(
                f"- Firewall: allow TCP {plan.p2p_port} on {plan.name}'s host from "
                f"{', '.join(others)}. Its API (port {plan.api_port}) has no client "
                "authentication: open it only to the clients that need it."
            )
    return "\n".join(lines) + "\n"


def describe_handover(network: Network) -> list[str]:
    """What `init` prints for a multi-host network: which directory goes to whom."""
    lines = ["hand over one directory to each organisation (docs/deploy.md):"]
    for org in sorted({e.org for e in network.nodes}, key=lambda o: int(o.removeprefix("org"))):
        nodes = ", ".join(f"{e.name} at {e.address}" for e in network.nodes if e.org == org)
        lines.append(f"  {network.path / 'orgs' / org}/  ->  {org} ({nodes})")
    lines.append("the CA keys and node keys in them are development keys made on this machine")
    return lines


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
