"""`taihang up` and `taihang status`: start the local network's nodes and watch them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from taihang.cli.network import (
    NETWORK_FILE,
    Network,
    init_network,
    load_network,
    start_node,
    stop_node,
)
from taihang.errors import TaihangError
from taihang.node.home import find_running_pid
from taihang.sdk.client import Client

START_TIMEOUT_S = 60.0


def fetch_height(api: str) -> int | None:
    try:
        with Client(api, timeout_s=2.0) as client:
            return client.status().height
    except TaihangError:
        return None


def collect_status(home: Path) -> list[dict[str, Any]]:
    network = load_network(home)
    nodes = []
    for entry in network.nodes:
        pid = find_running_pid(entry.home)
        height = fetch_height(entry.api) if pid is not None else None
        nodes.append(
            {
                "name": entry.name,
                "api": entry.api,
                "running": pid is not None,
                "height": height,
                "pid": pid,
                "home": str(entry.home),
            }
        )
    return nodes


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


def run_up(home: Path, *, nodes: int, detach: bool, demo: bool, crypto: str = "ed25519") -> int:
    if not (home / NETWORK_FILE).exists():
        init_network(home, nodes=nodes, crypto=crypto)
        typer.echo(f"created a new {crypto} network in {home.resolve()}")
    network = load_network(home)
    if crypto not in (network.crypto, "ed25519"):
        typer.echo(f"note: the existing network uses {network.crypto}; --crypto is ignored")
    start_heights: dict[str, int | None] = {}
    started = []
    for entry in network.nodes:
        if find_running_pid(entry.home) is not None:
            start_heights[entry.name] = fetch_height(entry.api)
            continue
        start_heights[entry.name] = None
        start_node(entry)
        started.append(entry)
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
    typer.echo(f"network {network.channel!r} is committing ({network.path})")
    for entry in network.nodes:
        typer.echo(f"  {entry.name}: API {entry.api}/api/v1/status   home {entry.home}")
    home = f" --home {network.path}" if network.path != Path(".taihang").resolve() else ""
    typer.echo("try next:")
    typer.echo(f"  taihang key new alice{home}")
    typer.echo(f"  taihang member add alice{home}")
    typer.echo(f"  taihang tx send asset transfer --to alice --amount 10{home}")
    typer.echo(f"  taihang query asset balance alice{home}")
    typer.echo(f"  taihang status{home}   taihang down{home}")
