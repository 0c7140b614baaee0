"""Canonical MessagePack for typed values: decode checks `encode(decode(b)) == b`."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from taihang.constants import ENCODED_BYTES_MAX
from taihang.errors import DecodeError

T = TypeVar("T")


class Canonical(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """Base of every signed, hashed or stored value: a fixed-order array on the wire."""


_encoder = msgspec.msgpack.Encoder(order="deterministic")
_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


def encode(value: object) -> bytes:
    """The canonical bytes of `value` (a Canonical struct or a plain msgpack-able value)."""
    return _encoder.encode(value)


def _decoder_for(type_: Any) -> msgspec.msgpack.Decoder[Any]:
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = msgspec.msgpack.Decoder(type_)
        _decoders[type_] = decoder
    return decoder


def decode(data: bytes, type_: type[T], *, max_bytes: int = ENCODED_BYTES_MAX) -> T:
    """Decode canonical bytes into `type_`, or raise `DecodeError` saying what was wrong."""
    name = getattr(type_, "__name__", str(type_))
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"{name}: expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise DecodeError(f"{name}: {len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        value: T = _decoder_for(type_).decode(data)
    except msgspec.ValidationError as exc:
        raise DecodeError(f"{name}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise DecodeError(f"{name}: {exc}") from None
    except UnicodeDecodeError:  # msgspec lets a string that is not UTF-8 through as this
        raise DecodeError(f"{name}: a string is not valid UTF-8") from None
    except RecursionError:
        raise DecodeError(f"{name}: nesting too deep") from None
    if _encoder.encode(value) != bytes(data):
        raise DecodeError(f"{name}: not in canonical form")
    return value
