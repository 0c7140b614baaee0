"""Multi-host networks: where each node runs (`init --host` / `--hosts`) and the hand-over.

A multi-host network has the same organisations as a local one, but everything an org's
operator needs sits in one directory to hand over, and nothing of another org does:
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

This module builds on `taihang.cli.network` (the directory model and `init_network`), which
calls back into it for a hosted network's plan and hand-over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
import tomllib
from pathlib import Path

import msgspec

from taihang.cli.network import (
    DEFAULT_API_PORT,
    DEFAULT_LISTEN,
    DEFAULT_P2P_PORT,
    HANDOVER_FILE,
    LOCAL_HOST,
    Network,
    NodeEntry,
    NodePlan,
    build_node_names,
    format_host,
    save_network_file,
)
from taihang.errors import ConfigurationError
from taihang.node.config import PeerConfig
from taihang.node.pki import build_subject_alt_names


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


def write_org_handover(
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
    save_network_file(org_dir, channel, crypto, local_entries, hosted=True)
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
