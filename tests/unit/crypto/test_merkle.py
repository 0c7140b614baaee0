"""Unit tests for `taihang.crypto.merkle` against a straightforward RFC 6962 reference."""

from __future__ import annotations

import hashlib

import pytest

from taihang.crypto.merkle import build_proof, compute_leaf_hash, compute_root, verify_proof
from taihang.errors import InvalidProof

COUNTS = range(18)


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH: split at the largest power of two smaller than n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    left, right = reference_root(leaves[:split]), reference_root(leaves[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def make_leaves(count: int) -> list[bytes]:
    return [f"leaf-{i}".encode() for i in range(count)]


def all_proofs() -> list[tuple[int, int]]:
    return [(count, index) for count in COUNTS for index in range(count)]


@pytest.mark.parametrize("count", COUNTS)
def test_compute_root_matches_the_reference(count: int) -> None:
    assert compute_root(make_leaves(count)) == reference_root(make_leaves(count))


def test_compute_root_of_known_small_trees() -> None:
    a, b, c = (compute_leaf_hash(x) for x in (b"a", b"b", b"c"))

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    assert compute_root([]) == hashlib.sha256(b"").digest()
    assert compute_root([b"a"]) == hashlib.sha256(b"\x00a").digest()
    assert compute_root([b"a", b"b"]) == node(a, b)
    assert compute_root([b"a", b"b", b"c"]) == node(node(a, b), c)  # c promoted, not duplicated


def test_compute_root_depends_on_order_and_content() -> None:
    leaves = make_leaves(5)
    assert compute_root(leaves) != compute_root(leaves[::-1])
    assert compute_root(leaves) != compute_root([*leaves[:4], b"other"])
    assert compute_root(leaves) != compute_root([*leaves, leaves[-1]])  # no duplication collision


@pytest.mark.parametrize(("count", "index"), all_proofs())
def test_verify_proof_accepts_every_index(count: int, index: int) -> None:
    leaves = make_leaves(count)
    root = compute_root(leaves)
    verify_proof(root, leaves[index], index, count, build_proof(leaves, index))


@pytest.mark.parametrize(("count", "index"), all_proofs())
def test_verify_proof_rejects_tampering(count: int, index: int) -> None:
    leaves = make_leaves(count)
    root = compute_root(leaves)
    proof = build_proof(leaves, index)
    leaf = leaves[index]
    with pytest.raises(InvalidProof):
        verify_proof(root, leaf + b"x", index, count, proof)
    with pytest.raises(InvalidProof):
        verify_proof(hashlib.sha256(root).digest(), leaf, index, count, proof)
    for i in range(len(proof)):
        tampered = list(proof)
        tampered[i] = bytes([tampered[i][0] ^ 1]) + tampered[i][1:]
        with pytest.raises(InvalidProof):
            verify_proof(root, leaf, index, count, tampered)
    with pytest.raises(InvalidProof):
        verify_proof(root, leaf, index, count, [*proof, root])
    if proof:
        with pytest.raises(InvalidProof):
            verify_proof(root, leaf, index, count, proof[:-1])
        with pytest.raises(InvalidProof):
            verify_proof(root, leaf, index, count, proof[::-1] if len(proof) > 1 else [root])
    for other in range(count):
        if other != index and leaves[other] != leaf:
            with pytest.raises(InvalidProof):
                verify_proof(root, leaf, other, count, proof)


@pytest.mark.parametrize(("count", "index"), all_proofs())
def test_verify_proof_rejects_another_count_unless_the_tree_is_the_same(
    count: int, index: int
) -> None:
    # The root does not commit to the count, so a proof carries over exactly when the other
    # count hashes the same path (e.g. index 0 of 3 and of 4 both need two siblings); the
    # count itself must come from elsewhere (the block's transaction list).
    leaves = make_leaves(count)
    root = compute_root(leaves)
    proof = build_proof(leaves, index)
    for other in range(40):
        if other == count:
            continue
        same_path = other > index and _path_shape(index, other) == _path_shape(index, count)
        if same_path:
            verify_proof(root, leaves[index], index, other, proof)
        else:
            with pytest.raises(InvalidProof):
                verify_proof(root, leaves[index], index, other, proof)


def _path_shape(index: int, count: int) -> list[bool]:
    """For each level, whether the node at `index`'s position is the right child of a pair."""
    shape = []
    position, width = index, count
    while width > 1:
        if position ^ 1 < width:
            shape.append(bool(position & 1))
        position //= 2
        width = (width + 1) // 2
    return shape


@pytest.mark.parametrize(("index", "count"), [(0, 0), (-1, 3), (3, 3), (7, 3)])
def test_verify_proof_rejects_an_index_outside_the_count(index: int, count: int) -> None:
    with pytest.raises(InvalidProof, match="out of range"):
        verify_proof(compute_root(make_leaves(3)), b"leaf-0", index, count, [])


def test_build_proof_rejects_an_index_outside_the_leaves() -> None:
    with pytest.raises(IndexError):
        build_proof(make_leaves(3), 3)
    with pytest.raises(IndexError):
        build_proof([], 0)


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = compute_leaf_hash(b"a"), compute_leaf_hash(b"b")
    # a two-leaf root must not verify as a single leaf whose bytes are the two child hashes
    with pytest.raises(InvalidProof):
        verify_proof(compute_root([b"a", b"b"]), a + b, 0, 1, [])
