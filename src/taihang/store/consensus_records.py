"""Consensus records of a BFT node: blocks it voted on, its highest certificates, safety data.

Layout, in the node's one RocksDB beside the ledger (`ledger_store.py` keeps `c`, `B`, ...):
  kB<block id>   a block persisted when it entered the block tree (before any vote for it)
  kQ             the highest QC adopted        kT   the highest TC adopted
  kS             the signing guard's SafetyData (consensus spec, "Persistence")

Everything one consensus step asks to persist goes into one synced write batch
(`build_*_puts` + `LedgerStore.write`), so a vote leaves only after its block, certificates
and safety data are on disk together. Committing retires the `kB` records at or below the new
committed height (the committed blocks move to the ledger's `c`/`B` records in the same batch).

A wiped data directory loses `kS` with everything else; the node then tells "first start"
from "lost" by the safety record beside its key (`node/safety.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from taihang.codec import decode, encode
from taihang.consensus.messages import SafetyData
from taihang.errors import DecodeError, StoreError
from taihang.ledger.block import Block, QuorumCert, TimeoutCert
from taihang.store.kv import KVStore

BLOCK_PREFIX = b"kB"
HIGHEST_QC = b"kQ"
HIGHEST_TC = b"kT"
SAFETY = b"kS"


@dataclass(slots=True)
class StoredConsensus:
    """What a restarting node reads back."""

    blocks: dict[bytes, Block]
    highest_qc: QuorumCert | None
    highest_tc: TimeoutCert | None
    safety: SafetyData | None


class ConsensusRecords:
    def __init__(self, kv: KVStore) -> None:
        self.kv = kv

    def load(self) -> StoredConsensus:
        try:
            blocks = {
                key[len(BLOCK_PREFIX) :]: decode(value, Block)
                for key, value in self.kv.scan(BLOCK_PREFIX)
            }
            qc_raw, tc_raw, safety_raw = self.kv.multi_get([HIGHEST_QC, HIGHEST_TC, SAFETY])
            return StoredConsensus(
                blocks=blocks,
                highest_qc=None if qc_raw is None else decode(qc_raw, QuorumCert),
                highest_tc=None if tc_raw is None else decode(tc_raw, TimeoutCert),
                safety=None if safety_raw is None else decode(safety_raw, SafetyData),
            )
        except DecodeError as exc:
            raise StoreError(f"corrupt consensus record: {exc}") from None

    def find_blocks(self, block_ids: list[bytes]) -> list[Block]:
        """The stored blocks among `block_ids` (skipping any not stored)."""
        if not block_ids:
            return []
        raws = self.kv.multi_get([BLOCK_PREFIX + block_id for block_id in block_ids])
        return [decode(raw, Block) for raw in raws if raw is not None]

    @staticmethod
    def build_block_puts(block_id: bytes, block: Block) -> dict[bytes, bytes | None]:
        return {BLOCK_PREFIX + block_id: encode(block)}

    @staticmethod
    def build_cert_puts(cert: QuorumCert | TimeoutCert) -> dict[bytes, bytes | None]:
        """The core persists a certificate when it adopts it, so it is the highest of its kind."""
        key = HIGHEST_QC if isinstance(cert, QuorumCert) else HIGHEST_TC
        return {key: encode(cert)}

    @staticmethod
    def build_safety_puts(safety: SafetyData) -> dict[bytes, bytes | None]:
        return {SAFETY: encode(safety)}

    def build_retire_below(self, height: int) -> dict[bytes, bytes | None]:
        """Deletes of every stored block at or below `height` (after a ledger sync)."""
        return {
            key: None
            for key, value in self.kv.scan(BLOCK_PREFIX)
            if decode(value, Block).header.height <= height
        }

    @staticmethod
    def build_retire_puts(block_ids: list[bytes]) -> dict[bytes, bytes | None]:
        return {BLOCK_PREFIX + block_id: None for block_id in block_ids}
