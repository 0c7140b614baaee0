"""The `taihang` command. Heavy imports happen inside commands so `--help` stays fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from taihang.cli.contracts import register as register_contracts
from taihang.cli.events import register as register_events
from taihang.sim.cli import register as register_sim

app = typer.Typer(
    help="Taihang (太行): a consortium blockchain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
node_app = typer.Typer(help="Run a single node.", no_args_is_help=True)
key_app = typer.Typer(help="Manage keys in the network's key store.", no_args_is_help=True)
member_app = typer.Typer(help="Register channel members.", no_args_is_help=True)
tx_app = typer.Typer(help="Send and inspect transactions.", no_args_is_help=True)
block_app = typer.Typer(help="Inspect blocks.", no_args_is_help=True)
ledger_app = typer.Typer(help="Offline ledger tools.", no_args_is_help=True)
for sub, name in (
    (node_app, "node"),
    (key_app, "key"),
    (member_app, "member"),
    (tx_app, "tx"),
    (block_app, "block"),
    (ledger_app, "ledger"),
):
    app.add_typer(sub, name=name)
register_events(app)
register_contracts(app)
register_sim(app)

HomeOption = Annotated[Path, typer.Option("--home", help="The network directory.")]
DEFAULT_HOME = Path(".taihang")
AsOption = Annotated[str, typer.Option("--as", help="Key that signs (default: admin).")]


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def main() -> None:
    from taihang.errors import TaihangError

    try:
        app()
    except TaihangError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(2)


def to_builtins(value: Any) -> Any:
    """An SDK result as JSON-ready data (contract values in their JSON form)."""
    import msgspec

    from taihang.codec import value_to_json

    return value_to_json(msgspec.to_builtins(value, builtin_types=(bytes,)))


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


# --- network -------------------------------------------------------------------------------
@app.command()
def init(
    home: HomeOption = DEFAULT_HOME,
    nodes: Annotated[
        int | None,
        typer.Option(help="Organisations, one validator each (1-16; default 4, or one per host)."),
    ] = None,
    observers: Annotated[
        int,
        typer.Option(help="Non-voting observer nodes, spread over the orgs (local networks)."),
    ] = 0,
    channel: str = "default",
    crypto: str = "ed25519",
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            help="A node on another machine: NAME=ADDRESS[:P2P_PORT[:API_PORT]] (repeatable).",
        ),
    ] = None,
    hosts_file: Annotated[
        Path | None,
        typer.Option(
            "--hosts", help="A TOML hosts file: a nodes.NAME table per node (docs/deploy.md)."
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(help="Multi-host: where P2P listens (default 0.0.0.0; :: for IPv6)."),
    ] = None,
    api_host: Annotated[
        str | None, typer.Option(help="Multi-host: where the API binds (default 127.0.0.1).")
    ] = None,
) -> None:
    """Create a network directory: an org CA per node, node keys and TLS certs, genesis.

    With --host/--hosts the nodes run on other hosts; each org's part goes to orgs/<org>/.
    """
    from taihang.cli import hosts as hosted
    from taihang.cli import network as net

    hosts = hosted.read_hosts(hosts_file, host or [])
    if hosts is None and (listen is not None or api_host is not None):
        fail("--listen and --api-host are for multi-host networks (with --host or --hosts)")
    count = nodes if nodes is not None else len(hosts) if hosts else net.DEFAULT_NODES
    network = net.init_network(
        home,
        nodes=count,
        observers=observers,
        channel=channel,
        crypto=crypto,
        hosts=hosts,
        listen=listen,
        api_host=api_host or net.DEFAULT_API_HOST,
    )
    typer.echo(f"created network {network.channel!r} in {network.path}")
    if hosts is not None:
        for line in hosted.describe_handover(network):
            typer.echo(line)


@app.command()
def up(
    home: HomeOption = DEFAULT_HOME,
    nodes: Annotated[
        int | None, typer.Option(help="Nodes of a new network, one org each (default 4).")
    ] = None,
    observers: Annotated[
        int | None, typer.Option(help="Non-voting observers of a new network (default 0).")
    ] = None,
    detach: bool = False,
    demo: bool = False,
    crypto: Annotated[str, typer.Option(help="Suite of a new network: ed25519 or sm.")] = "ed25519",
) -> None:
    """Start the local network (creating it if needed) and wait until it commits."""
    from taihang.cli.up import run_up

    code = run_up(home, nodes=nodes, observers=observers, detach=detach, demo=demo, crypto=crypto)
    raise typer.Exit(code)


@app.command()
def down(home: HomeOption = DEFAULT_HOME) -> None:
    """Stop every running node of the network."""
    from taihang.cli.network import load_network, stop_node

    network = load_network(home)
    for entry in network.nodes:
        stopped = stop_node(entry)
        typer.echo(f"{entry.name}: {'stopped' if stopped else 'not running'}")


@app.command()
def status(
    home: HomeOption = DEFAULT_HOME, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Show every node's role, height, round, leader, peers, last commit and process."""
    import time

    from taihang.cli.up import collect_status, format_status_table

    nodes = collect_status(home)
    if as_json:
        typer.echo(json.dumps({"nodes": nodes}))
        return
    for line in format_status_table(nodes, now_ms=time.time_ns() // 1_000_000):
        typer.echo(line)


@node_app.command("start")
def node_start(home: Annotated[Path, typer.Option("--home", help="The node directory.")]) -> None:
    """Run one node in the foreground until SIGTERM/SIGINT."""
    if sys.flags.optimize != 0:
        fail("the node refuses to run under python -O: its assertions guard safety")
    from taihang.node.home import NodeHome
    from taihang.node.runtime import Node

    Node(NodeHome(home.resolve())).run()


# --- keys and members ------------------------------------------------------------------------
@key_app.command("new")
def key_new(name: str, home: HomeOption = DEFAULT_HOME, crypto: str | None = None) -> None:
    """Create an encrypted key (password from a prompt or TAIHANG_KEY_PASSWORD)."""
    from taihang.cli.network import load_network
    from taihang.cli.txs import read_password

    network = load_network(home)
    key = network.keystore.new(name, read_password(confirm=True), crypto or network.crypto)
    typer.echo(f"{key.name} {key.address}")


@key_app.command("unlock")
def key_unlock(
    name: str,
    home: HomeOption = DEFAULT_HOME,
    ttl: Annotated[str, typer.Option(help="How long: 90s, 15m, 2h.")] = "15m",
) -> None:
    """Unlock a key for a while: commands sign through the key agent without prompting."""
    from taihang.cli.network import load_network
    from taihang.cli.txs import read_password
    from taihang.sdk.agent import socket_path_for, unlock

    network = load_network(home)
    key = network.keystore.load(name, read_password())
    ttl_s = parse_duration(ttl)
    unlock(socket_path_for(network.keystore.directory), key, ttl_s)
    typer.echo(f"{name} unlocked for {ttl}")


@key_app.command("lock")
def key_lock(home: HomeOption = DEFAULT_HOME) -> None:
    """Forget every unlocked key and stop the key agent."""
    from taihang.cli.network import load_network
    from taihang.sdk.agent import lock, socket_path_for

    locked = lock(socket_path_for(load_network(home).keystore.directory))
    typer.echo("locked" if locked else "no key agent was running")


def parse_duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        fail(f"duration {text!r} must look like 90s, 15m or 2h")
    return int(text[:-1]) * units[text[-1]]


@key_app.command("list")
def key_list(
    home: HomeOption = DEFAULT_HOME, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """List keys with their addresses."""
    from taihang.cli.network import load_network

    keys = load_network(home).keystore.list()
    rows = [
        {
            "name": k.name,
            "address": k.address,
            "public_key": k.public_key.hex(),
            "encrypted": k.encrypted,
            "development": k.development,
        }
        for k in keys
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        note = " (development, unencrypted)" if row["development"] else ""
        typer.echo(f"{row['name']:16} {row['address']}{note}")


@member_app.command("add")
def member_add(
    name: str,
    home: HomeOption = DEFAULT_HOME,
    roles: str = "member",
    signer: AsOption = "admin",
    wait: bool = True,
) -> None:
    """Register the key NAME (or a hex public key) as a member of the signer's org."""
    from taihang.cli.network import load_network
    from taihang.cli.txs import load_signer, send_tx

    network = load_network(home)
    keys = {k.name: k for k in network.keystore.list()}
    public_key = keys[name].public_key if name in keys else _hex_public_key(name)
    role_list = [r.strip() for r in roles.split(",") if r.strip()]
    send_tx(
        network, load_signer(network, signer), "members", "add", [public_key, role_list], wait=wait
    )


def _hex_public_key(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        fail(f"{text!r} is neither a key name nor a hex public key")
        raise


# --- transactions, blocks, queries -----------------------------------------------------------
@tx_app.command("send")
def tx_send(
    contract: str,
    method: str,
    args: Annotated[list[str] | None, typer.Argument(help="Arguments: JSON or key names.")] = None,
    to: Annotated[str | None, typer.Option(help="Recipient: key name or address.")] = None,
    amount: Annotated[int | None, typer.Option(help="Amount (asset operations).")] = None,
    home: HomeOption = DEFAULT_HOME,
    signer: AsOption = "admin",
    wait: bool = True,
) -> None:
    """Send a transaction: `taihang tx send asset transfer --to alice --amount 10`."""
    from taihang.cli.network import load_network
    from taihang.cli.txs import load_signer, parse_args, send_tx

    network = load_network(home)
    values = parse_args(network, args or [])
    prefix: list[Any] = []
    if to is not None:
        prefix.append(parse_args(network, [to])[0])
    if amount is not None:
        prefix.append(amount)
    send_tx(network, load_signer(network, signer), contract, method, prefix + values, wait=wait)


@tx_app.command("get")
def tx_get(tx_id: str, home: HomeOption = DEFAULT_HOME, wait: bool = False) -> None:
    """Show a transaction with its receipt."""
    from taihang.cli.network import load_network
    from taihang.sdk.client import Client

    with Client(load_network(home).api) as client:
        found = client.wait_for_receipt(tx_id) if wait else client.get_transaction(tx_id)
        print_json(to_builtins(found))


@block_app.command("get")
def block_get(
    ref: Annotated[str, typer.Argument(help="Height, id or latest.")] = "latest",
    home: HomeOption = DEFAULT_HOME,
) -> None:
    """Show a block."""
    from taihang.cli.network import load_network
    from taihang.sdk.client import Client

    with Client(load_network(home).api) as client:
        print_json(to_builtins(client.get_block(ref)))


@app.command()
def query(
    contract: str,
    method: str,
    args: Annotated[list[str] | None, typer.Argument(help="JSON or key names.")] = None,
    home: HomeOption = DEFAULT_HOME,
) -> None:
    """Call a read-only method: `taihang query asset balance alice`."""
    from taihang.cli.network import load_network
    from taihang.cli.txs import parse_args
    from taihang.codec import value_to_json
    from taihang.sdk.client import Client

    network = load_network(home)
    with Client(network.api) as client:
        result = client.query(contract, method, parse_args(network, args or []))
    typer.echo(json.dumps(value_to_json(result)))


@ledger_app.command("verify")
def ledger_verify(
    home: HomeOption = DEFAULT_HOME,
    node: Annotated[str | None, typer.Option(help="Node name.")] = None,
) -> None:
    """Re-check hash links, certificates and state roots of a stopped node's store."""
    from taihang.cli.network import load_network
    from taihang.node.verify_ledger import verify_node_ledger

    network = load_network(home)
    entries = [e for e in network.nodes if node is None or e.name == node]
    if not entries:
        fail(f"no node named {node!r}")
    for entry in entries:
        report = verify_node_ledger(entry.home)
        typer.echo(f"{entry.name}: ok: {report}")


@app.command()
def bench(
    home: HomeOption = DEFAULT_HOME,
    txs: int = 20_000,
    rate: Annotated[float | None, typer.Option(help="Offered tx/s (default: flat out).")] = None,
    accounts: int = 1000,
    batch: int = 500,
    workload: Annotated[
        str,
        typer.Option(help="transfer (built-in), contract-transfer or storage-heavy (contracts)."),
    ] = "transfer",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Measure committed TPS and submit-to-commit latency against the running network."""
    from taihang.cli.bench import run_bench

    result = run_bench(home, txs=txs, rate=rate, accounts=accounts, batch=batch, workload=workload)
    if as_json:
        typer.echo(json.dumps(result.summary()))
    else:
        for key, value in result.summary().items():
            typer.echo(f"{key:14} {value}")
    raise typer.Exit(0 if result.all_committed else 1)
