"""The builtins and value methods a contract may call, each charging for the data it touches.

`build_builtins(rt)` returns the names a contract's globals receive; `call_method` and
`get_attribute` implement attribute access through a per-type allow-list. Methods that copy,
scan or build (join, split, replace, count, index, extend, keys, items, ...) check sizes and
charge by length before the C code runs. `dict.keys/values/items` return lists (snapshots),
not live views, so that their cost is paid once and `in` on them is priced like any list.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final

from taihang.execution.contracts import gas
from taihang.execution.contracts.errors import InvalidValue, Revert
from taihang.execution.contracts.runtime import (
    Runtime,
    Value,
    check_chars,
    check_int,
    check_items,
    check_key,
    size_of,
)

Method = Callable[..., Value]


class TypeBuiltin:
    """A value type's builtin (`int`, `str`, ...): callable, and accepted by `isinstance`."""

    __slots__ = ("convert", "py_type")

    def __init__(self, py_type: type, convert: Callable[..., Value]) -> None:
        self.py_type = py_type
        self.convert = convert

    def __call__(self, *args: Value, **kwargs: Value) -> Value:
        return self.convert(*args, **kwargs)


def _sized(rt: Runtime, value: Value) -> Value:
    """`value` as something C code may iterate, charged by its length."""
    kind = type(value)
    if kind not in (list, tuple, dict, str, bytes, range):
        raise TypeError
    rt.meter.charge(gas.BUILTIN + len(value))
    return value


def _to_list(rt: Runtime, value: Value = ()) -> list[Value]:
    check_items(size_of(_sized(rt, value)))
    return list(value)


def _to_tuple(rt: Runtime, value: Value = ()) -> tuple[Value, ...]:
    check_items(size_of(_sized(rt, value)))
    return tuple(value)


def _to_dict(rt: Runtime, value: Value = None) -> dict[Value, Value]:
    if value is None:
        rt.meter.charge(gas.BUILTIN)
        return {}
    pairs = list(value.items()) if type(value) is dict else _to_list(rt, value)
    check_items(len(pairs))
    rt.meter.charge(gas.BUILTIN + 2 * len(pairs))
    result: dict[Value, Value] = {}
    for pair in pairs:
        key, item = pair
        result[check_key(key)] = item
    return result


def _to_int(rt: Runtime, value: Value = 0, base: int = 10) -> int:
    rt.meter.charge(gas.BUILTIN)
    if type(value) is str:
        if len(value) > gas.INT_PARSE_CHARS_MAX:
            raise ValueError
        rt.meter.charge(gas.for_bytes(len(value)))
        return check_int(int(value, base))
    if type(value) not in (int, bool):
        raise TypeError
    return int(value)


def _to_str(rt: Runtime, value: Value = "") -> str:
    kind = type(value)
    if kind is str:
        rt.meter.charge(gas.BUILTIN)
        return str(value)
    if kind not in (int, bool) and value is not None:
        raise TypeError  # containers and bytes would expose repr formatting
    rt.meter.charge(gas.BUILTIN + (value.bit_length() >> 2 if kind is int else 0))
    return str(value)


def _to_bool(rt: Runtime, value: Value = False) -> bool:
    rt.meter.charge(gas.BUILTIN)
    return bool(value)


def _to_bytes(rt: Runtime, value: Value = b"") -> bytes:
    if type(value) is bytes:
        rt.meter.charge(gas.BUILTIN)
        return value
    if type(value) not in (list, tuple):
        raise TypeError  # bytes(n) would allocate n bytes from one small int
    check_chars(len(value))
    rt.meter.charge(gas.BUILTIN + len(value))
    return bytes(value)


def _len(rt: Runtime, value: Value) -> int:
    rt.meter.charge(gas.BUILTIN)
    if type(value) not in (list, tuple, dict, str, bytes, range):
        raise TypeError
    return len(value)


def _range(rt: Runtime, *args: Value) -> range:
    rt.meter.charge(gas.BUILTIN)
    for arg in args:
        if type(arg) not in (int, bool):
            raise TypeError
    result = range(*args)
    check_items(len(result))
    return result


def _min(rt: Runtime, *args: Value, key: Value = None) -> Value:
    values = args[0] if len(args) == 1 else args
    rt.meter.charge(gas.BUILTIN + rt.measure(_sized(rt, values)))
    return min(values, key=key) if key is not None else min(values)


def _max(rt: Runtime, *args: Value, key: Value = None) -> Value:
    values = args[0] if len(args) == 1 else args
    rt.meter.charge(gas.BUILTIN + rt.measure(_sized(rt, values)))
    return max(values, key=key) if key is not None else max(values)


def _sum(rt: Runtime, values: Value, start: int = 0) -> int:
    total = _to_int(rt, start)
    for value in _sized(rt, values):
        total = check_int(total + _to_int(rt, value))
    return total


def _sorted(rt: Runtime, values: Value, *, key: Value = None, reverse: bool = False) -> list[Value]:
    items = _to_list(rt, values)
    rounds = max(1, (len(items) - 1).bit_length())
    rt.meter.charge(gas.for_sort(len(items)) + rt.measure(items) * rounds)
    return sorted(items, key=key, reverse=bool(reverse))


def _any(rt: Runtime, values: Value) -> bool:
    return any(_sized(rt, values))


def _all(rt: Runtime, values: Value) -> bool:
    return all(_sized(rt, values))


def _zip(rt: Runtime, *iterables: Value) -> list[tuple[Value, ...]]:
    count = min((len(_sized(rt, it)) for it in iterables), default=0)
    check_items(count)  # a str or bytes yields one item per character
    rt.meter.charge(count * (len(iterables) + 1 + gas.CONTAINER))
    return list(zip(*iterables, strict=False))


def _enumerate(rt: Runtime, values: Value, start: int = 0) -> list[tuple[int, Value]]:
    items = _sized(rt, values)
    check_items(len(items))
    rt.meter.charge((3 + gas.CONTAINER) * len(items))
    return list(enumerate(items, _to_int(rt, start)))


def _reversed(rt: Runtime, values: Value) -> list[Value]:
    if type(values) is dict:
        raise TypeError
    return list(reversed(_to_list(rt, values)))


def _abs(rt: Runtime, value: Value) -> int:
    rt.meter.charge(gas.BUILTIN)
    if type(value) not in (int, bool):
        raise TypeError
    return int(abs(value))


def _isinstance(rt: Runtime, value: Value, types: Value) -> bool:
    rt.meter.charge(gas.BUILTIN)
    candidates = types if type(types) is tuple else (types,)
    if not all(type(t) is TypeBuiltin for t in candidates):
        raise TypeError
    return isinstance(value, tuple(t.py_type for t in candidates))


def _require(rt: Runtime, condition: Value, message: Value = "requirement failed") -> None:
    rt.meter.charge(gas.BUILTIN)
    if not condition:
        raise Revert(_message(message))


def _revert(rt: Runtime, message: Value = "reverted") -> None:
    raise Revert(_message(message))


def _message(message: Value) -> str:
    if type(message) is not str or len(message) > 1024:
        raise InvalidValue("revert message")
    return message


_FUNCTIONS: Final[dict[str, Method]] = {
    "len": _len,
    "range": _range,
    "min": _min,
    "max": _max,
    "sum": _sum,
    "sorted": _sorted,
    "any": _any,
    "all": _all,
    "zip": _zip,
    "enumerate": _enumerate,
    "reversed": _reversed,
    "abs": _abs,
    "isinstance": _isinstance,
    "require": _require,
    "revert": _revert,
}
_TYPES: Final[dict[str, tuple[type, Method]]] = {
    "int": (int, _to_int),
    "str": (str, _to_str),
    "bool": (bool, _to_bool),
    "bytes": (bytes, _to_bytes),
    "list": (list, _to_list),
    "dict": (dict, _to_dict),
    "tuple": (tuple, _to_tuple),
}


def build_builtins(rt: Runtime) -> dict[str, Value]:
    """The builtin names of one call's globals, bound to its runtime."""
    names: dict[str, Value] = {
        name: functools.partial(function, rt) for name, function in _FUNCTIONS.items()
    }
    for name, (py_type, convert) in _TYPES.items():
        names[name] = TypeBuiltin(py_type, functools.partial(convert, rt))
    return names


# -- methods of values -----------------------------------------------------------------------


def _dict_get(rt: Runtime, d: dict[Value, Value], key: Value, default: Value = None) -> Value:
    rt.meter.charge(gas.BUILTIN + rt.measure(check_key(key)))
    return d.get(key, default)


def _dict_keys(rt: Runtime, d: dict[Value, Value]) -> list[Value]:
    rt.meter.charge(gas.BUILTIN + len(d))
    return list(d)


def _dict_values(rt: Runtime, d: dict[Value, Value]) -> list[Value]:
    rt.meter.charge(gas.BUILTIN + len(d))
    return list(d.values())


def _dict_items(rt: Runtime, d: dict[Value, Value]) -> list[tuple[Value, Value]]:
    rt.meter.charge(gas.BUILTIN + 8 * len(d))  # a slot and a two-item tuple per entry
    return list(d.items())


def _dict_pop(rt: Runtime, d: dict[Value, Value], key: Value, *default: Value) -> Value:
    rt.meter.charge(gas.BUILTIN + rt.measure(check_key(key)))
    return d.pop(key, *default)


def _dict_setdefault(
    rt: Runtime, d: dict[Value, Value], key: Value, default: Value = None
) -> Value:
    rt.meter.charge(gas.BUILTIN + 1 + rt.measure(check_key(key)))
    if key not in d:
        check_items(len(d) + 1)
    return d.setdefault(key, default)


def _list_append(rt: Runtime, items: list[Value], value: Value) -> None:
    check_items(len(items) + 1)
    rt.meter.charge(gas.BUILTIN + 1)
    items.append(value)


def _list_extend(rt: Runtime, items: list[Value], values: Value) -> None:
    added = _sized(rt, values)
    check_items(len(items) + len(added))
    rt.meter.charge(len(added))
    items.extend(added)


def _list_pop(rt: Runtime, items: list[Value], index: int = -1) -> Value:
    if type(index) is not int:
        raise TypeError
    position = index + len(items) if index < 0 else index
    rt.meter.charge(gas.BUILTIN + (max(len(items) - position, 0) >> 3))  # the tail moves
    return items.pop(index)


def _list_insert(rt: Runtime, items: list[Value], index: int, value: Value) -> None:
    check_items(len(items) + 1)
    rt.meter.charge(gas.BUILTIN + 1 + (len(items) >> 3))
    items.insert(index, value)


def _list_index(rt: Runtime, items: list[Value], value: Value, *bounds: int) -> int:
    rt.meter.charge(gas.BUILTIN + rt.measure(items) + rt.measure(value))
    return items.index(value, *bounds)


def _list_count(rt: Runtime, items: list[Value], value: Value) -> int:
    rt.meter.charge(gas.BUILTIN + rt.measure(items) + len(items) * rt.measure(value))
    return items.count(value)


def _text_scan(rt: Runtime, *texts: Value) -> None:
    """Charge for C code reading `texts` (str or bytes, or tuples of them)."""
    size = 0
    for text in texts:
        if type(text) is tuple:
            size += sum(len(part) for part in text if type(part) in (str, bytes))
        elif type(text) in (str, bytes):
            size += len(text)
    rt.meter.charge(gas.BUILTIN + gas.for_bytes(size))


def _str_lower(rt: Runtime, s: str) -> str:
    _text_scan(rt, s, s, s)  # case mapping may triple a length (the "ffi" ligature)
    result = s.lower()
    check_chars(len(result))
    return result


def _str_upper(rt: Runtime, s: str) -> str:
    _text_scan(rt, s, s, s)  # case mapping may triple a length (the "ffi" ligature)
    result = s.upper()
    check_chars(len(result))
    return result


def _str_startswith(rt: Runtime, s: str, prefix: Value) -> bool:
    _text_scan(rt, prefix)
    return s.startswith(prefix)


def _str_endswith(rt: Runtime, s: str, suffix: Value) -> bool:
    _text_scan(rt, suffix)
    return s.endswith(suffix)


def _str_split(rt: Runtime, s: str, sep: Value = None, maxsplit: int = -1) -> list[str]:
    _text_scan(rt, s, sep)
    # Up to one piece per two characters, each a new str object (~56 bytes) and a list slot.
    rt.meter.charge(4 * (len(s) + 1))
    pieces = s.split(sep, maxsplit)
    check_items(len(pieces))
    return pieces


def _str_join(rt: Runtime, sep: str, parts: Value) -> str:
    pieces = _to_list(rt, parts)
    total = len(sep) * max(len(pieces) - 1, 0)
    for piece in pieces:
        if type(piece) is not str:
            raise TypeError
        total += len(piece)
    check_chars(total)
    rt.meter.charge(gas.for_bytes(total))
    return sep.join(pieces)


def _str_replace(rt: Runtime, s: str, old: Value, new: Value, count: int = -1) -> str:
    if type(old) is not str or type(new) is not str or type(count) is not int:
        raise TypeError
    _text_scan(rt, s, old)
    found = s.count(old)
    if count >= 0:
        found = min(found, count)
    size = len(s) + found * (len(new) - len(old))
    check_chars(size)
    rt.meter.charge(gas.for_bytes(size))
    return s.replace(old, new, count)


def _str_strip(rt: Runtime, s: str, chars: Value = None) -> str:
    _text_scan(rt, s, chars)
    if type(chars) is str:  # each character stripped is looked up in all of `chars`
        rt.meter.charge(gas.for_bytes(len(s) * len(chars)))
    return s.strip(chars)


def _str_find(rt: Runtime, s: str, sub: Value, *bounds: int) -> int:
    _text_scan(rt, s, sub)
    return s.find(sub, *bounds)


def _bytes_hex(rt: Runtime, b: bytes) -> str:
    check_chars(2 * len(b))
    _text_scan(rt, b, b, b)
    return b.hex()


METHODS: Final[dict[type, dict[str, Method]]] = {
    dict: {
        "get": _dict_get,
        "keys": _dict_keys,
        "values": _dict_values,
        "items": _dict_items,
        "pop": _dict_pop,
        "setdefault": _dict_setdefault,
    },
    list: {
        "append": _list_append,
        "extend": _list_extend,
        "pop": _list_pop,
        "insert": _list_insert,
        "index": _list_index,
        "count": _list_count,
    },
    str: {
        "lower": _str_lower,
        "upper": _str_upper,
        "startswith": _str_startswith,
        "endswith": _str_endswith,
        "split": _str_split,
        "join": _str_join,
        "replace": _str_replace,
        "strip": _str_strip,
        "find": _str_find,
    },
    bytes: {"hex": _bytes_hex},
}


class HostObject:
    """Base of the objects a contract reaches through `ctx`; `ATTRIBUTES` lists what it sees.

    Host objects charge gas inside their own methods; attribute access is checked here.
    """

    __slots__ = ()
    ATTRIBUTES: frozenset[str] = frozenset()


def get_attribute(rt: Runtime, obj: Value, name: str) -> Value:
    """`obj.name` for contract code: host attributes, or a value method bound to `obj`."""
    if isinstance(obj, HostObject):
        if name not in type(obj).ATTRIBUTES:
            raise AttributeError
        rt.meter.charge(gas.OP)
        return getattr(obj, name)
    method = METHODS.get(type(obj), {}).get(name)
    if method is None:
        raise AttributeError
    rt.meter.charge(gas.BOUND_METHOD)  # a new object that a loop could keep by the thousand
    return functools.partial(method, rt, obj)


def call_method(rt: Runtime, obj: Value, name: str, /, *args: Value, **kwargs: Value) -> Value:
    """`obj.name(...)` for contract code, without building a bound object for value methods."""
    if isinstance(obj, HostObject):
        if name not in type(obj).ATTRIBUTES:
            raise AttributeError
        return getattr(obj, name)(*args, **kwargs)
    method = METHODS.get(type(obj), {}).get(name)
    if method is None:
        raise AttributeError
    return method(rt, obj, *args, **kwargs)
