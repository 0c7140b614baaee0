"""Unit tests for `taihang.execution.state`: the write overlay and its checkpoints."""

from __future__ import annotations

import random

import pytest

from taihang.codec import encode_value
from taihang.errors import DecodeError
from taihang.execution.state import Overlay, state_key


class DictState:
    """A `StateReader` over a plain dict, counting reads."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data = dict(data or {})
        self.reads = 0
        self.scans: list[tuple[bytes, bytes | None, int]] = []

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return self.data.get(key)

    def scan(self, prefix: bytes, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        self.scans.append((prefix, after, limit))
        keys = sorted(k for k in self.data if k.startswith(prefix) and (after is None or k > after))
        return [(k, self.data[k]) for k in keys[:limit]]


def make_overlay() -> tuple[Overlay, DictState]:
    base = DictState({b"a": encode_value(1), b"b": encode_value({"x": [1, 2]})})
    return Overlay(base), base


def test_state_key_joins_namespace_and_key() -> None:
    assert state_key("asset", "balance/ab") == b"asset/balance/ab"


def test_overlay_reads_through_to_the_base_once() -> None:
    overlay, base = make_overlay()
    assert overlay.get(b"a") == 1
    assert overlay.get(b"a") == 1
    assert overlay.get(b"b") == {"x": [1, 2]}
    assert overlay.get(b"missing") is None
    assert overlay.get(b"missing", 7) == 7
    assert overlay.get(b"missing") is None
    assert base.reads == 3
    assert overlay.has(b"a") and not overlay.has(b"missing")
    assert overlay.writes == {}


def test_overlay_set_and_delete_shadow_the_base() -> None:
    overlay, base = make_overlay()
    assert overlay.set(b"a", 2) == len(encode_value(2))
    overlay.set(b"c", b"new")
    overlay.delete(b"b")
    assert overlay.get(b"a") == 2
    assert overlay.get(b"c") == b"new"
    assert overlay.get(b"b") is None
    assert overlay.get(b"b", "gone") == "gone"
    assert overlay.writes == {b"a": encode_value(2), b"c": encode_value(b"new"), b"b": None}
    assert base.data[b"a"] == encode_value(1)  # the base is never written


def test_overlay_set_rejects_values_that_cannot_be_encoded() -> None:
    overlay, _ = make_overlay()
    with pytest.raises(DecodeError):
        overlay.set(b"a", 1.5)
    assert overlay.get(b"a") == 1
    assert overlay.writes == {}


def test_overlay_rollback_restores_earlier_values_and_writes() -> None:
    overlay, _ = make_overlay()
    overlay.set(b"a", 2)  # written before the checkpoint: survives
    overlay.begin()
    overlay.set(b"a", 3)
    overlay.set(b"a", 4)
    overlay.delete(b"b")
    overlay.set(b"c", "new")
    overlay.delete(b"d")
    assert overlay.get(b"a") == 4
    overlay.rollback()
    assert overlay.get(b"a") == 2
    assert overlay.get(b"b") == {"x": [1, 2]}
    assert overlay.get(b"c") is None
    assert overlay.get(b"d") is None
    assert overlay.writes == {b"a": encode_value(2)}


def test_overlay_rollback_restores_a_base_value_read_inside_the_checkpoint() -> None:
    overlay, _ = make_overlay()
    overlay.begin()
    assert overlay.get(b"a") == 1
    overlay.set(b"a", 5)
    overlay.rollback()
    assert overlay.get(b"a") == 1
    assert overlay.writes == {}


def test_overlay_rollback_restores_a_delete_made_before_the_checkpoint() -> None:
    overlay, _ = make_overlay()
    overlay.delete(b"a")
    overlay.begin()
    overlay.set(b"a", 9)
    overlay.rollback()
    assert overlay.get(b"a") is None
    assert overlay.writes == {b"a": None}


def test_overlay_commit_keeps_the_writes_and_allows_a_new_checkpoint() -> None:
    overlay, _ = make_overlay()
    overlay.begin()
    overlay.set(b"a", 3)
    overlay.commit()
    overlay.begin()
    overlay.set(b"a", 4)
    overlay.rollback()
    assert overlay.get(b"a") == 3
    assert overlay.writes == {b"a": encode_value(3)}


def test_overlay_checkpoints_do_not_nest() -> None:
    overlay, _ = make_overlay()
    overlay.begin()
    with pytest.raises(AssertionError):
        overlay.begin()


def test_overlay_commit_and_rollback_need_a_checkpoint() -> None:
    overlay, _ = make_overlay()
    with pytest.raises(AssertionError):
        overlay.commit()
    with pytest.raises(AssertionError):
        overlay.rollback()


def raw(value: object) -> bytes:
    return encode_value(value)  # type: ignore[arg-type]


def scan_overlay() -> tuple[Overlay, DictState]:
    base = DictState(
        {
            key: encode_value(i)
            for i, key in enumerate(
                [b"a", b"a/1", b"a/2", b"a/3", b"ab", b"b/1", b"tok/x", b"token/x", b"tok"]
            )
        }
    )
    return Overlay(base), base


def test_overlay_scan_reads_the_base_in_key_order() -> None:
    overlay, _ = scan_overlay()
    assert overlay.scan(b"a/", 10) == [(b"a/1", raw(1)), (b"a/2", raw(2)), (b"a/3", raw(3))]
    assert overlay.scan(b"a", 10) == [
        (b"a", raw(0)),
        (b"a/1", raw(1)),
        (b"a/2", raw(2)),
        (b"a/3", raw(3)),
        (b"ab", raw(4)),
    ]
    assert overlay.scan(b"a/", 2) == [(b"a/1", raw(1)), (b"a/2", raw(2))]
    assert overlay.scan(b"b", 10) == [(b"b/1", raw(5))]  # prefix "a" never matches "b"
    assert overlay.scan(b"tok/", 10) == [(b"tok/x", raw(6))]  # not token/x, not tok
    assert overlay.scan(b"c", 10) == []
    assert overlay.scan(b"a/", 0) == []
    assert overlay.writes == {}


def test_overlay_scan_sees_writes_over_the_base() -> None:
    overlay, _ = scan_overlay()
    overlay.set(b"a/2", "two")  # overrides the base
    overlay.set(b"a/0", "zero")  # new, before every base key
    overlay.set(b"a/25", "mid")  # new, between base keys
    overlay.set(b"a/9", "nine")  # new, after every base key
    overlay.set(b"a0", "outside")  # sorts after the prefix: never seen
    overlay.set(b"tokenx", "outside")
    assert overlay.scan(b"a/", 10) == [
        (b"a/0", raw("zero")),
        (b"a/1", raw(1)),
        (b"a/2", raw("two")),
        (b"a/25", raw("mid")),
        (b"a/3", raw(3)),
        (b"a/9", raw("nine")),
    ]
    assert overlay.scan(b"a/", 3) == [(b"a/0", raw("zero")), (b"a/1", raw(1)), (b"a/2", raw("two"))]
    assert overlay.scan(b"tok/", 10) == [(b"tok/x", raw(6))]
    overlay.set(b"c/1", 1)  # a prefix with no base keys
    overlay.set(b"c/0", 0)
    assert overlay.scan(b"c/", 10) == [(b"c/0", raw(0)), (b"c/1", raw(1))]


def test_overlay_scan_skips_deletes_and_pages_past_them() -> None:
    base = DictState({b"k/%03d" % i: encode_value(i) for i in range(100)})
    overlay = Overlay(base)
    for i in range(90):  # far more deleted keys than the limit
        overlay.delete(b"k/%03d" % i)
    overlay.delete(b"k/500")  # a delete of a key the base never had
    assert overlay.scan(b"k/", 3) == [(b"k/%03d" % i, raw(i)) for i in range(90, 93)]
    assert len(base.scans) > 1  # it had to page
    assert overlay.scan(b"k/", 100) == [(b"k/%03d" % i, raw(i)) for i in range(90, 100)]
    for i in range(90, 100):
        overlay.delete(b"k/%03d" % i)
    assert overlay.scan(b"k/", 5) == []
    overlay.set(b"k/050", "back")
    assert overlay.scan(b"k/", 5) == [(b"k/050", raw("back"))]


def test_overlay_scan_counts_the_entries_it_examined() -> None:
    base = DictState({b"k/%03d" % i: encode_value(i) for i in range(100)})
    overlay = Overlay(base)
    found, examined = overlay.scan_counted(b"k/", 3)
    assert len(found) == 3 and 3 <= examined <= 6  # a page of the limit, nothing hidden
    for i in range(90):
        overlay.delete(b"k/%03d" % i)
    found, examined = overlay.scan_counted(b"k/", 1)
    assert found == [(b"k/090", raw(90))]
    assert examined >= 91  # the 90 deleted keys were read and merged before the first live one
    assert overlay.scan_counted(b"x/", 5) == ([], 0)


def test_overlay_scan_pages_grow_and_stay_bounded() -> None:
    base = DictState({b"k/%05d" % i: encode_value(i) for i in range(5_000)})
    overlay = Overlay(base)
    for i in range(4_999):
        overlay.delete(b"k/%05d" % i)
    assert overlay.scan(b"k/", 1) == [(b"k/04999", raw(4999))]
    assert len(base.scans) < 20  # not one base read per deleted key
    assert max(limit for _, _, limit in base.scans) <= 1_024


def test_overlay_scan_ignores_cached_reads() -> None:
    overlay, _ = scan_overlay()
    assert overlay.get(b"a/9") is None  # a cached miss is not a delete
    assert overlay.get(b"a/1") == 1
    assert overlay.scan(b"a/", 10) == [(b"a/1", raw(1)), (b"a/2", raw(2)), (b"a/3", raw(3))]


def test_overlay_scan_forgets_writes_rolled_back() -> None:
    overlay, _ = scan_overlay()
    overlay.set(b"a/0", "kept")
    assert overlay.scan(b"a/", 1) == [(b"a/0", raw("kept"))]  # the index exists from here on
    overlay.begin()
    overlay.set(b"a/00", "gone")  # first written in the checkpoint
    overlay.set(b"a/00", "gone again")
    overlay.set(b"a/0", "changed")
    overlay.delete(b"a/1")
    overlay.delete(b"a/5")
    assert overlay.scan(b"a/", 10) == [
        (b"a/0", raw("changed")),
        (b"a/00", raw("gone again")),
        (b"a/2", raw(2)),
        (b"a/3", raw(3)),
    ]
    overlay.rollback()
    expected = [(b"a/0", raw("kept")), (b"a/1", raw(1)), (b"a/2", raw(2)), (b"a/3", raw(3))]
    assert overlay.scan(b"a/", 10) == expected
    overlay.set(b"a/00", "again")  # re-writing a rolled-back key indexes it once
    overlay.delete(b"a/00")
    assert overlay.scan(b"a/", 10) == expected


def test_overlay_scan_forgets_writes_rolled_back_before_the_first_scan() -> None:
    overlay, _ = scan_overlay()
    overlay.begin()
    overlay.set(b"a/00", "gone")
    overlay.rollback()
    overlay.begin()
    overlay.set(b"a/01", "kept")
    overlay.commit()
    assert overlay.scan(b"a/", 2) == [(b"a/01", raw("kept")), (b"a/1", raw(1))]


def test_overlay_scan_orders_utf8_keys_by_bytes() -> None:
    base = DictState({state_key("c", k): encode_value(k) for k in ["é", "z", "Z"]})
    overlay = Overlay(base)
    overlay.set(state_key("c", "中"), "中")  # 0xe4...: after 0xc3 (é)
    overlay.set(state_key("c", "a"), "a")
    keys = [k for k, _ in overlay.scan(b"c/", 10)]
    assert keys == [state_key("c", k) for k in ["Z", "a", "z", "é", "中"]]
    assert keys == sorted(keys)


def test_overlay_scan_matches_a_reference_under_random_operations() -> None:
    rng = random.Random(7)
    alphabet = [b"a", b"b", b"/", b"\xc3\xa9"]

    def key() -> bytes:
        return b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))

    base = DictState({key(): encode_value(i) for i in range(60)})
    overlay = Overlay(base)
    model = dict(base.data)  # what the block sees: the base under the overlay's writes
    saved: dict[bytes, bytes] | None = None
    for step in range(3_000):
        op = rng.random()
        if op < 0.3:
            k, v = key(), encode_value(step)
            overlay.set(k, step)
            model[k] = v
        elif op < 0.45:
            k = key()
            overlay.delete(k)
            model.pop(k, None)
        elif op < 0.5 and saved is None:
            overlay.begin()
            saved = dict(model)
        elif op < 0.55 and saved is not None:
            if rng.random() < 0.5:
                overlay.rollback()
                model = saved
            else:
                overlay.commit()
            saved = None
        else:
            prefix = key()[: rng.randint(0, 2)]
            limit = rng.randint(1, 8)
            expected = sorted((k, v) for k, v in model.items() if k.startswith(prefix))
            assert overlay.scan(prefix, limit) == expected[:limit], step
