"""Dynamic values: what contract arguments, return values and event data may hold.

Allowed: None, bool, int (up to 512 bits), str, bytes, list and dict (keys str, bytes, int or
bool). Tuples are accepted on encode and come back as lists. Integers that do not fit msgpack's
64-bit forms use extension type 1 whose payload is the minimal big-endian two's-complement
bytes of the integer; integers that do fit must use the native form (ADR 0002).
"""

from __future__ import annotations

from typing import Any

import msgspec

from taihang.constants import BIG_INT_BITS_MAX, ENCODED_BYTES_MAX, NESTING_DEPTH_MAX
from taihang.errors import DecodeError

Value = Any  # None | bool | int | str | bytes | list[Value] | dict[Key, Value]

BIG_INT_EXT_CODE = 1
_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1

# Map order is fixed by `_prepare` (keys sorted by their own encoded bytes, which orders mixed
# key types too), so this encoder keeps insertion order.
_encoder = msgspec.msgpack.Encoder()


def _big_int_from_ext(code: int, data: memoryview) -> int:
    if code != BIG_INT_EXT_CODE:
        raise DecodeError(f"unknown extension type {code}")
    value = int.from_bytes(data, "big", signed=True)
    if _INT64_MIN <= value <= _UINT64_MAX:
        raise DecodeError("integer in big-int form fits 64 bits")
    return value


_decoder = msgspec.msgpack.Decoder(ext_hook=_big_int_from_ext)


def _big_int_to_ext(value: int) -> msgspec.msgpack.Ext:
    # Minimal two's complement needs the bits of value (of ~value when negative) plus a sign
    # bit; counting a negative value's own bits would give -2**71 ten bytes instead of nine.
    magnitude_bits = value.bit_length() if value >= 0 else (~value).bit_length()
    length = (magnitude_bits + 8) // 8
    return msgspec.msgpack.Ext(BIG_INT_EXT_CODE, value.to_bytes(length, "big", signed=True))


def _prepare(value: Value, depth: int) -> Value:
    """Check `value` against the rules and return it with big ints as extensions."""
    if depth > NESTING_DEPTH_MAX:
        raise DecodeError(f"value nested deeper than {NESTING_DEPTH_MAX} levels")
    if value is None or isinstance(value, bool | str | bytes):
        return value
    if isinstance(value, int):
        if value.bit_length() > BIG_INT_BITS_MAX:
            raise DecodeError(f"integer wider than {BIG_INT_BITS_MAX} bits")
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
        return _big_int_to_ext(value)
    if isinstance(value, list | tuple):
        return [_prepare(item, depth + 1) for item in value]
    if isinstance(value, dict):
        for key in value:
            kind = type(key)
            if kind is str or kind is bytes:
                continue
            if not isinstance(key, str | bytes | int):
                raise DecodeError(f"map key of type {kind.__name__} is not allowed")
            if isinstance(key, int) and not _INT64_MIN <= key <= _UINT64_MAX:
                raise DecodeError("map keys must fit 64 bits")
        if value and depth + 1 > NESTING_DEPTH_MAX:  # its items are one level down
            raise DecodeError(f"value nested deeper than {NESTING_DEPTH_MAX} levels")
        # Canonical order: keys sorted by their own encoded bytes (mixed key types included).
        return {
            key: item if _is_plain_scalar(item) else _prepare(item, depth + 1)
            for key in sorted(value, key=_encoder.encode)
            for item in (value[key],)
        }
    raise DecodeError(f"values of type {type(value).__name__} are not allowed")


def validate_value(value: Value) -> None:
    """Raise `DecodeError` unless `value` may be encoded as a dynamic value."""
    _prepare(value, 0)


def _is_plain_scalar(value: Value) -> bool:
    """True for a value msgpack encodes natively and canonically: no walk, no extension."""
    kind = type(value)
    if kind is str or kind is bytes or kind is bool or value is None:
        return True
    return kind is int and _INT64_MIN <= value <= _UINT64_MAX


def encode_value(value: Value) -> bytes:
    """The canonical bytes of a dynamic value; raises `DecodeError` for disallowed values."""
    if _is_plain_scalar(value):  # most stored values: the same bytes, without the walk
        return _encoder.encode(value)
    return _encoder.encode(_prepare(value, 0))


def decode_value(data: bytes, *, max_bytes: int = ENCODED_BYTES_MAX) -> Value:
    """Decode canonical bytes of a dynamic value, or raise `DecodeError`."""
    if len(data) > max_bytes:
        raise DecodeError(f"value of {len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        value = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"malformed value: {exc}") from None
    except UnicodeDecodeError:  # msgspec lets a string that is not UTF-8 through as this
        raise DecodeError("malformed value: a string is not valid UTF-8") from None
    except RecursionError:
        raise DecodeError("value nested too deep") from None
    except TypeError as exc:  # an unhashable map key
        raise DecodeError(f"malformed value: {exc}") from None
    if _is_plain_scalar(value):  # no float inside, and msgpack's own bytes are canonical
        if _encoder.encode(value) != data:
            raise DecodeError("value is not in canonical form")
        return value
    if _contains_float(value, 0):
        raise DecodeError("floats are not allowed")
    if encode_value(value) != bytes(data):
        raise DecodeError("value is not in canonical form")
    return value


def _contains_float(value: Value, depth: int) -> bool:
    if isinstance(value, float):
        return True
    if depth > NESTING_DEPTH_MAX:
        raise DecodeError(f"value nested deeper than {NESTING_DEPTH_MAX} levels")
    if isinstance(value, list):
        return any(_contains_float(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return any(isinstance(k, float) or _contains_float(v, depth + 1) for k, v in value.items())
    return False
