"""Canonical encoding of every signed or hashed value.

Theory of operation: every value that is signed, hashed or stored is a frozen, array-like
msgspec Struct (`Canonical`) encoded as MessagePack with deterministic map order. There is
exactly one byte string per value: `decode` re-encodes what it decoded and refuses the input
unless the bytes are identical, so trailing bytes, non-minimal integers, unsorted maps and
alternative forms never enter the system. Dynamic values (contract arguments, return values,
event data) go through `encode_value`/`decode_value`, which add the rules a schema cannot
express: no floats, bounded nesting, and a canonical extension for integers beyond 64 bits.
"""

from taihang.codec.canonical import (
    Canonical,
    decode,
    encode,
)
from taihang.codec.json_values import value_from_json, value_to_json
from taihang.codec.values import (
    BIG_INT_EXT_CODE,
    Value,
    decode_value,
    encode_value,
    validate_value,
)

__all__ = [
    "BIG_INT_EXT_CODE",
    "Canonical",
    "Value",
    "decode",
    "decode_value",
    "encode",
    "encode_value",
    "validate_value",
    "value_from_json",
    "value_to_json",
]
