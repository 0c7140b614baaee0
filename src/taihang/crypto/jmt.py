"""The authenticated state tree: hashing rules, proofs and a from-scratch reference root.

Theory of operation
-------------------
The state is a map from state keys (arbitrary bytes) to values (bytes). It is committed to by
a compressed radix-16 Merkle tree in the style of the Jellyfish Merkle Tree (Diem/Aptos):

* **Paths.** A key's place in the tree is `key_hash = sha256(state_key)` read as 64 nibbles,
  high nibble of each byte first. Hashing the key spreads keys evenly, so with n keys the
  tree is about log16(n) levels deep whatever the keys look like.
* **Nodes.** A node is empty, a leaf or an internal node with up to 16 children (one per
  nibble). A leaf carries `key_hash` and `value_hash = sha256(value)`.
* **Compression.** The shape is a function of the key set alone, never of history: a position
  whose subtree holds no key is empty; one whose subtree holds exactly one key is that key's
  leaf (so a leaf sits at the shallowest position where its path is unique); one whose
  subtree holds two or more keys is an internal node. There are no extension nodes: two keys
  sharing a long prefix hang below a chain of one-child internal nodes, which is rare with
  hashed keys (sharing k nibbles has probability 16^-k).
* **Hashes.** `H` is the channel's suite hash (SHA-256 for ed25519 channels, SM3 for sm
  channels; written sha256 below, and the default of every function here). With `||` for
  concatenation:

      leaf hash     = sha256(0x00 || key_hash || value_hash)                      (65 bytes in)
      internal hash = sha256(0x01 || bitmap || child hashes of the set bits, in nibble order)
      empty tree    = EMPTY_ROOT, 32 zero bytes

  `bitmap` is 2 bytes big-endian; bit i (value 1 << i) is set when child i is non-empty. The
  bitmap form hashes and proves only the children that exist (a node low in the tree has few),
  instead of 16 slots with zero hashes for the empty ones. The leading tag byte keeps leaf and
  internal preimages apart, so a leaf can never pass for an internal node or the reverse.
* **Proofs.** A `StateProof` for a key lists, from the root down along the key's nibble path,
  each internal node as its bitmap and the hashes of its other children (`ProofLevel`), and
  ends at the terminal: the leaf found there (`ProofLeaf`, which for an absence proof is some
  other key's leaf: the only key under that prefix) or an empty slot (`leaf` is None). The
  verifier rebuilds the hashes bottom-up along the path and compares with the root. Because
  the shape depends only on the key set, a leaf or an empty slot on the path of `key_hash` is
  conclusive: `key_hash` is present exactly when the terminal leaf carries it.

Everything here is pure (no IO, no clocks, no randomness): a light client verifies a read with
`taihang.crypto` alone. The stored, incremental tree lives in `taihang.store.state_tree`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from taihang.codec import Canonical
from taihang.crypto.hashing import HashFn, sha256
from taihang.errors import InvalidProof

HASH_BYTES: Final = 32
KEY_NIBBLES: Final = 2 * HASH_BYTES  # a key hash read as nibbles: the deepest possible path
RADIX: Final = 16
BITMAP_MAX: Final = (1 << RADIX) - 1
LEAF_TAG: Final = b"\x00"
INTERNAL_TAG: Final = b"\x01"
EMPTY_ROOT: Final = bytes(HASH_BYTES)


class ProofLevel(Canonical, frozen=True):
    """One internal node on the path: which children exist, and the hashes of the others."""

    bitmap: int  # bit i set when child i is non-empty
    siblings: list[bytes]  # hashes of the non-empty children other than the path's, by nibble


class ProofLeaf(Canonical, frozen=True):
    """The leaf that ends the path: the key's own leaf, or the one other key under its prefix."""

    key_hash: bytes
    value_hash: bytes


class StateProof(Canonical, frozen=True):
    """Inclusion of (state_key, value), or absence of state_key, against a state root."""

    levels: list[ProofLevel]  # root first; empty when the root itself is the terminal
    leaf: ProofLeaf | None  # None: the path ends in an empty slot (or the tree is empty)


def compute_key_hash(state_key: bytes, hash_fn: HashFn = sha256) -> bytes:
    return hash_fn(state_key)


def compute_value_hash(value: bytes, hash_fn: HashFn = sha256) -> bytes:
    return hash_fn(value)


def compute_leaf_hash(key_hash: bytes, value_hash: bytes, hash_fn: HashFn = sha256) -> bytes:
    return hash_fn(LEAF_TAG + key_hash + value_hash)


def compute_internal_hash(
    bitmap: int, child_hashes: Sequence[bytes], hash_fn: HashFn = sha256
) -> bytes:
    """Hash of an internal node; `child_hashes` are those of the set bits, in nibble order."""
    return hash_fn(INTERNAL_TAG + bitmap.to_bytes(2, "big") + b"".join(child_hashes))


def compute_nibble(key_hash: bytes, depth: int) -> int:
    """The nibble of `key_hash` at `depth` (0 is the high nibble of the first byte)."""
    byte = key_hash[depth >> 1]
    return byte & 0x0F if depth & 1 else byte >> 4


# --- the reference tree, built from scratch ---------------------------------------------------

_Leaf = tuple[str, bytes, bytes]  # (key hash in hex: its nibble path, key hash, value hash)


def _sorted_leaves(items: Mapping[bytes, bytes], hash_fn: HashFn) -> list[_Leaf]:
    leaves = []
    for state_key, value in items.items():
        key_hash = hash_fn(state_key)
        leaves.append((key_hash.hex(), key_hash, hash_fn(value)))
    leaves.sort()
    return leaves


def _split_by_nibble(leaves: list[_Leaf], depth: int) -> list[tuple[int, list[_Leaf]]]:
    """Consecutive runs of sorted `leaves` that share the nibble at `depth`."""
    groups: list[tuple[int, list[_Leaf]]] = []
    for leaf in leaves:
        nibble = int(leaf[0][depth], 16)
        if groups and groups[-1][0] == nibble:
            groups[-1][1].append(leaf)
        else:
            groups.append((nibble, [leaf]))
    return groups


def _compute_subtree_hash(leaves: list[_Leaf], depth: int, hash_fn: HashFn) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return compute_leaf_hash(leaves[0][1], leaves[0][2], hash_fn)
    assert depth < KEY_NIBBLES, "two distinct keys with the same key hash"
    bitmap = 0
    child_hashes = []
    for nibble, group in _split_by_nibble(leaves, depth):
        bitmap |= 1 << nibble
        child_hashes.append(_compute_subtree_hash(group, depth + 1, hash_fn))
    return compute_internal_hash(bitmap, child_hashes, hash_fn)


def compute_root_from_items(items: Mapping[bytes, bytes], hash_fn: HashFn = sha256) -> bytes:
    """The state root of `items` (state_key -> value), built from scratch.

    The reference for genesis and for offline ledger verification; the node itself updates its
    stored tree incrementally (`taihang.store.state_tree`) and must always agree with this.
    """
    return _compute_subtree_hash(_sorted_leaves(items, hash_fn), 0, hash_fn)


def build_state_proof_from_items(
    items: Mapping[bytes, bytes], state_key: bytes, hash_fn: HashFn = sha256
) -> StateProof:
    """A proof for `state_key` over `items`, built from scratch (reference and tests)."""
    key_hash = hash_fn(state_key)
    leaves = _sorted_leaves(items, hash_fn)
    levels: list[ProofLevel] = []
    depth = 0
    while len(leaves) > 1:
        path_nibble = compute_nibble(key_hash, depth)
        bitmap, siblings, below = 0, [], []
        for nibble, group in _split_by_nibble(leaves, depth):
            bitmap |= 1 << nibble
            if nibble == path_nibble:
                below = group
            else:
                siblings.append(_compute_subtree_hash(group, depth + 1, hash_fn))
        levels.append(ProofLevel(bitmap=bitmap, siblings=siblings))
        leaves = below
        depth += 1
    leaf = ProofLeaf(key_hash=leaves[0][1], value_hash=leaves[0][2]) if leaves else None
    return StateProof(levels=levels, leaf=leaf)


# --- verification -----------------------------------------------------------------------------


def _validate_shape(proof: StateProof) -> None:
    """Cheap structural checks first, so that the hashing below only sees well-formed input."""
    if len(proof.levels) > KEY_NIBBLES:
        raise InvalidProof(f"proof has {len(proof.levels)} levels, at most {KEY_NIBBLES} exist")
    for depth, level in enumerate(proof.levels):
        if not 0 < level.bitmap <= BITMAP_MAX:
            raise InvalidProof(f"level {depth}: bitmap {level.bitmap} out of range")
        if any(len(sibling) != HASH_BYTES for sibling in level.siblings):
            raise InvalidProof(f"level {depth}: a sibling hash is not {HASH_BYTES} bytes")
    leaf = proof.leaf
    if leaf is not None and (
        len(leaf.key_hash) != HASH_BYTES or len(leaf.value_hash) != HASH_BYTES
    ):
        raise InvalidProof(f"terminal leaf hashes must be {HASH_BYTES} bytes")


def _validate_terminal(
    key_hash: bytes, value: bytes | None, proof: StateProof, hash_fn: HashFn
) -> None:
    """Check that the terminal says what the caller claims: key -> value, or key absent."""
    leaf = proof.leaf
    depth = len(proof.levels)
    if leaf is not None and leaf.key_hash.hex()[:depth] != key_hash.hex()[:depth]:
        raise InvalidProof("terminal leaf does not lie on the key's path")
    if value is None:
        if leaf is not None and leaf.key_hash == key_hash:
            raise InvalidProof("proof shows the key is present, absence was claimed")
        return
    if leaf is None or leaf.key_hash != key_hash:
        raise InvalidProof("proof shows the key is absent, a value was claimed")
    if leaf.value_hash != hash_fn(value):
        raise InvalidProof("proof shows a different value for the key")


def _compute_level_hash(
    level: ProofLevel, nibble: int, below: bytes | None, depth: int, hash_fn: HashFn
) -> bytes:
    """Rebuild one internal node from its proof level and the hash found below it (or none)."""
    bit = 1 << nibble
    has_path_child = below is not None
    if bool(level.bitmap & bit) != has_path_child:
        state = "non-empty" if has_path_child else "empty"
        raise InvalidProof(f"level {depth}: bitmap disagrees with the {state} child on the path")
    if len(level.siblings) != level.bitmap.bit_count() - has_path_child:
        raise InvalidProof(f"level {depth}: bitmap and sibling count disagree")
    if below is None:
        return compute_internal_hash(level.bitmap, level.siblings, hash_fn)
    position = (level.bitmap & (bit - 1)).bit_count()  # set bits below the path's nibble
    children = [*level.siblings[:position], below, *level.siblings[position:]]
    return compute_internal_hash(level.bitmap, children, hash_fn)


def verify_state_proof(
    root: bytes,
    state_key: bytes,
    value: bytes | None,
    proof: StateProof,
    hash_fn: HashFn = sha256,
) -> None:
    """Raise `InvalidProof` unless `proof` shows state_key -> value (absence if value is None)
    in the tree with state root `root`. `hash_fn` is the channel's suite hash (SHA-256 for
    ed25519 channels, SM3 for sm channels)."""
    _validate_shape(proof)
    key_hash = hash_fn(state_key)
    _validate_terminal(key_hash, value, proof, hash_fn)
    leaf = proof.leaf
    digest = None if leaf is None else compute_leaf_hash(leaf.key_hash, leaf.value_hash, hash_fn)
    for depth in range(len(proof.levels) - 1, -1, -1):
        nibble = compute_nibble(key_hash, depth)
        digest = _compute_level_hash(proof.levels[depth], nibble, digest, depth, hash_fn)
    if (EMPTY_ROOT if digest is None else digest) != root:
        raise InvalidProof("proof does not lead to the state root")
