"""The state tree's hashing rules, reference root and proof verification (`crypto.jmt`)."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from taihang.codec import decode, encode
from taihang.crypto.jmt import (
    EMPTY_ROOT,
    KEY_NIBBLES,
    ProofLeaf,
    ProofLevel,
    StateProof,
    build_state_proof_from_items,
    compute_internal_hash,
    compute_key_hash,
    compute_leaf_hash,
    compute_nibble,
    compute_root_from_items,
    compute_value_hash,
    verify_state_proof,
)
from taihang.errors import InvalidProof
from taihang.testing.state_keys import find_keys


def leaf_hash_of(key: bytes, value: bytes) -> bytes:
    return compute_leaf_hash(compute_key_hash(key), compute_value_hash(value))


def test_compute_key_hash_is_sha256_of_the_state_key() -> None:
    assert compute_key_hash(b"abc") == hashlib.sha256(b"abc").digest()
    assert compute_value_hash(b"") == hashlib.sha256(b"").digest()


def test_compute_leaf_hash_tags_the_preimage() -> None:
    key_hash, value_hash = bytes(range(32)), bytes(range(32, 64))
    expected = hashlib.sha256(b"\x00" + key_hash + value_hash).digest()
    assert compute_leaf_hash(key_hash, value_hash) == expected


def test_compute_internal_hash_covers_bitmap_and_children() -> None:
    children = [b"\x11" * 32, b"\x22" * 32]
    expected = hashlib.sha256(b"\x01" + b"\x00\x05" + children[0] + children[1]).digest()
    assert compute_internal_hash(0b101, children) == expected
    assert compute_internal_hash(0b110, children) != expected


def test_compute_nibble_reads_high_nibble_first() -> None:
    key_hash = bytes([0xAB, 0xCD]) + bytes(30)
    assert [compute_nibble(key_hash, depth) for depth in range(4)] == [0xA, 0xB, 0xC, 0xD]


def test_compute_root_from_items_empty_is_empty_root() -> None:
    assert compute_root_from_items({}) == EMPTY_ROOT == bytes(32)


def test_compute_root_from_items_single_item_is_its_leaf() -> None:
    assert compute_root_from_items({b"a": b"1"}) == leaf_hash_of(b"a", b"1")


def test_compute_root_from_items_splits_at_first_distinct_nibble() -> None:
    (low,) = find_keys("1", 1)
    (high,) = find_keys("e", 1)
    expected = compute_internal_hash(
        (1 << 1) | (1 << 0xE), [leaf_hash_of(low, b"x"), leaf_hash_of(high, b"y")]
    )
    assert compute_root_from_items({high: b"y", low: b"x"}) == expected


def test_compute_root_from_items_shared_prefix_builds_a_chain() -> None:
    first, second = find_keys("ab", 2)
    third, fourth = (compute_key_hash(key).hex()[2] for key in (first, second))
    if third > fourth:
        first, second, third, fourth = second, first, fourth, third
    assert third != fourth, "the chosen keys must differ at the third nibble"
    bottom = compute_internal_hash(
        (1 << int(third, 16)) | (1 << int(fourth, 16)),
        [leaf_hash_of(first, b"1"), leaf_hash_of(second, b"2")],
    )
    middle = compute_internal_hash(1 << 0xB, [bottom])
    expected = compute_internal_hash(1 << 0xA, [middle])
    assert compute_root_from_items({first: b"1", second: b"2"}) == expected


def test_compute_root_from_items_ignores_insertion_order() -> None:
    items = {b"key-%d" % i: b"value-%d" % i for i in range(50)}
    reversed_items = dict(reversed(list(items.items())))
    assert compute_root_from_items(items) == compute_root_from_items(reversed_items)
    assert compute_root_from_items(items) != compute_root_from_items({**items, b"key-0": b"x"})


@pytest.mark.parametrize("size", [1, 2, 17, 300])
def test_verify_state_proof_accepts_every_present_and_absent_key(size: int) -> None:
    items = {b"key-%d" % i: b"value-%d" % i for i in range(size)}
    root = compute_root_from_items(items)
    for key, value in itertools.islice(items.items(), 40):
        verify_state_proof(root, key, value, build_state_proof_from_items(items, key))
    for index in range(40):
        absent = b"absent-%d" % index
        verify_state_proof(root, absent, None, build_state_proof_from_items(items, absent))


def test_verify_state_proof_accepts_absence_in_empty_tree() -> None:
    proof = build_state_proof_from_items({}, b"a")
    assert proof == StateProof(levels=[], leaf=None)
    verify_state_proof(EMPTY_ROOT, b"a", None, proof)


def test_verify_state_proof_accepts_absence_shown_by_another_keys_leaf() -> None:
    items = {b"only": b"1"}
    proof = build_state_proof_from_items(items, b"other")
    assert proof.leaf is not None and proof.leaf.key_hash == compute_key_hash(b"only")
    verify_state_proof(compute_root_from_items(items), b"other", None, proof)


def test_verify_state_proof_accepts_absence_shown_by_an_empty_slot() -> None:
    (low,) = find_keys("1", 1)
    (high,) = find_keys("e", 1)
    (absent,) = find_keys("5", 1)
    items = {low: b"x", high: b"y"}
    proof = build_state_proof_from_items(items, absent)
    assert proof.leaf is None and len(proof.levels) == 1
    verify_state_proof(compute_root_from_items(items), absent, None, proof)


@pytest.fixture
def tree() -> tuple[dict[bytes, bytes], bytes]:
    items = {b"key-%d" % i: b"value-%d" % i for i in range(40)}
    return items, compute_root_from_items(items)


def test_verify_state_proof_rejects_a_wrong_value(tree: tuple[dict[bytes, bytes], bytes]) -> None:
    items, root = tree
    proof = build_state_proof_from_items(items, b"key-1")
    with pytest.raises(InvalidProof, match="different value"):
        verify_state_proof(root, b"key-1", b"value-2", proof)


def test_verify_state_proof_rejects_absence_of_a_present_key(
    tree: tuple[dict[bytes, bytes], bytes],
) -> None:
    items, root = tree
    proof = build_state_proof_from_items(items, b"key-1")
    with pytest.raises(InvalidProof, match="present"):
        verify_state_proof(root, b"key-1", None, proof)


def test_verify_state_proof_rejects_a_value_for_an_absent_key(
    tree: tuple[dict[bytes, bytes], bytes],
) -> None:
    items, root = tree
    proof = build_state_proof_from_items(items, b"missing")
    with pytest.raises(InvalidProof, match="absent"):
        verify_state_proof(root, b"missing", b"", proof)


def test_verify_state_proof_rejects_another_keys_proof(
    tree: tuple[dict[bytes, bytes], bytes],
) -> None:
    items, root = tree
    proof = build_state_proof_from_items(items, b"key-1")
    with pytest.raises(InvalidProof):
        verify_state_proof(root, b"key-2", b"value-1", proof)


def test_verify_state_proof_rejects_a_tampered_sibling(
    tree: tuple[dict[bytes, bytes], bytes],
) -> None:
    items, root = tree
    proof = build_state_proof_from_items(items, b"key-1")
    level = proof.levels[0]
    tampered_sibling = bytes([level.siblings[0][0] ^ 1]) + level.siblings[0][1:]
    tampered_level = ProofLevel(
        bitmap=level.bitmap, siblings=[tampered_sibling, *level.siblings[1:]]
    )
    tampered = StateProof(levels=[tampered_level, *proof.levels[1:]], leaf=proof.leaf)
    with pytest.raises(InvalidProof, match="state root"):
        verify_state_proof(root, b"key-1", b"value-1", tampered)


def test_verify_state_proof_rejects_a_wrong_root(tree: tuple[dict[bytes, bytes], bytes]) -> None:
    items, _ = tree
    proof = build_state_proof_from_items(items, b"key-1")
    with pytest.raises(InvalidProof, match="state root"):
        verify_state_proof(EMPTY_ROOT, b"key-1", b"value-1", proof)


def test_verify_state_proof_rejects_bitmap_and_sibling_count_mismatch(
    tree: tuple[dict[bytes, bytes], bytes],
) -> None:
    items, root = tree
    proof = build_state_proof_from_items(items, b"key-1")
    level = proof.levels[0]
    short = StateProof(
        levels=[ProofLevel(bitmap=level.bitmap, siblings=level.siblings[1:]), *proof.levels[1:]],
        leaf=proof.leaf,
    )
    with pytest.raises(InvalidProof, match="sibling count"):
        verify_state_proof(root, b"key-1", b"value-1", short)


def test_verify_state_proof_rejects_a_bitmap_without_the_path_child() -> None:
    key_hash = compute_key_hash(b"a")
    bitmap = 1 << (compute_nibble(key_hash, 0) ^ 1)  # some other slot only
    leaf = ProofLeaf(key_hash=key_hash, value_hash=compute_value_hash(b"1"))
    proof = StateProof(levels=[ProofLevel(bitmap=bitmap, siblings=[])], leaf=leaf)
    with pytest.raises(InvalidProof, match="bitmap disagrees"):
        verify_state_proof(EMPTY_ROOT, b"a", b"1", proof)


@pytest.mark.parametrize("bitmap", [0, 1 << 16])
def test_verify_state_proof_rejects_a_bitmap_out_of_range(bitmap: int) -> None:
    proof = StateProof(levels=[ProofLevel(bitmap=bitmap, siblings=[])], leaf=None)
    with pytest.raises(InvalidProof, match="out of range"):
        verify_state_proof(EMPTY_ROOT, b"a", None, proof)


def test_verify_state_proof_rejects_too_many_levels() -> None:
    level = ProofLevel(bitmap=1, siblings=[])
    proof = StateProof(levels=[level] * (KEY_NIBBLES + 1), leaf=None)
    with pytest.raises(InvalidProof, match="levels"):
        verify_state_proof(EMPTY_ROOT, b"a", None, proof)


def test_verify_state_proof_rejects_short_hashes() -> None:
    proof = StateProof(levels=[ProofLevel(bitmap=3, siblings=[b"\x00" * 31])], leaf=None)
    with pytest.raises(InvalidProof, match="32 bytes"):
        verify_state_proof(EMPTY_ROOT, b"a", None, proof)
    leaf = ProofLeaf(key_hash=b"\x00" * 32, value_hash=b"")
    with pytest.raises(InvalidProof, match="32 bytes"):
        verify_state_proof(EMPTY_ROOT, b"a", None, StateProof(levels=[], leaf=leaf))


def test_verify_state_proof_rejects_a_leaf_off_the_path() -> None:
    (low,) = find_keys("1", 1)
    (high,) = find_keys("e", 1)
    (absent,) = find_keys("5", 1)
    items = {low: b"x", high: b"y"}
    proof = build_state_proof_from_items(items, low)
    with pytest.raises(InvalidProof, match="path"):
        verify_state_proof(compute_root_from_items(items), absent, None, proof)


def test_state_proof_round_trips_its_canonical_encoding() -> None:
    items = {b"key-%d" % i: b"v" for i in range(100)}
    proof = build_state_proof_from_items(items, b"key-7")
    assert decode(encode(proof), StateProof) == proof
    absent = build_state_proof_from_items(items, b"nope")
    assert decode(encode(absent), StateProof) == absent
