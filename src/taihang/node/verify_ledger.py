"""`taihang ledger verify`: re-check a stopped node's store offline.

Checks every stored block in height order: it links to its parent's id, carries a valid
certificate for that parent, its tx_root matches its transactions, its exec_root matches the
roots recorded for that height, its receipts match the recorded receipts root; then the highest
certificate against the tip, and finally the state root recomputed from every stored state
value against the root recorded for the last executed height.
"""

from __future__ import annotations

from pathlib import Path

from taihang.codec import decode
from taihang.crypto.jmt import compute_root_from_items
from taihang.errors import ConfigurationError, StoreError
from taihang.ledger.block import Block, compute_block_id, compute_tx_root
from taihang.ledger.receipt import compute_receipts_root
from taihang.node.chain import Chain
from taihang.node.home import NodeHome, find_running_pid
from taihang.store.kv import RocksKV
from taihang.store.ledger_store import LedgerStore


def verify_node_ledger(home_path: Path) -> str:
    home = NodeHome(home_path)
    if find_running_pid(home.path) is not None:
        raise ConfigurationError(f"node at {home.path} is running; stop it first")
    config = home.load_config()
    genesis = home.load_genesis(config)
    data = home.data_path(config)
    if not data.exists():
        raise StoreError(f"no store at {data}")
    kv = RocksKV(data)
    if not LedgerStore(kv).is_initialized():
        kv.close()
        raise StoreError(f"the store at {data} is not initialized")
    chain = Chain(kv, genesis)  # checks schema, genesis and the tip certificate
    try:
        blocks = verify_blocks(chain)
        verify_state(chain)
        return (
            f"{blocks} blocks, heights 0..{chain.tip_height} linked and certified, "
            f"executed to {chain.executed_height}, state root matches"
        )
    finally:
        chain.close()


def verify_blocks(chain: Chain) -> int:
    store = chain.store
    previous = decode(_need(store.find_block(0), 0), Block).header
    previous_id = compute_block_id(chain.suite, previous)
    for height in range(1, chain.tip_height + 1):
        block = decode(_need(store.find_block(height), height), Block)
        header = block.header
        if header.height != height or header.parent_id != previous_id:
            raise StoreError(f"block {height} does not link to block {height - 1}")
        try:
            chain.verify_qc(header.qc)
        except StoreError as exc:
            raise StoreError(f"block {height}: {exc.message}") from None
        if header.qc.vote_data.block_id != previous_id:
            raise StoreError(f"block {height} carries a certificate for another block")
        if compute_tx_root(chain.suite, block.transactions) != header.tx_root:
            raise StoreError(f"block {height}: tx_root does not match its transactions")
        recorded = chain.store.find_exec_root(header.exec_root.height)
        if recorded is None or recorded != header.exec_root:
            raise StoreError(f"block {height}: exec_root differs from the recorded roots")
        block_id = compute_block_id(chain.suite, header)
        if height <= chain.executed_height:
            _verify_executed(chain, height, block_id, len(block.transactions))
        previous, previous_id = header, block_id
    if previous_id != chain.tip_id:
        raise StoreError("the tip id does not match the last block")
    return chain.tip_height + 1


def _verify_executed(chain: Chain, height: int, block_id: bytes, tx_count: int) -> None:
    store = chain.store
    if store.find_height_by_id(block_id) != height:
        raise StoreError(f"block {height}: id index is wrong")
    receipts = store.get_receipts(height)
    if len(receipts) != tx_count:
        raise StoreError(f"block {height}: {len(receipts)} receipts for {tx_count} transactions")
    roots = store.find_exec_root(height)
    if roots is None or compute_receipts_root(chain.suite, receipts) != roots.receipts_root:
        raise StoreError(f"block {height}: receipts do not match the recorded receipts root")


def verify_state(chain: Chain) -> None:
    items = {key[1:]: value for key, value in chain.kv.scan(b"S")}
    root = compute_root_from_items(items, chain.suite.hash)
    recorded = chain.exec_root_for(chain.executed_height).state_root
    if root != recorded:
        raise StoreError(
            f"state root recomputed from the stored state {root.hex()} differs from the root "
            f"recorded for height {chain.executed_height} {recorded.hex()}"
        )
    if chain.tree.root != recorded:
        raise StoreError("the state tree's root differs from the recorded root")


def _need(raw: bytes | None, height: int) -> bytes:
    if raw is None:
        raise StoreError(f"block {height} is missing")
    return raw


__all__ = ["verify_node_ledger"]
