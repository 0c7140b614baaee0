"""Async client: submit a batch of transfers and wait for all receipts concurrently.

python examples/sdk/async_batch.py .taihang
"""

import asyncio
import sys
from pathlib import Path

from taihang.cli.network import load_network
from taihang.sdk.account import AsyncAccount
from taihang.sdk.client import AsyncClient
from taihang.sdk.signer import KeySigner

network = load_network(Path(sys.argv[1] if len(sys.argv) > 1 else ".taihang"))


async def main() -> None:
    async with AsyncClient(network.api) as client:
        admin = await AsyncAccount.open(client, KeySigner(network.keystore.load("admin")))
        recipient = "ab" * 20
        before = await client.query("asset", "balance", [recipient])
        calls = [("asset", "transfer", [recipient, 1]) for _ in range(50)]
        results = await admin.submit_batch(calls)
        assert all(r.ok for r in results), [r.error for r in results if r.error]
        committed = await asyncio.gather(*(client.wait_for_receipt(str(r.id)) for r in results))
        heights = sorted({c.height for c in committed})
        after = await client.query("asset", "balance", [recipient])
        print(f"50 transfers committed in blocks {heights}; balance {before} -> {after}")
        assert after == before + 50


asyncio.run(main())
