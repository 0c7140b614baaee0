"""Unit tests for `taihang.codec.values`: the allowed types, the big-int extension, the limits."""

from __future__ import annotations

import msgspec
import pytest

from taihang.codec import BIG_INT_EXT_CODE, decode_value, encode_value, validate_value
from taihang.constants import ENCODED_BYTES_MAX, NESTING_DEPTH_MAX
from taihang.errors import DecodeError


def big_int_payload(number: int) -> bytes:
    ext = msgspec.msgpack.decode(encode_value(number), type=msgspec.msgpack.Ext)
    assert ext.code == BIG_INT_EXT_CODE
    return bytes(ext.data)


@pytest.mark.parametrize(
    ("number", "payload_hex"),
    [
        (2**64, "010000000000000000"),
        (-(2**63) - 1, "ff7fffffffffffffff"),
        (-(2**64), "ff0000000000000000"),
        (2**71, "00800000000000000000"),
        (2**71 - 1, "7fffffffffffffffff"),
        (-(2**71), "800000000000000000"),  # minimal: nine bytes, not ten
        (-(2**71) - 1, "ff7fffffffffffffffff"),
    ],
)
def test_encode_value_writes_minimal_big_endian_twos_complement(
    number: int, payload_hex: str
) -> None:
    assert big_int_payload(number).hex() == payload_hex
    assert decode_value(encode_value(number)) == number


def test_encode_value_keeps_64_bit_integers_native() -> None:
    for number in (-(2**63), -1, 0, 2**63, 2**64 - 1):
        assert encode_value(number) == msgspec.msgpack.encode(number)


def test_encode_value_limits_integers_to_512_bits() -> None:
    assert decode_value(encode_value(2**512 - 1)) == 2**512 - 1
    assert decode_value(encode_value(-(2**512) + 1)) == -(2**512) + 1
    assert len(big_int_payload(-(2**511))) == 64
    for number in (2**512, -(2**512)):
        with pytest.raises(DecodeError, match="512 bits"):
            encode_value(number)


def test_decode_value_keeps_bool_distinct_from_int() -> None:
    value = decode_value(encode_value([True, 1, False, 0]))
    assert [type(v) for v in value] == [bool, int, bool, int]


def test_encode_value_sorts_mixed_keys_by_their_encoded_bytes() -> None:
    mapping = {"a": 1, b"a": 2, 5: 3, True: 4, -1: 5}
    data = encode_value(mapping)
    assert list(decode_value(data)) == [5, "a", True, b"a", -1]  # 05 < a1.. < c3 < c4.. < ff
    assert encode_value(dict(reversed(list(mapping.items())))) == data


@pytest.mark.parametrize("bad", [1.5, {1.5: 1}, {None: 1}, {(1,): 1}, {2**64: 1}, {1, 2}, object()])
def test_validate_value_rejects_disallowed_values(bad: object) -> None:
    with pytest.raises(DecodeError):
        validate_value(bad)
    with pytest.raises(DecodeError):
        encode_value(bad)


def test_validate_value_counts_depth_from_the_top() -> None:
    value: object = 0
    for _ in range(NESTING_DEPTH_MAX):
        value = [value]
    validate_value(value)
    with pytest.raises(DecodeError, match="nested"):
        validate_value([value])


@pytest.mark.parametrize(
    "data",
    [
        b"",  # nothing
        b"\x01\x01",  # trailing byte
        b"\x92\x01",  # truncated
        b"\xcb" + bytes(8),  # float64
        b"\xca" + bytes(4),  # float32
        b"\xcd\x00\x01",  # 1 as uint16
        b"\xd9\x01a",  # a one-byte string in str8 form
        b"\x82\xa1b\x01\xa1a\x02",  # keys out of order
        b"\x82\xa1a\x01\xa1a\x02",  # a repeated key
        b"\x82\x01\x01\xc3\x01",  # 1 and True collide as Python keys
        b"\xd4\x01\x05",  # big-int form for 5
        b"\xc7\x00\x01",  # big-int form with no payload
        b"\xd4\x02\x00",  # unknown extension
        b"\xd6\xff\x00\x00\x00\x00",  # msgpack timestamp
        b"\x81\xc0\x01",  # nil key
        b"\x81\x91\x01\x01",  # list key
        b"\x81\x81\x01\x01\x01",  # map key
        b"\xa1\xff",  # a string that is not UTF-8
        b"\xc1",  # reserved opcode
    ],
)
def test_decode_value_rejects_non_canonical_bytes(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_value(data)


def test_decode_value_rejects_input_over_the_default_limit() -> None:
    data = b"\xc6" + (ENCODED_BYTES_MAX - 4).to_bytes(4, "big") + bytes(ENCODED_BYTES_MAX - 4)
    assert len(data) == ENCODED_BYTES_MAX + 1
    with pytest.raises(DecodeError, match="exceeds"):
        decode_value(data)
