"""Properties of the incremental state tree against the from-scratch reference (`crypto.jmt`).

Random sequences of write-set batches (with deletes, rewrites and abandoned blocks) over a key
pool that includes keys sharing 2 and 3 leading nibbles, so that chains form and collapse.
After every batch: the root equals `compute_root_from_items` of a model dict, the stored nodes
equal those of a tree built in one batch (no stale records), and proofs of present and absent
keys verify while tampered ones fail.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taihang.crypto.jmt import (
    ProofLevel,
    StateProof,
    compute_key_hash,
    compute_root_from_items,
    verify_state_proof,
)
from taihang.errors import InvalidProof
from taihang.store.kv import KVStore, MemoryKV, RocksKV
from taihang.store.state_tree import StateTree


def _keys_with_prefix(prefix: str, count: int) -> list[bytes]:
    found = []
    for index in itertools.count():
        key = b"p%d" % index
        if compute_key_hash(key).hex().startswith(prefix):
            found.append(key)
            if len(found) == count:
                return found
    raise AssertionError("unreachable")


KEY_POOL = [b"key-%d" % i for i in range(24)] + _keys_with_prefix("c7", 2)
KEY_POOL += _keys_with_prefix("5e1", 3)

Writes = dict[bytes, bytes | None]
write_sets = st.dictionaries(
    st.sampled_from(KEY_POOL), st.none() | st.binary(max_size=3), max_size=14
)
blocks = st.lists(st.tuples(write_sets, st.booleans()), min_size=1, max_size=6)


def _apply_to_model(model: dict[bytes, bytes], writes: Writes) -> None:
    for key, value in writes.items():
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value


def _tamper_sibling(proof: StateProof) -> StateProof | None:
    for depth, level in enumerate(proof.levels):
        if level.siblings:
            sibling = bytes([level.siblings[0][0] ^ 0x80]) + level.siblings[0][1:]
            tampered = ProofLevel(bitmap=level.bitmap, siblings=[sibling, *level.siblings[1:]])
            levels = [*proof.levels[:depth], tampered, *proof.levels[depth + 1 :]]
            return StateProof(levels=levels, leaf=proof.leaf)
    return None


def _check_proofs(tree: StateTree, model: dict[bytes, bytes]) -> None:
    for key in KEY_POOL:
        value, proof = tree.prove(key)
        assert value == model.get(key)
        verify_state_proof(tree.root, key, value, proof)
        wrong_value = b"" if value is None else value + b"!"
        with pytest.raises(InvalidProof):
            verify_state_proof(tree.root, key, wrong_value, proof)
        with pytest.raises(InvalidProof):
            verify_state_proof(tree.root, b"other-" + key, value if value else b"x", proof)
        tampered = _tamper_sibling(proof)
        if tampered is not None:
            with pytest.raises(InvalidProof):
                verify_state_proof(tree.root, key, value, tampered)


def _node_records(kv: KVStore) -> list[tuple[bytes, bytes]]:
    return list(kv.scan(b"J"))


def _run_blocks(kv: KVStore, cache_depth: int, batches: list[tuple[Writes, bool]]) -> bytes:
    tree = StateTree(kv, cache_depth=cache_depth)
    model: dict[bytes, bytes] = {}
    for writes, is_abandoned in batches:
        new_root, puts = tree.compute_update(writes)
        if is_abandoned:
            continue  # the next compute_update must discard this one
        kv.write(puts, sync=False)
        tree.commit_update(new_root)
        _apply_to_model(model, writes)
        assert tree.root == compute_root_from_items(model)
        fresh = MemoryKV()
        StateTree(fresh).apply_writes(dict(model))
        assert _node_records(kv) == _node_records(fresh)
        assert dict(tree.scan_items()) == model
        _check_proofs(tree, model)
    return tree.root


@settings(max_examples=300, deadline=None)
@given(batches=blocks, cache_depth=st.sampled_from([0, 1, 3]))
def test_compute_update_matches_reference_on_memory_kv(
    batches: list[tuple[Writes, bool]], cache_depth: int
) -> None:
    _run_blocks(MemoryKV(), cache_depth, batches)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=blocks)
def test_compute_update_matches_reference_on_rocks_kv(
    tmp_path_factory: pytest.TempPathFactory, batches: list[tuple[Writes, bool]]
) -> None:
    path: Path = tmp_path_factory.mktemp("state-tree") / "db"
    kv = RocksKV(path)
    try:
        root = _run_blocks(kv, 3, batches)
    finally:
        kv.close()
    reopened = RocksKV(path)
    try:
        assert StateTree(reopened).root == root
    finally:
        reopened.close()
