"""Binary Merkle trees over ordered lists (transaction and receipt roots) with inclusion proofs.

RFC 6962 shape: a leaf hashes as H(0x00 || leaf), an inner node as H(0x01 || left || right),
and a level with an odd count promotes its last node unchanged (no duplication, so no
CVE-2012-2459-style second preimage). The root of an empty list is H(b"").
"""

from __future__ import annotations

import hashlib

from taihang.errors import InvalidProof

_LEAF = b"\x00"
_NODE = b"\x01"


def compute_leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(_LEAF + leaf).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _next_level(level: list[bytes]) -> list[bytes]:
    paired = [_node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])
    return paired


def compute_root(leaves: list[bytes]) -> bytes:
    """The Merkle root of `leaves` (raw leaf bytes, hashed here)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [compute_leaf_hash(leaf) for leaf in leaves]
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def build_proof(leaves: list[bytes], index: int) -> list[bytes]:
    """Sibling hashes from the leaf at `index` up to the root (promoted levels skipped)."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} out of range for {len(leaves)} leaves")
    level = [compute_leaf_hash(leaf) for leaf in leaves]
    proof: list[bytes] = []
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        level = _next_level(level)
        position //= 2
    return proof


def verify_proof(root: bytes, leaf: bytes, index: int, count: int, proof: list[bytes]) -> None:
    """Raise `InvalidProof` unless `leaf` is at `index` of a `count`-leaf list with `root`."""
    if not 0 <= index < count:
        raise InvalidProof(f"leaf index {index} out of range for {count} leaves")
    digest = compute_leaf_hash(leaf)
    position, width, used = index, count, 0
    while width > 1:
        sibling = position ^ 1
        if sibling < width:
            if used >= len(proof):
                raise InvalidProof("proof too short")
            other = proof[used]
            used += 1
            digest = _node_hash(other, digest) if position & 1 else _node_hash(digest, other)
        position //= 2
        width = (width + 1) // 2
    if used != len(proof):
        raise InvalidProof("proof too long")
    if digest != root:
        raise InvalidProof("proof does not lead to the root")
