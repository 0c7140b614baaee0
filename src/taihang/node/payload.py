"""The leader's payload: ready transactions from the mempool, none its ancestors already hold.

With several proposers, the blocks a new block extends (uncommitted ancestors, and committed
blocks not yet executed) may hold transactions still pending in this node's mempool, because
the mempool learns of their inclusion only from execution. `PendingTxIds` remembers the
transaction ids of those blocks, so `Mempool.take` can skip them (`exclude`); ids are computed
once per block and forgotten when the block is executed or loses a fork.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import TYPE_CHECKING

from taihang.codec import decode
from taihang.consensus.block_tree import BlockTree
from taihang.crypto import CryptoSuite
from taihang.errors import InvalidInput
from taihang.ledger.block import Block
from taihang.ledger.transaction import TxEnvelope, compute_tx_id

if TYPE_CHECKING:
    from taihang.node.runtime import Node


class PendingTxIds:
    def __init__(self, suite: CryptoSuite) -> None:
        self._suite = suite
        self._tx_ids: dict[bytes, frozenset[bytes]] = {}  # block id -> its tx ids (cache)
        self._unexecuted: dict[int, bytes] = {}  # committed, not executed: height -> block id

    def committed(self, height: int, block_id: bytes) -> None:
        self._unexecuted[height] = block_id

    def executed(self, height: int) -> None:
        block_id = self._unexecuted.pop(height, None)
        if block_id is not None:
            self._tx_ids.pop(block_id, None)

    def forget(self, block_id: bytes) -> None:
        self._tx_ids.pop(block_id, None)

    def find_excluded(
        self, tree: BlockTree, parent_id: bytes, executed_height: int
    ) -> Container[bytes]:
        """Ids in the blocks from `parent_id` down to the executed state."""
        sets: list[frozenset[bytes]] = []
        seen: set[bytes] = set()
        current = parent_id
        while current not in seen:
            seen.add(current)
            block = tree.find_block(current)
            if block is None or block.header.height <= executed_height:
                break
            sets.append(self._find_tx_ids(current, block))
            current = block.header.parent_id
        for height, block_id in self._unexecuted.items():  # committed below the walk
            if height > executed_height and block_id not in seen:
                cached = self._tx_ids.get(block_id)
                if cached is not None:
                    sets.append(cached)
        return _AnyOf(sets)

    def _find_tx_ids(self, block_id: bytes, block: Block) -> frozenset[bytes]:
        ids = self._tx_ids.get(block_id)
        if ids is None:
            found = []
            for raw in block.transactions:
                try:
                    found.append(compute_tx_id(self._suite, decode(raw, TxEnvelope).body))
                except InvalidInput:
                    continue  # it will get a rejected receipt; nothing to exclude
            ids = frozenset(found)
            self._tx_ids[block_id] = ids
        return ids


class _AnyOf:
    """A container that is the union of several sets, without building it."""

    __slots__ = ("_sets",)

    def __init__(self, sets: list[frozenset[bytes]]) -> None:
        self._sets = sets

    def __contains__(self, item: object) -> bool:
        return any(item in s for s in self._sets)


class MempoolPayload:
    """The core's `PayloadSource`: ready transactions from the node's mempool."""

    def __init__(self, node: Node, find_excluded: Callable[[bytes], Container[bytes]]) -> None:
        self._node = node
        self._find_excluded = find_excluded

    def has_payload(self) -> bool:
        return self._node.mempool.has_ready()

    def get_payload(
        self, height: int, parent_id: bytes, max_txs: int, max_bytes: int
    ) -> list[bytes]:
        node = self._node
        block = node.config.block
        node.mempool.remove_expired(height)
        txs = node.mempool.take(
            min(max_txs, block.txs_max),
            min(max_bytes, block.bytes_max),
            height,
            exclude=self._find_excluded(parent_id),
        )
        return [tx.raw for tx in txs]
