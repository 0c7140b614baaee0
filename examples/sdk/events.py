"""Follow the ledger: replay history from a height, then resume without missing anything.

python examples/sdk/events.py .taihang
"""

import sys
from pathlib import Path

from taihang.cli.network import load_network
from taihang.sdk.account import Account
from taihang.sdk.client import Client
from taihang.sdk.signer import KeySigner

network = load_network(Path(sys.argv[1] if len(sys.argv) > 1 else ".taihang"))

with Client(network.api) as client:
    admin = Account(client, KeySigner(network.keystore.load("admin")))
    receipt = admin.send("kv", "put", ["sensor/42", {"celsius": 21}])
    assert receipt.is_ok
    height = client.status().executed_height

    # Blocks, page by page, and the receipts of the newest one.
    for block in client.iter_blocks(max(0, height - 2), height):
        print(f"block {block.height} {block.id[:12]}… with {block.tx_count} transactions")

    # Contract events from a height: a stream that a client can resume after a disconnect.
    stream = client.iter_events(from_height=1, types=["event"], contract="kv")
    seen = []
    for item in stream:
        seen.append(item)
        print(f"{item.id} {item.data['name']} {item.data['data']}")
        if item.height >= height:
            break
    stream.close()
    assert any(i.data["data"] == {"owner": admin.address, "key": "sensor/42"} for i in seen)

    # Resume after the last item seen: nothing is repeated, later items follow.
    admin.send("kv", "put", ["sensor/42", {"celsius": 22}])
    resumed = client.iter_events(from_height=seen[-1].height + 1, types=["event"])
    item = next(resumed)
    resumed.close()
    print(f"resumed at {item.id}: {item.data['name']} by {item.data['data']['owner'][:8]}…")
