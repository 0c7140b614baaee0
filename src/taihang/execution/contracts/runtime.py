"""The runtime helpers that the rewritten contract code calls (see `rewriter`).

One `Runtime` serves one contract call: it owns the gas meter, the call depth and the events.
Every helper checks sizes and charges gas *before* the C-level work it guards, so
`"x" * 10**12` and `10**10**10` are refused without being computed. Operators accept the
contract value types (int, bool, str, bytes, list, tuple, dict, None); other combinations fall
through to CPython, which raises a `TypeError` that the caller normalises to its class name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Any, Final

from taihang.execution.contracts import gas
from taihang.execution.contracts.errors import ForbiddenOperation, InvalidValue, LimitExceeded
from taihang.execution.contracts.gas import Meter

Value = Any
DICT_INT_KEY_MAX: Final = 2**61 - 1  # |k| below the hash modulus: no crafted collisions
_SEQUENCES: Final = (list, tuple)
_STRINGS: Final = (str, bytes)


def check_int(value: int) -> int:
    if value.bit_length() > gas.INT_BITS_MAX:
        raise LimitExceeded("int bits")
    return value


def check_items(count: int) -> None:
    if count > gas.SEQUENCE_ITEMS_MAX:
        raise LimitExceeded("sequence items")


def check_chars(count: int) -> None:
    if count > gas.STRING_BYTES_MAX:
        raise LimitExceeded("string bytes")


def check_key(key: Value) -> Value:
    """Dict keys: str, bytes, bool, or int with |k| < 2**61 - 1 (spec: Values)."""
    kind = type(key)
    if kind is str or kind is bytes or kind is bool:
        return key
    if kind is int and -DICT_INT_KEY_MAX < key < DICT_INT_KEY_MAX:
        return key
    raise InvalidValue("dict key")


def size_of(value: Value) -> int:
    """The number of elements or characters of a sized value, else 0."""
    kind = type(value)
    if kind in (list, tuple, dict, str, bytes, range):
        return len(value)
    return 0


class Runtime:
    """Per-call state (meter, depth, view flag, events) and the helpers bound to it."""

    __slots__ = ("depth", "events", "meter", "view")

    def __init__(self, meter: Meter, *, depth: int = 0, view: bool = False) -> None:
        self.meter = meter
        self.depth = depth
        self.view = view
        self.events: list[Any] = []

    def reset(self, meter: Meter, *, depth: int, view: bool) -> None:
        """Make this runtime as new for another call (the engine recycles runtimes)."""
        self.meter = meter
        self.depth = depth
        self.view = view
        self.events = []

    # -- metering points -------------------------------------------------------------------

    def enter(self, cost: int = gas.CALL) -> None:
        self.depth += 1
        if self.depth > gas.CALL_DEPTH_MAX:
            raise LimitExceeded("call depth")
        self.meter.charge(cost)

    def leave(self) -> None:
        self.depth -= 1

    def tick(self, cost: int = gas.LOOP) -> None:
        self.meter.charge(cost)

    def each(self, iterable: Iterable[Value], cost: int = gas.LOOP) -> Iterator[Value]:
        return self._draw(self._iterable(iterable), cost)

    def item(self, iterable: Iterable[Value], cost: int = gas.ITEM) -> Iterator[Value]:
        return self._draw(self._iterable(iterable), cost)

    def _iterable(self, value: Value) -> Iterable[Value]:
        kind = type(value)
        if kind is dict:
            return self.charged_copy(value)  # a snapshot: mutation while looping is safe
        if kind in (list, tuple, str, bytes, range):
            return value  # type: ignore[no-any-return]
        raise TypeError

    def charged_copy(self, value: dict[Value, Value]) -> list[Value]:
        self.meter.charge(gas.OP + len(value))
        return list(value)

    def _draw(self, iterable: Iterable[Value], price: int) -> Iterator[Value]:
        charge = self.meter.charge
        for value in iterable:
            charge(price)
            yield value

    # -- measuring ---------------------------------------------------------------------------

    def measure(self, value: Value) -> int:
        """The gas for C code walking all of `value` (items, characters, int limbs).

        Walks iteratively, refuses nesting beyond the limit and stops with `OutOfGas` as soon
        as the cost passes the remaining gas, so measuring is itself bounded.
        """
        kind = type(value)
        if kind is int or kind is bool or value is None:  # the common case, without a walk
            return value.bit_length() >> 6 if kind is int else 0
        if kind is str or kind is bytes:
            return gas.for_bytes(len(value))
        if kind is not list and kind is not tuple and kind is not dict:
            return 0
        return self._measure_containers(value)

    def _measure_containers(self, value: Value) -> int:
        # Each container costs its length; each str or bytes inside costs its bytes; ints,
        # bools and None inside cost nothing more. A dict's entries count as (key, value)
        # pairs one level down: 1 for the entry and 2 for the pair.
        budget = self.meter.remaining
        bytes_per_gas = gas.BYTES_PER_GAS
        cost = 0
        stack: list[tuple[Value, int]] = [(value, 0)]
        while stack:
            current, depth = stack.pop()
            if depth >= gas.NESTING_MAX:
                raise LimitExceeded("nesting depth")
            if type(current) is dict:
                if current and depth + 1 >= gas.NESTING_MAX:
                    raise LimitExceeded("nesting depth")
                cost += 3 * len(current)
                items: Iterable[Value] = chain.from_iterable(current.items())
                child = depth + 2
            else:
                cost += len(current)
                items, child = current, depth + 1
            for item in items:
                kind = type(item)
                if kind is str or kind is bytes:
                    cost += (len(item) + bytes_per_gas - 1) // bytes_per_gas
                elif kind is list or kind is tuple or kind is dict:
                    stack.append((item, child))
            if cost > budget:
                self.meter.charge(cost)
        return cost

    # -- operators -------------------------------------------------------------------------

    def Add(self, a: Value, b: Value) -> Value:  # noqa: N802 -- named after ast.Add
        kind = type(a)
        if kind is str and type(b) is str:  # the common case first: building storage keys
            size = len(a) + len(b)
            if size > gas.STRING_BYTES_MAX:
                raise LimitExceeded("string bytes")
            self.meter.charge(gas.OP + (size + gas.BYTES_PER_GAS - 1) // gas.BYTES_PER_GAS)
            return a + b
        if kind in (int, bool) and type(b) in (int, bool):
            self.meter.charge(gas.OP)
            return check_int(a + b)
        if kind in _STRINGS and type(b) is kind:
            check_chars(len(a) + len(b))
            self.meter.charge(gas.OP + gas.for_bytes(len(a) + len(b)))
        elif kind in _SEQUENCES and type(b) is kind:
            check_items(len(a) + len(b))
            self.meter.charge(gas.OP + len(a) + len(b))
        return a + b

    def Sub(self, a: Value, b: Value) -> Value:  # noqa: N802
        self.meter.charge(gas.OP)
        return check_int(_int(a) - _int(b))

    def Mult(self, a: Value, b: Value) -> Value:  # noqa: N802
        if type(a) in (int, bool) and type(b) in (int, bool):
            if a and b and a.bit_length() + b.bit_length() - 1 > gas.INT_BITS_MAX:
                raise LimitExceeded("int bits")
            self.meter.charge(gas.OP + gas.for_int_product(a, b))
            return check_int(a * b)
        sequence, count = (b, a) if type(a) in (int, bool) else (a, b)
        if type(count) not in (int, bool):
            raise TypeError
        kind = type(sequence)
        size = len(sequence) * max(count, 0) if kind in (str, bytes, list, tuple) else 0
        if kind in _STRINGS:
            check_chars(size)
            self.meter.charge(gas.OP + gas.for_bytes(size))
        elif kind in _SEQUENCES:
            check_items(size)
            self.meter.charge(gas.OP + size)
        return sequence * count

    def FloorDiv(self, a: Value, b: Value) -> Value:  # noqa: N802
        self.meter.charge(gas.OP + gas.for_int_product(_int(a), _int(b)))
        return check_int(a // b)

    def Mod(self, a: Value, b: Value) -> Value:  # noqa: N802
        if type(a) in _STRINGS:
            raise ForbiddenOperation("% formatting")
        self.meter.charge(gas.OP + gas.for_int_product(_int(a), _int(b)))
        return check_int(a % b)

    def Pow(self, a: Value, b: Value) -> Value:  # noqa: N802
        base, exponent = _int(a), _int(b)
        if exponent < 0:
            raise ForbiddenOperation("negative exponent")
        if base in (0, 1, -1) or exponent == 0:
            self.meter.charge(gas.OP)
            return check_int(base**exponent)
        if (base.bit_length() - 1) * exponent + 1 > gas.INT_BITS_MAX:
            raise LimitExceeded("int bits")
        self.meter.charge(gas.OP + exponent.bit_length() * gas.for_int_product(base, base) * 8)
        return check_int(base**exponent)

    def LShift(self, a: Value, b: Value) -> Value:  # noqa: N802
        value, shift = _int(a), _int(b)
        if shift < 0:
            raise ValueError
        if value and value.bit_length() + shift > gas.INT_BITS_MAX:
            raise LimitExceeded("int bits")
        self.meter.charge(gas.OP)
        return value << shift

    def RShift(self, a: Value, b: Value) -> Value:  # noqa: N802
        self.meter.charge(gas.OP)
        return _int(a) >> _int(b)

    def BitAnd(self, a: Value, b: Value) -> Value:  # noqa: N802
        self.meter.charge(gas.OP)
        return _int(a) & _int(b)

    def BitOr(self, a: Value, b: Value) -> Value:  # noqa: N802
        self.meter.charge(gas.OP)
        return _int(a) | _int(b)

    def BitXor(self, a: Value, b: Value) -> Value:  # noqa: N802
        self.meter.charge(gas.OP)
        return _int(a) ^ _int(b)

    # -- comparisons -----------------------------------------------------------------------

    def _order_cost(self, a: Value, b: Value) -> None:
        if type(a) is int and type(b) is int:  # at most 512 bits: one OP
            self.meter.charge(gas.OP)
        else:
            self.meter.charge(gas.OP + self.measure(a) + self.measure(b))

    def _compare_cost(self, a: Value, b: Value) -> None:
        kind = type(a)
        if kind in (list, tuple, dict) and type(b) is kind and len(a) != len(b):
            self.meter.charge(gas.OP)  # CPython answers == on different lengths at once
            return
        self.meter.charge(gas.OP + self.measure(a) + self.measure(b))

    def Eq(self, a: Value, b: Value) -> bool:  # noqa: N802
        self._compare_cost(a, b)
        return bool(a == b)

    def NotEq(self, a: Value, b: Value) -> bool:  # noqa: N802
        self._compare_cost(a, b)
        return bool(a != b)

    def Lt(self, a: Value, b: Value) -> bool:  # noqa: N802
        self._order_cost(a, b)
        return bool(a < b)

    def LtE(self, a: Value, b: Value) -> bool:  # noqa: N802
        self._order_cost(a, b)
        return bool(a <= b)

    def Gt(self, a: Value, b: Value) -> bool:  # noqa: N802
        self._order_cost(a, b)
        return bool(a > b)

    def GtE(self, a: Value, b: Value) -> bool:  # noqa: N802
        self._order_cost(a, b)
        return bool(a >= b)

    def In(self, a: Value, b: Value) -> bool:  # noqa: N802
        if type(b) is dict:
            self.meter.charge(gas.OP + self.measure(check_key(a)))
        elif type(b) is range and type(a) is not int and type(a) is not bool:
            self.meter.charge(gas.OP + len(b))  # not an int: CPython compares every element
        else:
            self.meter.charge(gas.OP + self.measure(a) + self.measure(b))
        return a in b

    def NotIn(self, a: Value, b: Value) -> bool:  # noqa: N802
        return not self.In(a, b)

    # -- items -----------------------------------------------------------------------------

    def getitem(self, container: Value, index: Value) -> Value:
        if type(container) is dict:
            self.meter.charge(gas.OP + self.measure(check_key(index)))
        else:
            self.meter.charge(gas.OP)
        return container[index]

    def slice(self, container: Value, lower: Value, upper: Value, step: Value) -> Value:
        if type(container) not in (list, tuple, str, bytes):
            raise TypeError
        selected = slice(lower, upper, step)
        count = len(range(*selected.indices(len(container))))
        if type(container) in _STRINGS:
            self.meter.charge(gas.OP + gas.for_bytes(count))
        else:
            self.meter.charge(gas.OP + count)
        return container[selected]

    def setitem(self, container: Value, index: Value, value: Value) -> None:
        if type(container) is dict:
            key = check_key(index)
            if len(container) >= gas.SEQUENCE_ITEMS_MAX and key not in container:
                raise LimitExceeded("sequence items")
            self.meter.charge(gas.OP + gas.DICT_ENTRY + self.measure(key))
        elif type(container) is list:
            self.meter.charge(gas.OP)
        else:
            raise TypeError
        container[index] = value

    def augitem(
        self, container: Value, index: Value, op: Callable[[Value, Value], Value], value: Value
    ) -> None:
        self.setitem(container, index, op(self.getitem(container, index), value))

    def delitem(self, container: Value, index: Value) -> None:
        if type(container) is dict:
            self.meter.charge(gas.OP + self.measure(check_key(index)))
        elif type(container) is list:
            self.meter.charge(gas.OP + (len(container) >> 3))  # the tail moves down
        else:
            raise TypeError
        del container[index]

    # -- building --------------------------------------------------------------------------

    def built(self, count: int, value: Value) -> Value:
        """A list or tuple display: its size is bounded by the source, priced after."""
        self.meter.charge(gas.OP + gas.CONTAINER + count)
        return value

    def dict(self, keys: list[Value], values: list[Value]) -> dict[Value, Value]:
        self.meter.charge(gas.OP + gas.DICT + gas.DICT_ENTRY * len(keys))
        for key in keys:
            check_key(key)
        return dict(zip(keys, values, strict=True))

    def key(self, key: Value) -> Value:
        return check_key(key)

    def comp(self, value: Value) -> Value:
        """A comprehension's result: items were charged as drawn; the object and the limit
        are checked here (nested `for`s can yield more items than any one input holds)."""
        if type(value) is dict:
            self.meter.charge(gas.DICT + gas.DICT_ENTRY * len(value))
        else:
            self.meter.charge(gas.CONTAINER + len(value))
        check_items(len(value))
        return value


def _int(value: Value) -> int:
    if type(value) is not int and type(value) is not bool:
        raise TypeError
    return int(value)
