"""Unit tests for `taihang.execution.state`: the write overlay and its checkpoints."""

from __future__ import annotations

import pytest

from taihang.codec import encode_value
from taihang.errors import DecodeError
from taihang.execution.state import Overlay, state_key


class DictState:
    """A `StateReader` over a plain dict, counting reads."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data = dict(data or {})
        self.reads = 0

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return self.data.get(key)


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
