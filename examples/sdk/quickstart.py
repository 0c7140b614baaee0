"""Quickstart: keys, membership, a transfer, a query and a receipt, with the sync client.

Run against a local network:  python examples/sdk/quickstart.py .taihang
"""

import sys
from pathlib import Path

from taihang.cli.network import load_network
from taihang.sdk.account import Account
from taihang.sdk.client import Client
from taihang.sdk.keys import KeyStore, ScryptParams
from taihang.sdk.signer import KeySigner

network = load_network(Path(sys.argv[1] if len(sys.argv) > 1 else ".taihang"))
# A throwaway key store for the example; real keys use the default (stronger) scrypt cost.
store = KeyStore(network.path / "example-keys", scrypt=ScryptParams(n=2**14, r=8, p=1))
name = f"erin{len(store.list())}"
erin = KeySigner(store.new(name, password="example only"))

with Client(network.api) as client:
    status = client.status()
    print(f"connected to {status.node} on channel {status.channel} at height {status.height}")

    # The development key `admin` is an org admin and asset issuer on the local network.
    admin = Account(client, KeySigner(network.keystore.load("admin")))
    admin.send("members", "add", [erin.public_key, ["member"]])
    receipt = admin.send("asset", "transfer", [erin.address, 25])
    print(f"transfer: {receipt.status}, gas {receipt.gas_used}, events {receipt.events[0].name}")

    balance = client.query("asset", "balance", [erin.address])
    print(f"{name} holds {balance}")
    assert balance == 25

    # Erin spends some of it; the account tracks nonces itself.
    account = Account(client, erin)
    for amount in (1, 2, 3):
        account.submit("asset", "transfer", [admin.address, amount])
    last = account.send("kv", "put", ["greeting", "你好"])
    assert last.is_ok
    print(f"{name} now holds {client.query('asset', 'balance', [erin.address])}")
