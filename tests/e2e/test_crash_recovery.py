"""SIGKILL a node under load, restart it, and check nothing committed was lost."""

from __future__ import annotations

import threading
import time

import pytest
from e2e_support import RunningNode, Sender, admin_sender, run_cli

from taihang.crypto import get_suite
from taihang.errors import TransientError

pytestmark = pytest.mark.e2e

ACCOUNTS = 20
TRANSFERS = 1000
FUNDING = 1_000_000
BATCH = 25


def setup_accounts(node: RunningNode) -> list[Sender]:
    suite = get_suite(node.network.crypto)
    with node.client() as client:
        admin = admin_sender(node.network, client)
        senders = [
            Sender(node.network, suite.tagged_hash(b"e2e", bytes([i]))) for i in range(ACCOUNTS)
        ]
        txs = [admin.tx("members", "add", [s.public_key, ["member"]]) for s in senders]
        txs += [admin.tx("asset", "issue", [s.address, FUNDING]) for s in senders]
        for start in range(0, len(txs), 40):  # stay under the per-sender nonce gap
            results = client.submit_batch(txs[start : start + 40])
            assert all(r.ok for r in results), results
            receipt = client.wait_for_receipt(str(results[-1].id)).receipt
            assert receipt is not None and receipt.status == "ok", receipt
    return senders


def submit_in_background(
    node: RunningNode, transfers: list[bytes], ids: list[str], stop: threading.Event
) -> threading.Thread:
    def submit() -> None:
        with node.client() as client:
            for start in range(0, len(transfers), BATCH):
                if stop.is_set():
                    return
                try:
                    results = client.submit_batch(transfers[start : start + BATCH])
                except TransientError:
                    return  # the node was killed
                ids.extend(r.id for r in results if r.id is not None)
                time.sleep(0.02)

    thread = threading.Thread(target=submit)
    thread.start()
    return thread


def read_commits_until(node: RunningNode, count: int) -> dict[str, int]:
    """Tx id -> height for every receipt read, until `count` were read (or 60 s passed)."""
    committed: dict[str, int] = {}
    with node.client() as client:
        height = client.status().executed_height
        deadline = time.monotonic() + 60
        while len(committed) < count and time.monotonic() < deadline:
            executed = client.status().executed_height
            for h in range(height + 1, executed + 1):
                for receipt in client.get_receipts(h).receipts:
                    committed[receipt.tx_id] = h
            height = executed
            time.sleep(0.01)
    return committed


def test_sigkill_under_load_loses_nothing_committed(node: RunningNode) -> None:
    senders = setup_accounts(node)
    transfers = [
        senders[i % ACCOUNTS].tx(
            "asset", "transfer", [senders[(i * 7 + 1) % ACCOUNTS].address, 1 + i % 5]
        )
        for i in range(TRANSFERS)
    ]
    ids: list[str] = []
    stop = threading.Event()
    submitter = submit_in_background(node, transfers, ids, stop)
    committed = read_commits_until(node, TRANSFERS // 3)
    node.kill()  # mid-stream: the submitter is still sending
    stop.set()
    submitter.join(30)
    assert len(committed) >= TRANSFERS // 3, "the node did not commit under load"
    assert len(committed) < TRANSFERS, "the kill came after the load, not during it"

    node.start()
    with node.client() as client:
        for tx_id, height in committed.items():
            answer = client.get_transaction(tx_id)
            assert answer.status == "committed", tx_id
            assert answer.height == height
        admin = admin_sender(node.network, client)
        after = client.submit(admin.tx("asset", "transfer", [senders[0].address, 1]))
        receipt = client.wait_for_receipt(after).receipt
        assert receipt is not None and receipt.status == "ok"
        tip = client.status().height
        previous = client.get_block(0)
        for height in range(1, tip + 1):
            block = client.get_block(height)
            assert block.height == height
            assert block.parent_id == previous.id, f"block {height} does not link"
            previous = block
        supply = client.query("asset", "supply", [])
        genesis_supply = client.query("asset", "balance", [admin.address])
        holders = [s.address for s in senders]
        total = sum(client.query("asset", "balance", [a]) for a in holders) + genesis_supply
        assert total == supply
    assert node.stop() == 0
    # Offline: hash links, certificates, exec_root per header, recomputed state root.
    result = run_cli("ledger", "verify", home=node.network.path)
    assert "state root matches" in result.stdout
