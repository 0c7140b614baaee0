"""EDGE: the state tree on a `KVStore`, updated once per block (hashing rules: `crypto.jmt`).

Layout (prefixes of the ledger store's RocksDB):
  S<state_key>                  the value: a plain state read is one point lookup
  J<len:1><packed nibbles>      the tree node at that nibble path (the root at b"J\\x00")

Node records:
  leaf      0x00 || key_hash || value_hash                      (its hash: H of the record)
  internal  0x01 || bitmap:2 || leafmap:2 || child hashes of the set bits, in nibble order

`leafmap` (which children are leaves) is stored but not hashed: it only saves a read to learn
a child's kind while descending. Only the latest version exists: nodes are keyed by path and
overwritten, so proofs are always against the latest executed root (`root`).

Update protocol (one block):
  1. `root, puts = tree.compute_update(writes)` reads the store but writes nothing;
  2. the caller adds `puts` (node and value records, None deletes) to the block's atomic,
     synced ledger batch and writes it;
  3. `tree.commit_update(root)` moves the in-memory root and node cache to the new state.
A later `compute_update` without a commit discards the pending one (the block was abandoned).
Calls must be serialised with each other and with reads (`get`, `prove`): the tree is not
thread-safe, and a proof read while a batch lands may mix two versions.

Theory of the update: the write set is sorted by key hash and applied in one descent from
the root. Each node whose subtree holds a written key is loaded once, rebuilt once and hashed
once; a subtree that was empty or held a single leaf is rebuilt from its live keys (the new
keys plus the old leaf); a node left with a single leaf child collapses and hands the leaf to
its parent, which places it at the shallowest position where its path is unique. Nodes at
depth <= `cache_depth` stay decoded in memory (committed state only), so a block reads only
the lower nodes from the store, one point lookup each.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator, Mapping

from taihang.crypto.hashing import HashFn, sha256
from taihang.crypto.jmt import (
    EMPTY_ROOT,
    INTERNAL_TAG,
    KEY_NIBBLES,
    LEAF_TAG,
    ProofLeaf,
    ProofLevel,
    StateProof,
    compute_internal_hash,
    compute_key_hash,
    compute_value_hash,
)
from taihang.errors import StoreError
from taihang.store.kv import KVStore

NODE_PREFIX = b"J"
VALUE_PREFIX = b"S"
CACHE_DEPTH_DEFAULT = 3  # 1 + 16 + 256 + 4096 nodes at most: a few MiB, whatever the state size
_HEX = "0123456789abcdef"
_NIBBLE = {char: index for index, char in enumerate(_HEX)}
_AFTER_HEX = "g"  # sorts after every hex digit: bounds a run of keys sharing a prefix
_HEADER_BYTES = 5  # internal record: tag, bitmap (2), leafmap (2)

# A rebuilt subtree: None when empty, else (its hash, its leaf record when it is a single leaf
# that the caller must still place, or None when it is an internal node already placed).
_Subtree = tuple[bytes, bytes | None] | None
_Entry = tuple[str, bytes, bytes | None]  # (key hash in hex, key hash, value hash or delete)
_LiveEntry = tuple[str, bytes, bytes]


class _Internal:
    """A decoded internal node; never changed once placed or cached (updates build new ones)."""

    __slots__ = ("bitmap", "children", "leafmap", "record")

    def __init__(
        self, children: list[bytes | None], bitmap: int, leafmap: int, record: bytes
    ) -> None:
        self.children = children  # 16 slots: a child's hash, or None
        self.bitmap = bitmap  # bit i set when children[i] is not None
        self.leafmap = leafmap  # bit i set when child i is a leaf
        self.record = record


_Node = bytes | _Internal  # a leaf is kept as its record


_NODE_KEY_HEADS = [NODE_PREFIX + bytes((length,)) for length in range(KEY_NIBBLES + 1)]


def encode_node_key(path: str) -> bytes:
    """Store key of the node at `path` (nibbles as hex digits): length byte + packed nibbles."""
    length = len(path)
    return _NODE_KEY_HEADS[length] + bytes.fromhex(path + "0" if length & 1 else path)


def encode_value_key(state_key: bytes) -> bytes:
    return VALUE_PREFIX + state_key


def _decode_node(record: bytes, path: str) -> _Node:
    if record[:1] == LEAF_TAG and len(record) == 65:
        return record
    bitmap = int.from_bytes(record[1:3], "big")
    if record[:1] != INTERNAL_TAG or len(record) != _HEADER_BYTES + 32 * bitmap.bit_count():
        raise StoreError(f"corrupt state-tree node at path {path!r}")
    children: list[bytes | None] = [None] * 16
    offset = _HEADER_BYTES
    rest = bitmap
    while rest:  # only the set bits: nodes low in the tree have few children
        lowest = rest & -rest
        children[lowest.bit_length() - 1] = record[offset : offset + 32]
        offset += 32
        rest ^= lowest
    return _Internal(children, bitmap, int.from_bytes(record[3:5], "big"), record)


def _hash_of(node: _Node, hash_fn: HashFn) -> bytes:
    if isinstance(node, bytes):
        return hash_fn(node)  # a leaf record is exactly the leaf hash preimage
    record = node.record
    return hash_fn(record[:3] + record[_HEADER_BYTES:])  # the hash skips the unhashed leafmap


class StateTree:
    """The latest state and its Merkle tree, stored in `kv` (see the module docstring)."""

    def __init__(
        self, kv: KVStore, *, cache_depth: int = CACHE_DEPTH_DEFAULT, hash_fn: HashFn = sha256
    ) -> None:
        self._kv = kv
        self.hash_fn = hash_fn  # the channel's suite hash
        self._cache_depth = cache_depth
        self._cache: dict[str, _Node] = {}
        self._pending: tuple[bytes, dict[str, _Node | None]] | None = None
        self._root = EMPTY_ROOT
        self.reload()

    @property
    def root(self) -> bytes:
        """The state root of the latest committed update."""
        return self._root

    def reload(self) -> None:
        """Forget cached nodes and read the root from the store (after an outside write)."""
        self._cache.clear()
        self._pending = None
        node = self._load_node("")
        self._root = EMPTY_ROOT if node is None else _hash_of(node, self.hash_fn)

    def get(self, state_key: bytes) -> bytes | None:
        """The value of `state_key` in the latest committed state, or None."""
        return self._kv.get(VALUE_PREFIX + state_key)

    def scan(self, prefix: bytes, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        """At most `limit` (state_key, value) pairs of the latest committed state whose keys
        start with `prefix` and sort strictly after `after` (None: from the first), ascending."""
        found: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            return found
        start = None if after is None else VALUE_PREFIX + after
        for key, value in self._kv.scan(VALUE_PREFIX + prefix, start=start):
            if key != start:  # the store's `start` is inclusive
                found.append((key[1:], value))
                if len(found) == limit:
                    break
        return found

    def scan_items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (state_key, value), in state-key order (snapshots, offline verification)."""
        for key, value in self._kv.scan(VALUE_PREFIX):
            yield key[1:], value

    def compute_update(
        self, writes: Mapping[bytes, bytes | None]
    ) -> tuple[bytes, dict[bytes, bytes | None]]:
        """The new root after `writes` (None deletes) and the store puts (None deletes) that
        take the store there. Writes nothing; see the module docstring for the protocol."""
        update = _Update(self, writes)
        new_root, cache_changes = update.run()
        self._pending = (new_root, cache_changes)
        puts = update.build_puts()
        for state_key, value in writes.items():
            puts[VALUE_PREFIX + state_key] = value
        return new_root, puts

    def commit_update(self, new_root: bytes) -> None:
        """Adopt the pending update once its puts are durably written."""
        if self._pending is None or self._pending[0] != new_root:
            raise AssertionError("commit_update without a matching compute_update")
        for path, node in self._pending[1].items():
            if node is None:
                self._cache.pop(path, None)
            else:
                self._cache[path] = node
        self._root = new_root
        self._pending = None

    def apply_writes(self, writes: Mapping[bytes, bytes | None], *, sync: bool = True) -> bytes:
        """Compute, write and commit `writes` on their own (genesis, tools, benchmarks)."""
        new_root, puts = self.compute_update(writes)
        self._kv.write(puts, sync=sync)
        self.commit_update(new_root)
        return new_root

    def prove(self, state_key: bytes) -> tuple[bytes | None, StateProof]:
        """The value of `state_key` (or None) and its proof against `root`."""
        key_hex = compute_key_hash(state_key, self.hash_fn).hex()
        levels: list[ProofLevel] = []
        node = self._load_node("")
        while isinstance(node, _Internal):
            depth = len(levels)
            nibble = _NIBBLE[key_hex[depth]]
            siblings = [h for i, h in enumerate(node.children) if h is not None and i != nibble]
            levels.append(ProofLevel(bitmap=node.bitmap, siblings=siblings))
            has_child = node.children[nibble] is not None
            node = self._get_node(key_hex[: depth + 1]) if has_child else None
        if node is None:
            return None, StateProof(levels=levels, leaf=None)
        proof = StateProof(levels=levels, leaf=ProofLeaf(key_hash=node[1:33], value_hash=node[33:]))
        if node[1:33].hex() != key_hex:
            return None, proof  # another key's leaf holds the slot: absence
        value = self.get(state_key)
        if value is None:
            raise StoreError(f"state-tree leaf without a value for key {state_key!r}")
        return value, proof

    # --- node access (committed state) --------------------------------------------------------

    def _load_node(self, path: str) -> _Node | None:
        node = self._cache.get(path)
        if node is not None:
            return node
        record = self._kv.get(encode_node_key(path))
        if record is None:
            return None
        node = _decode_node(record, path)
        if len(path) <= self._cache_depth:
            self._cache[path] = node
        return node

    def _get_node(self, path: str) -> _Node:
        """A node that its parent says exists; a missing one means the store is corrupt."""
        node = self._load_node(path)
        if node is None:
            raise StoreError(f"state-tree node missing at path {path!r}")
        return node

    def _is_cached_depth(self, path: str) -> bool:
        return len(path) <= self._cache_depth


class _Update:
    """One block's write set applied to the committed tree, without writing (single use)."""

    def __init__(self, tree: StateTree, writes: Mapping[bytes, bytes | None]) -> None:
        self.tree = tree
        entries: list[_Entry] = []
        for state_key, value in writes.items():
            key_hash = compute_key_hash(state_key, tree.hash_fn)
            value_hash = None if value is None else compute_value_hash(value, tree.hash_fn)
            entries.append((key_hash.hex(), key_hash, value_hash))
        entries.sort(key=lambda entry: entry[0])  # key hashes are unique: a total order
        self.entries = entries
        self.hexes = [entry[0] for entry in entries]
        self.old: dict[str, bytes] = {}  # path -> record of every committed node consumed
        self.new: dict[str, bytes] = {}  # path -> record of every node placed
        self.new_cached: dict[str, _Node] = {}  # the placed nodes the tree's cache will hold

    def run(self) -> tuple[bytes, dict[str, _Node | None]]:
        """The new root and the changes to the tree's node cache."""
        if not self.entries:
            return self.tree.root, {}
        root_node = self.tree._load_node("")
        subtree = self._update_node("", root_node, 0, len(self.entries))
        if subtree is None:
            return EMPTY_ROOT, self._cache_changes()
        if subtree[1] is not None:
            self._place("", subtree[1])
        return subtree[0], self._cache_changes()

    def build_puts(self) -> dict[bytes, bytes | None]:
        """Node records to put (new or changed) and to delete (consumed and not replaced)."""
        old, new = self.old, self.new
        puts: dict[bytes, bytes | None] = {
            encode_node_key(path): record for path, record in new.items() if old.get(path) != record
        }
        for path in old:  # in descent order, not set order: the batch is deterministic
            if path not in new:
                puts[encode_node_key(path)] = None
        return puts

    def _cache_changes(self) -> dict[str, _Node | None]:
        changes: dict[str, _Node | None] = dict(self.new_cached)
        for path in self.old:
            if path not in self.new and self.tree._is_cached_depth(path):
                changes[path] = None
        return changes

    # --- the descent ---------------------------------------------------------------------------

    def _update_node(self, path: str, node: _Node | None, lo: int, hi: int) -> _Subtree:
        """Apply entries[lo:hi] (all under `path`) to the committed subtree `node` at `path`."""
        if node is None:
            return self._build(path, self._live(lo, hi))
        if isinstance(node, bytes):
            return self._update_leaf(path, node, lo, hi)
        return self._update_internal(path, node, lo, hi)

    def _update_internal(self, path: str, node: _Internal, lo: int, hi: int) -> _Subtree:
        self.old[path] = node.record
        children = node.children.copy()
        bitmap = node.bitmap
        leafmap = node.leafmap
        unplaced: dict[int, bytes] = {}  # leaf records of rebuilt children, placed at the end
        for nibble, group_lo, group_hi in self._groups(path, lo, hi):
            child_path = path + _HEX[nibble]
            child = None if children[nibble] is None else self.tree._get_node(child_path)
            subtree = self._update_node(child_path, child, group_lo, group_hi)
            bit = 1 << nibble
            if subtree is None:
                children[nibble] = None
                bitmap &= ~bit
                leafmap &= ~bit
                continue
            children[nibble] = subtree[0]
            bitmap |= bit
            if subtree[1] is None:
                leafmap &= ~bit
            else:
                leafmap |= bit
                unplaced[nibble] = subtree[1]
        return self._finish_internal(path, _Internal(children, bitmap, leafmap, b""), unplaced)

    def _finish_internal(self, path: str, node: _Internal, unplaced: dict[int, bytes]) -> _Subtree:
        """Place the rebuilt node, or collapse it when it is left with a single leaf."""
        if not node.bitmap:
            return None
        if node.bitmap == node.leafmap and node.bitmap.bit_count() == 1:
            nibble = node.bitmap.bit_length() - 1
            record = unplaced.get(nibble) or self._take_leaf(path + _HEX[nibble])
            return self.tree.hash_fn(record), record
        for nibble, record in unplaced.items():
            self._place(path + _HEX[nibble], record)
        return self._place_internal(path, node), None

    def _take_leaf(self, path: str) -> bytes:
        """An untouched leaf that moves up because its siblings went away."""
        node = self.tree._get_node(path)
        if not isinstance(node, bytes):
            raise StoreError(f"state-tree leafmap names an internal node at path {path!r}")
        self.old[path] = node
        return node

    def _update_leaf(self, path: str, record: bytes, lo: int, hi: int) -> _Subtree:
        """The subtree held one leaf: rebuild it from that leaf and the entries under it."""
        self.old[path] = record
        leaf_hex = record[1:33].hex()
        live: list[_LiveEntry] = []
        is_written = False
        for key_hex, key_hash, value_hash in self.entries[lo:hi]:
            is_written = is_written or key_hex == leaf_hex
            if value_hash is not None:
                live.append((key_hex, key_hash, value_hash))
        if not is_written:
            insort(live, (leaf_hex, record[1:33], record[33:65]))
        return self._build(path, live)

    def _build(self, path: str, live: list[_LiveEntry]) -> _Subtree:
        """A subtree from scratch over `live` (sorted), at a position that was empty."""
        if not live:
            return None
        if len(live) == 1:
            record = LEAF_TAG + live[0][1] + live[0][2]
            return self.tree.hash_fn(record), record
        depth = len(path)
        children: list[bytes | None] = [None] * 16
        bitmap = leafmap = 0
        start = 0
        while start < len(live):
            char = live[start][0][depth]
            end = start + 1
            while end < len(live) and live[end][0][depth] == char:
                end += 1
            subtree = self._build(path + char, live[start:end])
            assert subtree is not None
            nibble = _NIBBLE[char]
            children[nibble] = subtree[0]
            bitmap |= 1 << nibble
            if subtree[1] is not None:
                leafmap |= 1 << nibble
                self._place(path + char, subtree[1])
            start = end
        return self._place_internal(path, _Internal(children, bitmap, leafmap, b"")), None

    # --- helpers -----------------------------------------------------------------------------

    def _groups(self, path: str, lo: int, hi: int) -> Iterator[tuple[int, int, int]]:
        """Runs of entries[lo:hi] sharing the nibble after `path`: (nibble, lo, hi)."""
        hexes = self.hexes
        depth = len(path)
        while lo < hi:
            char = hexes[lo][depth]
            end = bisect_left(hexes, path + char + _AFTER_HEX, lo + 1, hi)
            yield _NIBBLE[char], lo, end
            lo = end

    def _live(self, lo: int, hi: int) -> list[_LiveEntry]:
        """The entries that write a value (deleting a missing key changes nothing)."""
        return [(h, k, v) for h, k, v in self.entries[lo:hi] if v is not None]

    def _place(self, path: str, record: bytes) -> None:
        self.new[path] = record
        if self.tree._is_cached_depth(path):
            self.new_cached[path] = record

    def _place_internal(self, path: str, node: _Internal) -> bytes:
        """Record `node` (its record still unset) at `path`; returns its hash."""
        hashes = [child_hash for child_hash in node.children if child_hash is not None]
        node.record = (
            INTERNAL_TAG
            + node.bitmap.to_bytes(2, "big")
            + node.leafmap.to_bytes(2, "big")
            + b"".join(hashes)
        )
        self.new[path] = node.record
        if self.tree._is_cached_depth(path):
            self.new_cached[path] = node
        return compute_internal_hash(node.bitmap, hashes, self.tree.hash_fn)
