"""Helpers shared by the transaction commands: signers, argument parsing, send-and-wait."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import typer

from taihang.cli.network import Network
from taihang.codec import value_from_json, value_to_json
from taihang.errors import ConfigurationError
from taihang.sdk.account import Account
from taihang.sdk.agent import AgentSigner, list_unlocked, socket_path_for
from taihang.sdk.client import Client
from taihang.sdk.signer import KeySigner, Signer


def read_password(confirm: bool = False) -> str:
    """`TAIHANG_KEY_PASSWORD`, else a prompt on a terminal; never hangs a script."""
    password = os.environ.get("TAIHANG_KEY_PASSWORD")
    if password:
        return password
    if not sys.stdin.isatty():
        raise ConfigurationError(
            "the key is encrypted: set TAIHANG_KEY_PASSWORD, unlock it with "
            "`taihang key unlock NAME`, or run in a terminal"
        )
    return str(typer.prompt("Key password", hide_input=True, confirmation_prompt=confirm))


def load_signer(network: Network, name: str) -> Signer:
    """The named key: from the agent if unlocked there, else from its file."""
    infos = {k.name: k for k in network.keystore.list()}
    info = infos.get(name)
    if info is None:
        raise ConfigurationError(f"no key named {name!r} in {network.keystore.directory}")
    if info.encrypted:
        agent = socket_path_for(network.keystore.directory)
        if any(k["name"] == name for k in list_unlocked(agent)):
            return AgentSigner(agent, name)
    password = read_password() if info.encrypted else None
    return KeySigner(network.keystore.load(name, password))


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
    signer: Signer,
    contract: str,
    method: str,
    args: list[Any],
    *,
    wait: bool = True,
) -> None:
    """Sign, submit and (by default) wait; print the outcome; exit 2 if it failed."""
    with Client(network.api) as client:
        account = Account(client, signer)
        if not wait:
            typer.echo(account.submit(contract, method, args))
            return
        tx_id = account.submit(contract, method, args)
        committed = client.wait_for_receipt(tx_id)
    receipt = committed.receipt
    assert receipt is not None
    typer.echo(f"{tx_id} {receipt.status} height={committed.height} gas={receipt.gas_used}")
    if receipt.status != "ok":
        typer.echo(f"error: {receipt.error_message}", err=True)
        raise typer.Exit(2)
    if receipt.return_value is not None:
        typer.echo(json.dumps(value_to_json(receipt.return_value)))
