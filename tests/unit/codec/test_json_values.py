"""Unit tests for `taihang.codec.json_values`: dynamic values in REST bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taihang.codec import encode_value, value_from_json, value_to_json
from taihang.constants import NESTING_DEPTH_MAX
from taihang.errors import DecodeError

keys = st.one_of(
    st.text(max_size=6),
    st.binary(max_size=6),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.booleans(),
    st.sampled_from(["$bytes", "$map"]),
)
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**512) + 1, max_value=2**512 - 1),
        st.text(max_size=8),
        st.binary(max_size=8),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=20,
)


def through_json(value: Any) -> Any:
    return value_from_json(json.loads(json.dumps(value_to_json(value))))


@settings(max_examples=300, deadline=None)
@given(values)
def test_value_from_json_inverts_value_to_json(value: Any) -> None:
    assert encode_value(through_json(value)) == encode_value(value)


def test_value_to_json_writes_bytes_and_non_string_keys_in_marked_forms() -> None:
    assert value_to_json(b"\x01\xab") == {"$bytes": "01ab"}
    assert value_to_json({1: b"a", "x": [True, None]}) == {
        "$map": [[1, {"$bytes": "61"}], ["x", [True, None]]]
    }
    assert value_to_json({"a": 1}) == {"a": 1}


@pytest.mark.parametrize("value", [{"$bytes": "ab"}, {"$map": []}, {"$bytes": {"$map": 1}}])
def test_value_to_json_keeps_objects_that_look_like_markers_apart(value: dict[str, Any]) -> None:
    assert "$map" in value_to_json(value)
    assert through_json(value) == value


def test_value_from_json_reads_markers() -> None:
    assert value_from_json({"$bytes": "00ff"}) == b"\x00\xff"
    assert value_from_json({"$map": [[1, 2], [{"$bytes": "61"}, 3]]}) == {1: 2, b"a": 3}
    assert value_from_json({"$bytes": "00", "other": 1}) == {"$bytes": "00", "other": 1}


@pytest.mark.parametrize(
    "data",
    [
        1.5,
        [1, [2.0]],
        {"$bytes": "zz"},
        {"$bytes": 12},
        {"$map": 1},
        {"$map": [[1]]},
        {"$map": [[[1], 2]]},  # a list cannot be a key
        {"$map": [[{"a": 1}, 2]]},  # nor can an object
        {"$map": [[None, 2]]},
        2**512,
        object(),
    ],
)
def test_value_from_json_rejects_what_a_value_cannot_hold(data: Any) -> None:
    with pytest.raises(DecodeError):
        value_from_json(data)


def test_value_from_json_limits_nesting() -> None:
    data: Any = 1
    for _ in range(NESTING_DEPTH_MAX):
        data = [data]
    assert value_from_json(data) == data
    with pytest.raises(DecodeError, match="nested"):
        value_from_json([data])
