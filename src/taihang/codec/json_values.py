"""Dynamic values in JSON (REST wire form): bytes are written `{"$bytes": "<hex>"}`.

JSON numbers become ints (floats are refused), strings, booleans, null, lists and objects map
directly. Map keys in JSON are always strings, so dicts with non-string keys are written as
`{"$map": [[key, value], ...]}`.
"""

from __future__ import annotations

from typing import Any

from taihang.codec.values import Value, validate_value
from taihang.constants import NESTING_DEPTH_MAX
from taihang.errors import DecodeError

_MARKERS = ({"$bytes"}, {"$map"})


def value_to_json(value: Value) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, list | tuple):
        return [value_to_json(v) for v in value]
    if isinstance(value, dict):
        # A str-keyed dict whose only key is "$bytes" or "$map" would read back as bytes or a
        # map, so it takes the `$map` form too.
        if all(isinstance(k, str) for k in value) and set(value) not in _MARKERS:
            return {k: value_to_json(v) for k, v in value.items()}
        return {"$map": [[value_to_json(k), value_to_json(v)] for k, v in value.items()]}
    return value


def value_from_json(data: Any, depth: int = 0) -> Value:
    """Convert parsed JSON into a dynamic value, or raise `DecodeError` saying why not."""
    if depth > NESTING_DEPTH_MAX:
        raise DecodeError(f"value nested deeper than {NESTING_DEPTH_MAX} levels")
    if isinstance(data, float):
        raise DecodeError("floats are not allowed; use integers (fixed point)")
    if isinstance(data, list):
        return [value_from_json(v, depth + 1) for v in data]
    if isinstance(data, dict):
        if set(data) == {"$bytes"}:
            try:
                return bytes.fromhex(data["$bytes"])
            except (TypeError, ValueError):
                raise DecodeError("$bytes must be a hex string") from None
        if set(data) == {"$map"}:
            pairs = data["$map"]
            if not isinstance(pairs, list) or not all(
                isinstance(p, list) and len(p) == 2 for p in pairs
            ):
                raise DecodeError("$map must be a list of [key, value] pairs")
            result: dict[Any, Value] = {}
            for k, v in pairs:
                key = value_from_json(k, depth + 1)
                if not isinstance(key, str | bytes | int):  # also keeps unhashable keys out
                    raise DecodeError(f"map key of type {type(key).__name__} is not allowed")
                result[key] = value_from_json(v, depth + 1)
            return result
        return {k: value_from_json(v, depth + 1) for k, v in data.items()}
    if data is None or isinstance(data, bool | int | str):
        if isinstance(data, int):
            validate_value(data)
        return data
    raise DecodeError(f"unsupported JSON value of type {type(data).__name__}")
