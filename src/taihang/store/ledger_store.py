"""The ledger store: blocks, transaction index, receipts, execution roots and consensus records.

Layout (one RocksDB, prefixes keep the families apart):
  M<name>            metadata: schema version, genesis hash, executed height
  c<height:8>        consensus record: a committed block not yet executed
  cQ                 consensus record: the highest quorum certificate (the tip's commit proof)
  B<height:8>        an executed block's envelope bytes
  I<block id>        block id -> height
  T<tx id>           tx id -> height:8 index:4
  R<height:8>        the block's receipts (a canonical list of receipt bytes)
  E<height:8>        the block's execution roots (state root, receipts root)
  S..., J...         state values and state-tree nodes (`state_tree.py`)

The consensus batch (block + QC) is synced before a block counts as committed. The ledger
batch for height h (block, index, receipts, roots, state) is one atomic synced write, made when
h is executed; it also deletes h's consensus record. A crash between the two leaves h in the
consensus records, and restart executes it again.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from taihang.codec import decode, encode
from taihang.constants import STORE_SCHEMA_VERSION
from taihang.errors import StoreError
from taihang.ledger.block import Block, ExecRoot, QuorumCert
from taihang.store.kv import KVStore

_HEIGHT = struct.Struct(">Q")
_LOCATION = struct.Struct(">QI")
META_SCHEMA = b"Mschema_version"
META_GENESIS = b"Mgenesis_hash"
META_EXECUTED = b"Mexecuted_height"
HIGHEST_QC = b"cQ"


def _h(prefix: bytes, height: int) -> bytes:
    return prefix + _HEIGHT.pack(height)


class LedgerStore:
    def __init__(self, kv: KVStore) -> None:
        self.kv = kv

    # --- metadata -------------------------------------------------------------------------
    def is_initialized(self) -> bool:
        return self.kv.get(META_SCHEMA) is not None

    def check_schema(self, genesis_hash: bytes) -> None:
        """Raise `StoreError` unless the store was made by this schema for this genesis."""
        raw = self.kv.get(META_SCHEMA)
        if raw is None:
            raise StoreError("the store is not initialized")
        version = _HEIGHT.unpack(raw)[0]
        if version != STORE_SCHEMA_VERSION:
            raise StoreError(
                f"store schema version {version}, this node needs {STORE_SCHEMA_VERSION}"
            )
        stored = self.kv.get(META_GENESIS)
        if stored != genesis_hash:
            raise StoreError("the store belongs to a different genesis")

    def initialize_puts(self, genesis_hash: bytes) -> dict[bytes, bytes | None]:
        return {META_SCHEMA: _HEIGHT.pack(STORE_SCHEMA_VERSION), META_GENESIS: genesis_hash}

    @property
    def executed_height(self) -> int:
        raw = self.kv.get(META_EXECUTED)
        return -1 if raw is None else int(_HEIGHT.unpack(raw)[0])

    # --- consensus records ----------------------------------------------------------------
    def save_committed(self, height: int, block: bytes, qc: bytes) -> None:
        """Persist a committed block and its QC durably (before the commit is announced)."""
        self.kv.write({_h(b"c", height): block, HIGHEST_QC: qc}, sync=True)

    def build_committed_puts(self, height: int, block: bytes) -> dict[bytes, bytes | None]:
        return {_h(b"c", height): block}

    def build_highest_qc_puts(self, qc: bytes) -> dict[bytes, bytes | None]:
        return {HIGHEST_QC: qc}

    def find_committed_block(self, height: int) -> bytes | None:
        return self.kv.get(_h(b"c", height))

    def find_highest_qc(self) -> bytes | None:
        return self.kv.get(HIGHEST_QC)

    def committed_heights(self) -> list[int]:
        """Heights committed but not executed, ascending."""
        return [
            _HEIGHT.unpack(key[1:])[0]
            for key, _ in self.kv.scan(b"c")
            if len(key) == 1 + _HEIGHT.size
        ]

    # --- ledger ---------------------------------------------------------------------------
    def build_executed_puts(
        self,
        *,
        height: int,
        block: bytes,
        block_id: bytes,
        tx_ids: list[bytes | None],  # None: not indexed (a duplicate inclusion)
        receipts: list[bytes],
        exec_root: ExecRoot,
    ) -> dict[bytes, bytes | None]:
        """The ledger entries of height h; the caller adds the state puts and writes once."""
        puts: dict[bytes, bytes | None] = {
            _h(b"B", height): block,
            b"I" + block_id: _HEIGHT.pack(height),
            _h(b"R", height): encode(receipts),
            _h(b"E", height): encode(exec_root),
            META_EXECUTED: _HEIGHT.pack(height),
            _h(b"c", height): None,
        }
        pack = _LOCATION.pack
        for index, tx_id in enumerate(tx_ids):
            if tx_id is not None:
                puts[b"T" + tx_id] = pack(height, index)
        return puts

    def write(self, puts: Mapping[bytes, bytes | None]) -> None:
        self.kv.write(puts, sync=True)

    def find_block(self, height: int) -> bytes | None:
        """An executed block, else a committed one awaiting execution, else None."""
        return self.kv.get(_h(b"B", height)) or self.kv.get(_h(b"c", height))

    def read_certified_ancestors(
        self, block_id: bytes, count: int
    ) -> tuple[list[Block], list[QuorumCert]]:
        """Up to `count` executed blocks ending at `block_id`, newest first, each with the QC
        its child carries (so each is certified); empty for an unknown id, genesis, or the
        last executed block (whose QC only a later block or the commit proof holds)."""
        height = self.find_height_by_id(block_id)
        if height is None or height == 0:
            return [], []
        child_raw = self.find_block(height + 1)
        if child_raw is None:
            return [], []
        qc = decode(child_raw, Block).header.qc
        blocks: list[Block] = []
        qcs: list[QuorumCert] = []
        while len(blocks) < count and height > 0:
            raw = self.find_block(height)
            if raw is None:
                break
            block = decode(raw, Block)
            blocks.append(block)
            qcs.append(qc)
            qc = block.header.qc
            height -= 1
        return blocks, qcs

    def find_height_by_id(self, block_id: bytes) -> int | None:
        raw = self.kv.get(b"I" + block_id)
        return None if raw is None else int(_HEIGHT.unpack(raw)[0])

    def find_tx_location(self, tx_id: bytes) -> tuple[int, int] | None:
        raw = self.kv.get(b"T" + tx_id)
        if raw is None:
            return None
        height, index = _LOCATION.unpack(raw)
        return int(height), int(index)

    def find_tx_locations(self, tx_ids: list[bytes]) -> list[bytes | None]:
        """The raw index entries of many ids at once (None where not indexed)."""
        return self.kv.multi_get([b"T" + tx_id for tx_id in tx_ids]) if tx_ids else []

    def get_receipts(self, height: int) -> list[bytes]:
        raw = self.kv.get(_h(b"R", height))
        if raw is None:
            raise StoreError(f"no receipts stored for height {height}")
        return decode(raw, list[bytes])

    def find_exec_root(self, height: int) -> ExecRoot | None:
        raw = self.kv.get(_h(b"E", height))
        return None if raw is None else decode(raw, ExecRoot)


def decode_height(raw: bytes) -> int:
    try:
        return int(_HEIGHT.unpack(raw)[0])
    except struct.error as exc:
        raise StoreError(f"corrupt height record: {exc}") from None
