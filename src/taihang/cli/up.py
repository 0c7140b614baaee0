"""`taihang up` and `taihang status`: start the local network's nodes and watch them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from taihang.cli.network import (
    DEFAULT_NODES,
    NETWORK_FILE,
    OBSERVER,
    Network,
    NodeEntry,
    init_network,
    load_network,
    start_node,
    stop_node,
)
from taihang.errors import TaihangError
from taihang.node.home import find_running_pid
from taihang.sdk.client import Client
from taihang.sdk.models import Status

START_TIMEOUT_S = 60.0
STATUS_TIMEOUT_S = 2.0
ADDRESS_CHARS = 40


def fetch_status(api: str) -> Status | None:
    """The node's `/api/v1/status`, or None when it does not answer."""
    try:
        with Client(api, timeout_s=STATUS_TIMEOUT_S) as client:
            return client.status()
    except TaihangError:
        return None


def fetch_height(api: str) -> int | None:
    status = fetch_status(api)
    return None if status is None else status.height


def describe_node(entry: NodeEntry) -> dict[str, Any]:
    """One node as `taihang status --json` lists it.

    What only the node can tell (height, round, leader, peers, last commit, validator) is null
    when it is stopped or does not answer.
    """
    pid = find_running_pid(entry.home)
    status = fetch_status(entry.api) if pid is not None else None
    return {
        "name": entry.name,
        "role": entry.role,
        "org": entry.org,
        "api": entry.api,
        "p2p_port": entry.p2p_port or None,
        "home": str(entry.home),
        "running": pid is not None,
        "pid": pid,
        "height": None if status is None else status.height,
        "round": None if status is None else status.round,
        "leader": None if status is None else status.leader,
        "peers": None if status is None else list(status.peers),
        "last_commit_ms": None if status is None else status.last_commit_ms,
        "validator": None if status is None else status.validator,
    }


def collect_status(home: Path) -> list[dict[str, Any]]:
    return [describe_node(entry) for entry in load_network(home).nodes]


STATUS_COLUMNS = (
    "NAME",
    "STATE",
    "HEIGHT",
    "ROUND",
    "LEADER",
    "PEERS",
    "LAST COMMIT",
    "PID",
    "API",
)


def format_status_table(nodes: list[dict[str, Any]], now_ms: int) -> list[str]:
    """`taihang status` for people: one aligned row per node, `-` where a node did not say.

    A ROLE column follows NAME when the network has observers; without them every node is a
    validator and the table reads as it did before observers existed.
    """
    names_by_address = {n["validator"]: n["name"] for n in nodes if n["validator"] is not None}
    show_role = any(n.get("role") == OBSERVER for n in nodes)
    rows = [_with_role(list(STATUS_COLUMNS), "ROLE", show_role)]
    for node in nodes:
        peers = node["peers"]
        cells = [
            node["name"],
            "running" if node["running"] else "stopped",
            _text(node["height"]),
            _text(node["round"]),
            _leader_label(node["leader"], names_by_address),
            "-" if peers is None else (",".join(peers) or "none"),
            _age_label(node["last_commit_ms"], now_ms, answered=node["height"] is not None),
            _text(node["pid"]),
            node["api"],
        ]
        rows.append(_with_role(cells, _text(node.get("role")), show_role))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _with_role(cells: list[str], role: str, show_role: bool) -> list[str]:
    """`cells` with `role` after the name when the ROLE column is shown."""
    return [cells[0], role, *cells[1:]] if show_role else cells


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _leader_label(leader: str | None, names_by_address: dict[str, str]) -> str:
    """The leader's node name when it is one of ours; a long address shortened otherwise."""
    if leader is None:
        return "-"
    name = names_by_address.get(leader, leader)
    return f"{name[:10]}..." if len(name) == ADDRESS_CHARS else name


def _age_label(last_commit_ms: int | None, now_ms: int, *, answered: bool) -> str:
    if last_commit_ms is None:
        return "never" if answered else "-"
    age_s = max(0, now_ms - last_commit_ms) / 1000
    return f"{age_s:.1f} s ago" if age_s < 10 else f"{age_s:.0f} s ago"


def wait_for_commit(network: Network, start_heights: dict[str, int | None]) -> str | None:
    """None once every node's committed height advanced; otherwise the reason it did not."""
    deadline = time.monotonic() + START_TIMEOUT_S
    pending = {e.name for e in network.nodes}
    while time.monotonic() < deadline:
        for entry in network.nodes:
            if entry.name not in pending:
                continue
            if find_running_pid(entry.home) is None and time.monotonic() > deadline - 55:
                log = entry.home / "node.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                return f"{entry.name} is not running; end of its log:\n{tail}"
            height = fetch_height(entry.api)
            if height is None:
                continue
            before = start_heights.get(entry.name)
            if before is None:
                start_heights[entry.name] = height  # first answer of a node just started
            elif height > before:
                pending.discard(entry.name)
        if not pending:
            return None
        time.sleep(0.2)
    return f"no commit within {START_TIMEOUT_S:.0f} s on: {', '.join(sorted(pending))}"


def load_or_init_network(
    home: Path, *, nodes: int | None, crypto: str, observers: int | None = None
) -> Network:
    """The network at `home`, created with `nodes` (default 4), `observers` (default 0) and
    `crypto` if there is none."""
    if not (home / NETWORK_FILE).exists():
        count = DEFAULT_NODES if nodes is None else nodes
        init_network(home, nodes=count, observers=observers or 0, crypto=crypto)
        extra = f" and {observers} observer(s)" if observers else ""
        typer.echo(f"created a new {crypto} network of {count} node(s){extra} in {home.resolve()}")
        return load_network(home)
    network = load_network(home)
    if crypto not in (network.crypto, "ed25519"):
        typer.echo(f"note: the existing network uses {network.crypto}; --crypto is ignored")
    validators = [e for e in network.nodes if e.role != OBSERVER]
    if nodes is not None and nodes != len(validators):
        typer.echo(f"note: the existing network has {len(validators)} node(s); --nodes is ignored")
    existing = len(network.nodes) - len(validators)
    if observers is not None and observers != existing:
        typer.echo(f"note: the existing network has {existing} observer(s); --observers is ignored")
    return network


def run_up(
    home: Path,
    *,
    nodes: int | None,
    detach: bool,
    demo: bool,
    crypto: str = "ed25519",
    observers: int | None = None,
) -> int:
    """Start every node that is not running (validators, then observers) and wait until each
    has committed a block; then stay in the foreground unless `detach`."""
    network = load_or_init_network(home, nodes=nodes, crypto=crypto, observers=observers)
    start_heights: dict[str, int | None] = {}
    for entry in network.nodes:
        if find_running_pid(entry.home) is not None:
            start_heights[entry.name] = fetch_height(entry.api)
            continue
        start_heights[entry.name] = None
        start_node(entry)
    reason = wait_for_commit(network, start_heights)
    if reason is not None:
        typer.echo(f"error: the network did not commit: {reason}", err=True)
        return 1
    print_endpoints(network)
    if detach:
        return 0
    try:
        if demo:
            from taihang.cli.demo import run_demo

            run_demo(network)
        else:
            typer.echo("running; press Ctrl-C to stop")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        typer.echo("\nstopping")
    for entry in network.nodes:
        stop_node(entry)
    return 0


def print_endpoints(network: Network) -> None:
    observers = sum(1 for e in network.nodes if e.role == OBSERVER)
    count = f"{len(network.nodes) - observers} node(s)"
    count += f" and {observers} observer(s)" if observers else ""
    typer.echo(f"network {network.channel!r} of {count} is committing ({network.path})")
    for entry in network.nodes:
        p2p = f"   P2P 127.0.0.1:{entry.p2p_port}" if entry.p2p_port else ""
        about = entry.org if entry.role != OBSERVER else f"{entry.org}, observer"
        typer.echo(f"  {entry.name} ({about}): API {entry.api}/api/v1/status{p2p}")
        typer.echo(f"      home {entry.home}")
    home = f" --home {network.path}" if network.path != Path(".taihang").resolve() else ""
    typer.echo("try next:")
    typer.echo(f"  taihang status{home}")
    typer.echo(f"  taihang key new alice{home}")
    typer.echo(f"  taihang member add alice{home}")
    typer.echo(f"  taihang tx send asset transfer --to alice --amount 10{home}")
    typer.echo(f"  taihang query asset balance alice{home}")
    typer.echo(f"  taihang events tail{home}   taihang down{home}")
