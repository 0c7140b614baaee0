"""A tripped executor safety net halts the node without a receipt; a fixed node recovers.

The watchdog is set far below what a max-gas loop takes (about a second), standing in for a
mispriced operation: the node must stop with a message naming the watchdog, write no receipt
for the block, and, restarted with the default watchdog, execute that block normally.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w
from e2e_support import RunningNode, admin_sender

from taihang.constants import GAS_LIMIT_MAX
from taihang.node.home import NodeHome
from taihang.sdk.tx import build_signed_tx
from taihang.store.kv import RocksKV
from taihang.store.ledger_store import LedgerStore

pytestmark = pytest.mark.e2e

SPIN = """
@public
def spin(ctx):
    n = 0
    while True:
        n += 1
"""


def set_watchdog(home: Path, watchdog_ms: int | None) -> None:
    path = home / "config.toml"
    config = tomllib.loads(path.read_text())
    if watchdog_ms is None:
        config.pop("execution", None)
    else:
        config["execution"] = {"watchdog_ms": watchdog_ms}
    path.write_text(tomli_w.dumps(config))


def test_watchdog_halts_the_node_and_a_restart_executes_the_block(node: RunningNode) -> None:
    with node.client() as client:
        admin = admin_sender(node.network, client)
        deployed = client.submit(admin.tx("contracts", "deploy", ["spin", SPIN, "1", []]))
        assert client.wait_for_receipt(deployed).receipt.status == "ok"  # type: ignore[union-attr]
    assert node.stop() == 0
    set_watchdog(node.home, 200)
    node.start()
    with node.client() as client:
        spin = build_signed_tx(
            seed=admin.seed,
            suite_name=node.network.crypto,
            channel=node.network.channel,
            nonce=admin.nonce,
            contract="spin",
            method="spin",
            args=[],
            expires_at_height=100_000,
            gas_limit=GAS_LIMIT_MAX,
        )
        tx_id = client.submit(spin)
    assert node.process is not None
    code = node.process.wait(30)
    log = node.log_tail()
    assert code != 0
    assert "execution halted" in log and "watchdog" in log, log
    home = NodeHome(node.home)
    kv = RocksKV(home.data_path(home.load_config()))
    try:  # committed, but neither executed nor given a receipt
        store = LedgerStore(kv)
        assert store.find_tx_locations([bytes.fromhex(tx_id)]) == [None]
        assert store.committed_heights() and max(store.committed_heights()) > store.executed_height
    finally:
        kv.close()

    set_watchdog(node.home, None)
    node.start()
    with node.client() as client:
        receipt = client.wait_for_receipt(tx_id).receipt
        assert receipt is not None and receipt.status == "out_of_gas"
        assert receipt.gas_used == GAS_LIMIT_MAX
        start = client.status().height
        after = client.submit(admin.tx("kv", "put", ["k", "v"], nonce=admin.nonce + 1))
        assert client.wait_for_receipt(after).receipt.status == "ok"  # type: ignore[union-attr]
        assert client.status().height > start
