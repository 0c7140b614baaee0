"""The local network directory: `init`, starting and stopping node processes, status.

Layout of a network directory (default `./.taihang`):
  network.toml            channel, crypto suite, and each node's name, home and API port
  genesis.json            the channel's genesis document
  orgs/<org>/ca.pem       the org CA certificate (ca.key beside it, mode 0600)
  keys/<name>.json        the CLI's key store; `admin` is the unencrypted development key
  nodes/<node>/           a node home: config.toml, genesis.json, node_key.json, TLS files, data/
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
)
from taihang.node.config import ApiConfig, NodeConfig, save_config
from taihang.node.home import LOG_FILE, find_running_pid
from taihang.node.pki import build_org_ca, issue_node_certificate
from taihang.node.safety import create_safety_record
from taihang.sdk.keys import KeyStore, generate_seed, save_key

NETWORK_FILE = "network.toml"
DEV_KEY_NAME = "admin"
DEFAULT_HOME = Path(".taihang")
DEV_KEY_BALANCE = 1_000_000_000


@dataclass
class NodeEntry:
    name: str
    home: Path
    api_port: int

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


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_network(path: Path) -> Network:
    file = path / NETWORK_FILE
    if not file.exists():
        raise ConfigurationError(
            f"no network at {path} (no {NETWORK_FILE}); "
            "create one with `taihang up` or `taihang init`"
        )
    data = tomllib.loads(file.read_text())
    nodes = [
        NodeEntry(n["name"], (path / n["home"]).resolve(), int(n["api_port"]))
        for n in data["nodes"]
    ]
    return Network(path.resolve(), data["channel"], data["crypto"], nodes)


def init_network(
    path: Path, *, nodes: int = 1, channel: str = "default", crypto: str = "ed25519"
) -> Network:
    """Create a network directory: CAs, keys, genesis and node homes."""
    if (path / NETWORK_FILE).exists():
        raise ConfigurationError(f"a network already exists at {path}")
    if nodes != 1:
        raise ConfigurationError("this release runs single-validator networks (--nodes 1)")
    get_suite(crypto)  # an unknown suite fails here, before anything is written
    path.mkdir(parents=True, exist_ok=True)
    path = path.resolve()
    org = _create_org(path, "org1")
    admin = KeyStore(path / "keys").new(DEV_KEY_NAME, None, crypto, development=True)
    created = [_create_node(path, f"node{i}", org, channel, crypto) for i in range(1, nodes + 1)]
    genesis = Genesis(
        protocol_version=PROTOCOL_VERSION,
        channel=channel,
        crypto=crypto,
        timestamp_ms=time.time_ns() // 1_000_000,
        orgs=[OrgSpec(id=org.id, name="Organisation 1", ca_cert_pem=org.ca_cert.decode())],
        validators=[validator for _, validator in created],
        members=[
            MemberSpec(
                public_key=admin.public_key.hex(), org=org.id, roles=["admin", "issuer", "member"]
            )
        ],
        balances=[BalanceSpec(address=admin.address, amount=DEV_KEY_BALANCE)],
    )
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
    path: Path, name: str, org: _Org, channel: str, crypto: str
) -> tuple[NodeEntry, ValidatorSpec]:
    """A node home: its key (with the safety record), TLS certificate and config."""
    suite = get_suite(crypto)
    home = path / "nodes" / name
    home.mkdir(parents=True, exist_ok=True)
    node_key = save_key(
        home / "node_key.json",
        generate_seed(suite),
        name=name,
        suite=suite,
        password=None,
        development=True,
    )
    create_safety_record(home)  # with the key: see node/safety.py
    tls_key, tls_cert = issue_node_certificate(
        org.ca_key, org.ca_cert, node_name=name, org_id=org.id, hosts=["127.0.0.1", "localhost"]
    )
    _write_private(home / "tls.key", tls_key)
    (home / "tls.pem").write_bytes(tls_cert)
    port = find_free_port()
    config = NodeConfig(name=name, channel=channel, api=ApiConfig(port=port))
    save_config(home / "config.toml", config)
    validator = ValidatorSpec(name=name, org=org.id, public_key=node_key.public_key.hex())
    return NodeEntry(name, home, port), validator


def _save_network_file(path: Path, channel: str, crypto: str, entries: list[NodeEntry]) -> None:
    network = {
        "channel": channel,
        "crypto": crypto,
        "nodes": [
            {"name": e.name, "home": str(e.home.relative_to(path)), "api_port": e.api_port}
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
