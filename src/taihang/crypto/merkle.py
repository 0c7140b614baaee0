"""Binary Merkle trees over ordered lists (transaction and receipt roots) with inclusion proofs.

RFC 6962 shape: a leaf hashes as H(0x00 || leaf), an inner node as H(0x01 || left || right),
and a level with an odd count promotes its last node unchanged (no duplication, so no
CVE-2012-2459-style second preimage). The root of an empty list is H(b""). H is the
channel's suite hash (SHA-256 by default, SM3 on sm channels).
"""

from __future__ import annotations

from taihang.crypto.hashing import HashFn, sha256
from taihang.errors import InvalidProof

_LEAF = b"\x00"
_NODE = b"\x01"


def compute_leaf_hash(leaf: bytes, hash_fn: HashFn = sha256) -> bytes:
    return hash_fn(_LEAF + leaf)


def _node_hash(left: bytes, right: bytes, hash_fn: HashFn) -> bytes:
    return hash_fn(_NODE + left + right)


def _next_level(level: list[bytes], hash_fn: HashFn) -> list[bytes]:
    paired = [_node_hash(level[i], level[i + 1], hash_fn) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])
    return paired


def compute_root(leaves: list[bytes], hash_fn: HashFn = sha256) -> bytes:
    """The Merkle root of `leaves` (raw leaf bytes, hashed here) under `hash_fn`."""
    if not leaves:
        return hash_fn(b"")
    level = [hash_fn(_LEAF + leaf) for leaf in leaves]
    while len(level) > 1:
        level = _next_level(level, hash_fn)
    return level[0]


def build_proof(leaves: list[bytes], index: int, hash_fn: HashFn = sha256) -> list[bytes]:
    """Sibling hashes from the leaf at `index` up to the root (promoted levels skipped)."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} out of range for {len(leaves)} leaves")
    level = [compute_leaf_hash(leaf, hash_fn) for leaf in leaves]
    proof: list[bytes] = []
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        level = _next_level(level, hash_fn)
        position //= 2
    return proof


def verify_proof(
    root: bytes,
    leaf: bytes,
    index: int,
    count: int,
    proof: list[bytes],
    hash_fn: HashFn = sha256,
) -> None:
    """Raise `InvalidProof` unless `leaf` is at `index` of a `count`-leaf list with `root`."""
    if not 0 <= index < count:
        raise InvalidProof(f"leaf index {index} out of range for {count} leaves")
    digest = compute_leaf_hash(leaf, hash_fn)
    position, width, used = index, count, 0
    while width > 1:
        sibling = position ^ 1
        if sibling < width:
            if used >= len(proof):
                raise InvalidProof("proof too short")
            other = proof[used]
            used += 1
            if position & 1:
                digest = _node_hash(other, digest, hash_fn)
            else:
                digest = _node_hash(digest, other, hash_fn)
        position //= 2
        width = (width + 1) // 2
    if used != len(proof):
        raise InvalidProof("proof too long")
    if digest != root:
        raise InvalidProof("proof does not lead to the root")
