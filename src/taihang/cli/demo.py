"""The demo workload behind `make up`: a few accounts trading a token, until Ctrl-C."""

from __future__ import annotations

import time

import typer

from taihang.cli.network import Network
from taihang.cli.up import fetch_height
from taihang.crypto import get_suite
from taihang.sdk.account import Account
from taihang.sdk.client import Client
from taihang.sdk.keys import load_key
from taihang.sdk.signer import KeySigner

DEMO_ACCOUNTS = 5
DEMO_FUNDS = 1_000_000


def run_demo(network: Network) -> None:
    """Register and fund demo accounts, then send a transfer between them every second.

    Transactions go to the first node; with several nodes, the progress line shows them all.
    """
    suite = get_suite(network.crypto)
    with Client(network.api) as client:
        admin = Account(client, KeySigner(load_key(network.keystore.path_for("admin"))))
        traders = [
            Account(
                client,
                KeySigner.from_seed(
                    suite.tagged_hash(b"taihang/demo", bytes([i])), network.crypto, f"demo{i}"
                ),
            )
            for i in range(DEMO_ACCOUNTS)
        ]
        for trader in traders:
            if client.get_account(trader.address).member is None:
                admin.send("members", "add", [trader.signer.public_key, ["member"]])
                admin.send("asset", "issue", [trader.address, DEMO_FUNDS])
        typer.echo(f"demo: {DEMO_ACCOUNTS} accounts trading; Ctrl-C to stop")
        step = 0
        while True:
            sender, receiver = traders[step % DEMO_ACCOUNTS], traders[(step + 1) % DEMO_ACCOUNTS]
            sender.submit("asset", "transfer", [receiver.address, 1 + step % 7])
            if step % 10 == 0:
                typer.echo(describe_progress(network, client))
            step += 1
            time.sleep(1.0)


def describe_progress(network: Network, client: Client) -> str:
    """`demo: height H, executed E`, and every node's height when there are several."""
    status = client.status()
    line = f"demo: height {status.height}, executed {status.executed_height}"
    if len(network.nodes) > 1:
        heights = [f"{e.name}={_text(fetch_height(e.api))}" for e in network.nodes]
        line += f"; nodes {' '.join(heights)}"
    return line


def _text(value: int | None) -> str:
    return "-" if value is None else str(value)
