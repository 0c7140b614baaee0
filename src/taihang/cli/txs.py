"""Helpers shared by the transaction commands: argument parsing and send-and-wait."""

from __future__ import annotations

import json
from typing import Any

import typer

from taihang.cli.network import Network
from taihang.codec import value_from_json
from taihang.sdk.client import Client
from taihang.sdk.keys import LoadedKey
from taihang.sdk.tx import DEFAULT_EXPIRY_BLOCKS, build_signed_tx


def parse_args(network: Network, texts: list[str]) -> list[Any]:
    """Each argument: a key name becomes its address; else JSON; else the plain string."""
    names = {k.name: k.address for k in network.keystore.list()}
    values: list[Any] = []
    for text in texts:
        if text in names:
            values.append(names[text])
            continue
        try:
            parsed = json.loads(text)
        except ValueError:
            values.append(text)
            continue
        values.append(value_from_json(parsed))
    return values


def send_tx(
    network: Network,
    key: LoadedKey,
    contract: str,
    method: str,
    args: list[Any],
    *,
    wait: bool = True,
) -> dict[str, Any]:
    with Client(network.api) as client:
        height = int(client.status()["height"])
        tx = build_signed_tx(
            seed=key.seed,
            suite_name=key.suite,
            channel=network.channel,
            nonce=client.next_nonce(key.address),
            contract=contract,
            method=method,
            args=args,
            expires_at_height=height + DEFAULT_EXPIRY_BLOCKS,
        )
        tx_id = client.submit(tx)
        if not wait:
            typer.echo(tx_id)
            return {"id": tx_id}
        result = client.wait_for_receipt(tx_id)
    receipt = result["receipt"]
    typer.echo(f"{tx_id} {receipt['status']} height={result['height']} gas={receipt['gas_used']}")
    if receipt["status"] != "ok":
        typer.echo(f"error: {receipt['error_message']}", err=True)
        raise typer.Exit(2)
    if receipt["return_value"] is not None:
        typer.echo(json.dumps(receipt["return_value"]))
    return dict(result)
