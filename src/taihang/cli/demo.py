"""The demo workload behind `make up`: a few accounts trading a token, until Ctrl-C."""

from __future__ import annotations

import time

import typer

from taihang.cli.network import Network
from taihang.crypto import get_suite
from taihang.ledger.transaction import compute_address
from taihang.sdk.client import Client
from taihang.sdk.keys import load_key
from taihang.sdk.tx import DEFAULT_EXPIRY_BLOCKS, build_signed_tx

DEMO_ACCOUNTS = 5


def run_demo(network: Network) -> None:
    """Issue tokens to demo accounts, then send transfers between them every second."""
    suite = get_suite(network.crypto)
    admin = load_key(network.keystore.path_for("admin"))
    seeds = [suite.tagged_hash(b"taihang/demo", bytes([i])) for i in range(DEMO_ACCOUNTS)]
    addresses = [compute_address(suite, suite.public_key_from_seed(s)) for s in seeds]
    with Client(network.api) as client:

        def send(seed: bytes, address: str, contract: str, method: str, args: list[object]) -> str:
            height = int(client.status()["height"])
            tx = build_signed_tx(
                seed=seed,
                suite_name=network.crypto,
                channel=network.channel,
                nonce=client.next_nonce(address),
                contract=contract,
                method=method,
                args=args,
                expires_at_height=height + DEFAULT_EXPIRY_BLOCKS,
            )
            return client.submit(tx)

        for seed, address in zip(seeds, addresses, strict=True):
            if client.get_account(address)["member"] is None:
                public_key = suite.public_key_from_seed(seed)
                client.wait_for_receipt(
                    send(admin.seed, admin.address, "members", "add", [public_key, ["member"]])
                )
                client.wait_for_receipt(
                    send(admin.seed, admin.address, "asset", "issue", [address, 1_000_000])
                )
        typer.echo(f"demo: {DEMO_ACCOUNTS} accounts trading; Ctrl-C to stop")
        step = 0
        while True:
            sender = step % DEMO_ACCOUNTS
            receiver = (step + 1) % DEMO_ACCOUNTS
            send(
                seeds[sender],
                addresses[sender],
                "asset",
                "transfer",
                [addresses[receiver], 1 + step % 7],
            )
            if step % 10 == 0:
                status = client.status()
                typer.echo(f"demo: height {status['height']}, executed {status['executed_height']}")
            step += 1
            time.sleep(1.0)
