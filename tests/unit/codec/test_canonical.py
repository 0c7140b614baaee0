"""Unit tests for `taihang.codec.canonical`: one byte string per value, checked on decode."""

from __future__ import annotations

import msgspec
import pytest

from taihang.codec import Canonical, decode, encode
from taihang.errors import DecodeError


class Point(Canonical, frozen=True):
    x: int
    label: str
    tags: list[bytes]
    note: str | None = None


POINT = Point(x=3, label="p", tags=[b"\x01"])


def test_encode_writes_an_array_in_field_order() -> None:
    assert encode(POINT) == msgspec.msgpack.encode([3, "p", [b"\x01"], None])


def test_decode_round_trips_a_struct() -> None:
    assert decode(encode(POINT), Point) == POINT
    assert decode(bytearray(encode(POINT)), Point) == POINT  # type: ignore[arg-type]
    assert decode(memoryview(encode(POINT)), Point) == POINT  # type: ignore[arg-type]


def test_encode_orders_map_keys_deterministically() -> None:
    assert encode({"b": 1, "a": 2}) == encode({"a": 2, "b": 1})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (encode(POINT) + b"\x00", "trailing"),
        (encode(POINT)[:-1], "truncated"),
        (b"\x94\xcc\x03\xa1p\x91\xc4\x01\x01\xc0", "canonical"),  # x written as uint8
        (b"\x94\x03\xd9\x01p\x91\xc4\x01\x01\xc0", "canonical"),  # label written as str8
        (b"\x93\x03\xa1p\x91\xc4\x01\x01", "canonical"),  # the default left out
        (b"\x95\x03\xa1p\x91\xc4\x01\x01\xc0\xc0", "at most"),  # an extra field
        (b"\x94\x03\xa1p\x91\xa1\x01\xc0", "Expected `bytes`"),  # wrong type
        (b"\x94\xcb" + bytes(8) + b"\xa1p\x90\xc0", "Expected `int`"),  # a float
        (b"\x94\x03\xa1\xff\x90\xc0", "UTF-8"),  # a string that is not UTF-8
        (b"", "truncated"),
    ],
)
def test_decode_rejects_anything_but_the_canonical_bytes(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode(data, Point)


def test_decode_rejects_input_over_max_bytes() -> None:
    data = encode(POINT)
    assert decode(data, Point, max_bytes=len(data)) == POINT
    with pytest.raises(DecodeError, match="exceeds"):
        decode(data, Point, max_bytes=len(data) - 1)


def test_decode_rejects_a_non_bytes_argument() -> None:
    with pytest.raises(DecodeError, match="expected bytes"):
        decode("not bytes", Point)  # type: ignore[arg-type]


def test_decode_turns_exhausted_recursion_into_decode_error() -> None:
    with pytest.raises(DecodeError, match="nesting"):
        decode(b"\x91" * 200_000 + b"\x00", list)


def test_canonical_structs_are_frozen() -> None:
    with pytest.raises(AttributeError):
        POINT.x = 4  # type: ignore[misc]
