"""The stored, incrementally updated state tree (`store.state_tree`)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from taihang.crypto.jmt import (
    EMPTY_ROOT,
    StateProof,
    compute_key_hash,
    compute_leaf_hash,
    compute_root_from_items,
    compute_value_hash,
    verify_state_proof,
)
from taihang.errors import StoreError
from taihang.store.kv import MemoryKV, RocksKV
from taihang.store.state_tree import StateTree, encode_node_key, encode_value_key
from taihang.testing.state_keys import find_keys


def node_records(kv: MemoryKV) -> dict[bytes, bytes]:
    return {key: value for key, value in kv.data.items() if key.startswith(b"J")}


def node_paths(kv: MemoryKV) -> set[tuple[int, bytes]]:
    """(depth, packed nibbles) of every stored node."""
    return {(key[1], key[2:]) for key in node_records(kv)}


def test_encode_node_key_packs_nibbles_after_a_length_byte() -> None:
    assert encode_node_key("") == b"J\x00"
    assert encode_node_key("a") == b"J\x01\xa0"
    assert encode_node_key("ab3") == b"J\x03\xab\x30"
    assert encode_value_key(b"x") == b"Sx"


def test_state_tree_starts_empty() -> None:
    tree = StateTree(MemoryKV())
    assert tree.root == EMPTY_ROOT
    assert tree.get(b"a") is None


def test_compute_update_writes_nothing_until_the_caller_does() -> None:
    kv = MemoryKV()
    tree = StateTree(kv)
    new_root, puts = tree.compute_update({b"a": b"1"})
    assert kv.data == {} and kv.writes == 0
    assert tree.root == EMPTY_ROOT
    assert puts[b"Sa"] == b"1"
    kv.write(puts, sync=True)
    tree.commit_update(new_root)
    assert tree.root == new_root == compute_root_from_items({b"a": b"1"})
    assert tree.get(b"a") == b"1"


def test_commit_update_rejects_a_root_it_did_not_compute() -> None:
    tree = StateTree(MemoryKV())
    with pytest.raises(AssertionError):
        tree.commit_update(EMPTY_ROOT)
    tree.compute_update({b"a": b"1"})
    with pytest.raises(AssertionError):
        tree.commit_update(b"\x01" * 32)


def test_compute_update_without_commit_is_discarded() -> None:
    kv = MemoryKV()
    tree = StateTree(kv, cache_depth=64)
    tree.apply_writes({b"k%d" % i: b"v" for i in range(50)})
    tree.compute_update({b"k%d" % i: None for i in range(40)})  # abandoned block
    new_root = tree.apply_writes({b"k1": b"w"})
    expected = {b"k%d" % i: b"v" for i in range(50)} | {b"k1": b"w"}
    assert new_root == compute_root_from_items(expected)


def test_compute_update_places_a_single_key_at_the_root() -> None:
    kv = MemoryKV()
    tree = StateTree(kv)
    tree.apply_writes({b"a": b"1"})
    record = kv.data[b"J\x00"]
    assert record == b"\x00" + compute_key_hash(b"a") + compute_value_hash(b"1")
    assert tree.root == compute_leaf_hash(record[1:33], record[33:])


def test_compute_update_places_leaves_where_their_path_is_unique() -> None:
    kv = MemoryKV()
    tree = StateTree(kv)
    (low,) = find_keys("1", 1)
    first, second = find_keys("ab", 2)
    tree.apply_writes({low: b"x", first: b"1", second: b"2"})
    third, fourth = (compute_key_hash(key).hex()[2] for key in (first, second))
    expected = {(0, b""), (1, b"\x10"), (1, b"\xa0"), (2, b"\xab")}
    expected |= {(3, bytes.fromhex("ab" + nibble + "0")) for nibble in (third, fourth)}
    assert node_paths(kv) == expected
    assert tree.root == compute_root_from_items({low: b"x", first: b"1", second: b"2"})


def test_compute_update_delete_collapses_the_chain() -> None:
    kv = MemoryKV()
    tree = StateTree(kv)
    first, second = find_keys("ab", 2)
    tree.apply_writes({first: b"1", second: b"2"})
    tree.apply_writes({second: None})
    assert node_paths(kv) == {(0, b"")}
    assert tree.root == compute_root_from_items({first: b"1"})
    assert tree.get(second) is None


def test_compute_update_rewriting_the_same_value_changes_no_node() -> None:
    kv = MemoryKV()
    tree = StateTree(kv)
    tree.apply_writes({b"k%d" % i: b"v" for i in range(100)})
    before = tree.root
    new_root, puts = tree.compute_update({b"k1": b"v", b"k2": b"v"})
    assert new_root == before
    assert puts == {b"Sk1": b"v", b"Sk2": b"v"}


def test_compute_update_deleting_a_missing_key_changes_no_node() -> None:
    kv = MemoryKV()
    tree = StateTree(kv)
    tree.apply_writes({b"k%d" % i: b"v" for i in range(100)})
    before = tree.root
    new_root, puts = tree.compute_update({b"missing": None})
    assert new_root == before
    assert puts == {b"Smissing": None}


def test_compute_update_with_no_writes_keeps_the_root() -> None:
    tree = StateTree(MemoryKV())
    tree.apply_writes({b"a": b"1"})
    assert tree.compute_update({}) == (tree.root, {})


def test_compute_update_deleting_everything_leaves_an_empty_store() -> None:
    kv = MemoryKV()
    tree = StateTree(kv)
    keys = [b"k%d" % i for i in range(200)]
    tree.apply_writes(dict.fromkeys(keys, b"v"))
    assert tree.apply_writes(dict.fromkeys(keys)) == EMPTY_ROOT
    assert kv.data == {}
    assert tree.prove(b"k1") == (None, StateProof(levels=[], leaf=None))
    assert tree.apply_writes({b"k1": b"w"}) == compute_root_from_items({b"k1": b"w"})


def test_compute_update_matches_the_reference_over_many_blocks() -> None:
    rng = random.Random(5)
    kv = MemoryKV()
    tree = StateTree(kv, cache_depth=2)
    model: dict[bytes, bytes] = {}
    for _ in range(20):
        writes: dict[bytes, bytes | None] = {}
        for _ in range(150):
            key = b"key-%d" % rng.randrange(1_000)
            writes[key] = None if rng.random() < 0.25 else rng.randbytes(rng.randrange(8))
        tree.apply_writes(writes)
        for key, value in writes.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        assert tree.root == compute_root_from_items(model)
    fresh = MemoryKV()
    StateTree(fresh).apply_writes(model)
    assert node_records(kv) == node_records(fresh)  # no stale nodes: history-independent


def test_prove_shows_present_and_absent_keys() -> None:
    tree = StateTree(MemoryKV())
    items = {b"key-%d" % i: b"value-%d" % i for i in range(500)}
    tree.apply_writes(dict(items))
    for index in range(0, 500, 7):
        key = b"key-%d" % index
        value, proof = tree.prove(key)
        assert value == items[key]
        verify_state_proof(tree.root, key, value, proof)
    for index in range(30):
        value, proof = tree.prove(b"absent-%d" % index)
        assert value is None
        verify_state_proof(tree.root, b"absent-%d" % index, None, proof)


def test_prove_on_an_empty_tree_shows_absence() -> None:
    tree = StateTree(MemoryKV())
    value, proof = tree.prove(b"a")
    assert value is None
    verify_state_proof(EMPTY_ROOT, b"a", None, proof)


def test_state_tree_loads_its_root_from_the_store() -> None:
    kv = MemoryKV()
    root = StateTree(kv).apply_writes({b"k%d" % i: b"v" for i in range(30)})
    assert StateTree(kv).root == root
    single = MemoryKV()
    root = StateTree(single).apply_writes({b"a": b"1"})
    assert StateTree(single).root == root


def test_state_tree_rejects_a_corrupt_root_record() -> None:
    kv = MemoryKV()
    kv.data[b"J\x00"] = b"\x01\x00\x03\x00\x00" + b"\x00" * 32  # bitmap says 2 children, 1 hash
    with pytest.raises(StoreError, match="corrupt"):
        StateTree(kv)


def test_state_tree_reports_a_missing_node() -> None:
    kv = MemoryKV()
    tree = StateTree(kv)
    tree.apply_writes({b"k%d" % i: b"v" for i in range(30)})
    del kv.data[encode_node_key(compute_key_hash(b"k1").hex()[:1])]
    tree.reload()
    with pytest.raises(StoreError, match="missing"):
        tree.apply_writes({b"k1": b"w"})


def test_scan_items_lists_the_state_in_key_order() -> None:
    tree = StateTree(MemoryKV())
    tree.apply_writes({b"b": b"2", b"a": b"1", b"c": b"3"})
    tree.apply_writes({b"b": None})
    assert list(tree.scan_items()) == [(b"a", b"1"), (b"c", b"3")]


def test_state_tree_on_rocks_survives_reopening(tmp_path: Path) -> None:
    kv = RocksKV(tmp_path / "db")
    tree = StateTree(kv)
    items = {b"key-%d" % i: b"value-%d" % i for i in range(300)}
    tree.apply_writes(dict(items))
    root = tree.apply_writes({b"key-1": None, b"key-2": b"new"})
    kv.close()
    items.pop(b"key-1")
    items[b"key-2"] = b"new"
    reopened = RocksKV(tmp_path / "db")
    try:
        tree = StateTree(reopened)
        assert tree.root == root == compute_root_from_items(items)
        value, proof = tree.prove(b"key-2")
        verify_state_proof(root, b"key-2", value, proof)
        assert value == b"new"
    finally:
        reopened.close()


SCAN_STATE = {
    b"tok/a": b"1",
    b"tok/b": b"2",
    b"tok/b/x": b"3",
    b"tok/c": b"4",
    "tok/é".encode(): b"5",  # 0xc3 0xa9: after every ASCII byte
    b"tok/z": b"6",
    b"token/a": b"7",
    b"tok": b"8",
    b"toj/a": b"9",
}


@pytest.fixture(params=["memory", "rocks"])
def tree(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateTree]:
    """A tree holding SCAN_STATE less `tok/c` (written, then deleted), on either store."""
    kv = MemoryKV() if request.param == "memory" else RocksKV(tmp_path / "db")
    tree = StateTree(kv)
    tree.apply_writes(dict(SCAN_STATE))
    tree.apply_writes({b"tok/c": None})
    yield tree
    kv.close()


def test_scan_reads_one_prefix_in_key_byte_order(tree: StateTree) -> None:
    expected = [
        (b"tok/a", b"1"),
        (b"tok/b", b"2"),
        (b"tok/b/x", b"3"),
        (b"tok/z", b"6"),
        ("tok/é".encode(), b"5"),
    ]
    assert tree.scan(b"tok/", None, 100) == expected
    assert tree.scan(b"tok/", None, 2) == expected[:2]
    assert tree.scan(b"tok/", None, 0) == []
    assert tree.scan(b"tok/b", None, 100) == expected[1:3]
    assert tree.scan(b"token/", None, 100) == [(b"token/a", b"7")]
    assert tree.scan(b"tok/q", None, 100) == []
    assert tree.scan(b"", None, 3) == [(b"toj/a", b"9"), (b"tok", b"8"), (b"tok/a", b"1")]
    # Nothing of the store's node records (prefix J) leaks into a scan of everything.
    assert len(tree.scan(b"", None, 1_000)) == len(SCAN_STATE) - 1


def test_scan_starts_strictly_after_after(tree: StateTree) -> None:
    assert tree.scan(b"tok/", b"tok/b", 2) == [(b"tok/b/x", b"3"), (b"tok/z", b"6")]
    assert tree.scan(b"tok/", b"tok/bb", 1) == [(b"tok/z", b"6")]  # `after` need not exist
    assert tree.scan(b"tok/", b"tok/c", 10) == [(b"tok/z", b"6"), ("tok/é".encode(), b"5")]
    assert tree.scan(b"tok/", "tok/é".encode(), 10) == []
    assert tree.scan(b"tok/", b"a", 1) == [(b"tok/a", b"1")]  # before the prefix
    assert tree.scan(b"tok/", b"tp", 10) == []  # past the prefix
    # Paging by the last key returned visits every entry exactly once.
    pages: list[tuple[bytes, bytes]] = []
    after: bytes | None = None
    while page := tree.scan(b"tok/", after, 2):
        pages += page
        after = page[-1][0]
    assert pages == tree.scan(b"tok/", None, 100)
