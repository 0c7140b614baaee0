"""The chain: the ledger store, the state tree and the executor, driven one height at a time.

`Chain` owns the durable side of a node. `commit` persists a block with its certificate in the
consensus records (synced); `execute_next` executes the lowest committed-but-unexecuted height
and writes its ledger batch (synced). Both run off the event loop. Opening a chain checks the
store schema, the genesis hash, and the highest certificate against the tip block.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from taihang.codec import Value, decode, encode
from taihang.crypto import CryptoSuite, get_suite
from taihang.errors import InvalidCertificate, StoreError
from taihang.execution import BlockContext, Executor, build_genesis_writes
from taihang.execution.executor import BlockExecutor, BlockResult
from taihang.ledger.block import (
    Block,
    BlockHeader,
    ExecRoot,
    QuorumCert,
    ValidatorSet,
    compute_block_id,
    verify_qc,
)
from taihang.ledger.genesis import (
    Genesis,
    build_genesis_block,
    build_validator_set,
    compute_genesis_hash,
)
from taihang.ledger.receipt import Receipt, build_receipt, compute_receipts_root
from taihang.ledger.transaction import Transaction
from taihang.node.block_txs import InvalidBlockTx, decode_block_transactions
from taihang.store.kv import KVStore, RocksKV
from taihang.store.ledger_store import LedgerStore
from taihang.store.state_tree import StateTree

TxVerifiedCheck = Callable[[bytes], bool]  # was this tx id's signature checked already?


@dataclass(slots=True)
class ExecutedBlock:
    height: int
    block_id: bytes
    txs: list[Transaction]
    result: BlockResult
    exec_root: ExecRoot


class Chain:
    def __init__(
        self, kv: KVStore, genesis: Genesis, executor: BlockExecutor | None = None
    ) -> None:
        """`executor` runs blocks and queries (the node passes its worker process); by
        default they run in this process, which offline tools and tests use."""
        self.kv = kv
        self.genesis = genesis
        self.suite: CryptoSuite = get_suite(genesis.crypto)
        self.genesis_hash = compute_genesis_hash(genesis)
        self.validators: ValidatorSet = build_validator_set(genesis)
        self.store = LedgerStore(kv)
        self.tree = StateTree(kv, hash_fn=self.suite.hash)
        self.executor: BlockExecutor = executor if executor is not None else Executor(self.suite)
        # Held from a block's execution until its batch is written, and by queries: a worker
        # caches state per executed height and serves one request at a time.
        self.exec_lock = threading.Lock()
        # Held while a ledger batch is written and the tree moves to its root, so a reader
        # taking it (state proofs) sees a root and tree nodes of the same version.
        self.lock = threading.Lock()
        if not self.store.is_initialized():
            self._initialize()
        self.store.check_schema(self.genesis_hash)
        genesis_block = self.store.find_block(0)
        assert genesis_block is not None, "an initialized store holds the genesis block"
        self.genesis_id = compute_block_id(self.suite, decode(genesis_block, Block).header)
        self.tip_height, self.tip_id, self.highest_qc = self._load_tip()

    @classmethod
    def open(cls, path: Path, genesis: Genesis, executor: BlockExecutor | None = None) -> Chain:
        return cls(RocksKV(path), genesis, executor)

    def close(self) -> None:
        self.executor.close()
        self.kv.close()

    def _initialize(self) -> None:
        writes = build_genesis_writes(self.genesis)
        root, state_puts = self.tree.compute_update(dict(writes))
        block = build_genesis_block(self.genesis, root)
        block_bytes = encode(block)
        block_id = compute_block_id(self.suite, block.header)
        puts = self.store.initialize_puts(self.genesis_hash)
        puts.update(
            self.store.build_executed_puts(
                height=0,
                block=block_bytes,
                block_id=block_id,
                tx_ids=[],
                receipts=[],
                exec_root=block.header.exec_root,
            )
        )
        puts.update(state_puts)
        self.store.write(puts)
        self.tree.commit_update(root)

    def _load_tip(self) -> tuple[int, bytes, QuorumCert]:
        pending = self.store.committed_heights()
        height = max([self.store.executed_height, *pending])
        raw = self.store.find_block(height)
        if raw is None:
            raise StoreError(f"tip block {height} is missing")
        tip_id = compute_block_id(self.suite, decode(raw, Block).header)
        qc_raw = self.store.find_highest_qc()
        if qc_raw is None:
            if height != 0:
                raise StoreError("blocks are committed but no certificate is stored")
            from taihang.ledger.block import build_genesis_qc

            return height, tip_id, build_genesis_qc(self.genesis.channel, tip_id)
        qc = decode(qc_raw, QuorumCert)
        data = qc.vote_data
        certifies_tip = data.block_id == tip_id and data.height == height
        # With several validators the stored certificate is the commit proof: a QC on the
        # tip's child whose round directly follows (the 2-chain rule), naming the tip as parent.
        proves_tip = data.parent_id == tip_id and data.height == height + 1
        if not (certifies_tip or proves_tip):
            raise StoreError(f"the stored certificate does not certify the tip block {height}")
        self.verify_qc(qc)
        return height, tip_id, qc

    def verify_qc(self, qc: QuorumCert) -> None:
        try:
            verify_qc(
                qc,
                self.validators,
                self.suite,
                channel=self.genesis.channel,
                epoch=0,
                genesis_id=self.genesis_id,
            )
        except InvalidCertificate as exc:
            raise StoreError(f"stored certificate is invalid: {exc.message}") from None

    @property
    def executed_height(self) -> int:
        return self.store.executed_height

    def commit(self, height: int, block_bytes: bytes, block_id: bytes, qc: QuorumCert) -> None:
        """Persist block `height` with its QC (synced): from now on it is committed."""
        assert height == self.tip_height + 1, f"commit {height} after tip {self.tip_height}"
        self.store.save_committed(height, block_bytes, encode(qc))
        self.tip_height, self.tip_id, self.highest_qc = height, block_id, qc

    def commit_blocks(
        self,
        blocks: list[tuple[bytes, Block]],
        tip_qc: QuorumCert,
        extra_puts: dict[bytes, bytes | None],
    ) -> None:
        """Persist consecutive committed blocks in one synced batch with their commit proof.

        `tip_qc` is the QC on the last block's child that commits it (the 2-chain rule), or,
        for blocks a ledger sync verified under such a proof, the QC on the last block itself.

        `extra_puts` rides in the same batch (the consensus records the commit retires).
        """
        puts = dict(extra_puts)
        height = self.tip_height
        for _, block in blocks:
            height += 1
            assert block.header.height == height, f"commit {block.header.height} after {height - 1}"
            puts.update(self.store.build_committed_puts(height, encode(block)))
        last_id = blocks[-1][0]
        data = tip_qc.vote_data
        assert last_id in (data.parent_id, data.block_id), "a QC for the last block"
        puts.update(self.store.build_highest_qc_puts(encode(tip_qc)))
        self.store.write(puts)
        self.tip_height, self.tip_id, self.highest_qc = height, last_id, tip_qc

    def execute(
        self,
        height: int,
        txs: list[Transaction] | None = None,
        *,
        is_verified: TxVerifiedCheck | None = None,
    ) -> ExecutedBlock:
        """Execute committed block `height` (the next one) and write its ledger batch.

        `txs` are the block's transactions already decoded and verified (the single-validator
        producer has them); otherwise they are decoded here, their signatures checked unless
        `is_verified` says the node checked them at admission, and any that fail get a
        `rejected` receipt in their place: a Byzantine proposer must not halt execution.
        """
        assert height == self.store.executed_height + 1, "execute heights in order"
        raw = self.store.find_committed_block(height)
        if raw is None:
            raise StoreError(f"committed block {height} is missing")
        block = decode(raw, Block)
        header = block.header
        context = BlockContext(header.channel, header.height, header.timestamp_ms)
        if txs is None:
            decoded = decode_block_transactions(block.transactions, self.suite, is_verified)
        else:
            decoded = list(txs)
        valid = [tx for tx in decoded if isinstance(tx, Transaction)]
        with self.exec_lock:
            return self._execute_and_write(height, raw, header, context, decoded, valid)

    def _execute_and_write(
        self,
        height: int,
        raw: bytes,
        header: BlockHeader,
        context: BlockContext,
        decoded: list[Transaction | InvalidBlockTx],
        valid: list[Transaction],
    ) -> ExecutedBlock:
        result = self.executor.execute_block(self.tree, context, valid)
        receipts = [encode(r) for r in _merge_receipts(decoded, result.receipts)]
        state_root, state_puts = self.tree.compute_update(result.writes)
        exec_root = ExecRoot(
            height=height,
            state_root=state_root,
            receipts_root=compute_receipts_root(self.suite, receipts),
        )
        block_id = compute_block_id(self.suite, header)
        puts = self.store.build_executed_puts(
            height=height,
            block=raw,
            block_id=block_id,
            tx_ids=self._first_inclusions([tx.id for tx in decoded]),
            receipts=receipts,
            exec_root=exec_root,
        )
        puts.update(state_puts)
        with self.lock:
            self.store.write(puts)
            self.tree.commit_update(state_root)
        return ExecutedBlock(height, block_id, valid, result, exec_root)

    def query(self, contract: str, method: str, args: list[Value]) -> Value:
        """Answer a read-only call over the executed state; raises `ContractError` and the like."""
        with self.exec_lock:
            return self.executor.query(
                self.tree, contract, method, args, base_height=self.store.executed_height
            )

    def _first_inclusions(self, tx_ids: list[bytes]) -> list[bytes | None]:
        """The ids to index, None where the id is already indexed (a duplicate inclusion).

        With several proposers a transaction can be proposed twice; its second copy gets a
        `rejected` receipt (nonce already used) and must not replace the first in the index.
        """
        stored = self.store.find_tx_locations(tx_ids)
        seen: set[bytes] = set()
        result: list[bytes | None] = []
        for tx_id, location in zip(tx_ids, stored, strict=True):
            result.append(None if location is not None or tx_id in seen else tx_id)
            seen.add(tx_id)
        return result

    def exec_root_for(self, height: int) -> ExecRoot:
        root = self.store.find_exec_root(height)
        if root is None:
            raise StoreError(f"no execution roots for height {height}")
        return root


def _merge_receipts(
    decoded: list[Transaction | InvalidBlockTx], executed: list[Receipt]
) -> list[Receipt]:
    """The block's receipts in block order: executed ones, and a rejection per invalid tx."""
    remaining = iter(executed)
    receipts: list[Receipt] = []
    for tx in decoded:
        if isinstance(tx, InvalidBlockTx):
            receipts.append(build_receipt(tx.id, "rejected", 0, error_message=tx.reason))
        else:
            receipts.append(next(remaining))
    return receipts
