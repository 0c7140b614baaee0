"""The contract gas table and limits (a protocol constant: changing any value forks the chain).

Gas comes from the AST and from data sizes, never from bytecode, so it is the same on every
CPython version. The compiler inserts charges at function entry (`CALL`), at every loop
iteration (`LOOP`) and comprehension item (`ITEM`); every operation routed through a runtime
helper costs `OP` plus its size-dependent part; every builtin or method call costs `BUILTIN`
plus the data it touches. Sizes are priced as:

- `items` : elements of a list, tuple or dict that C code walks, copies or compares: 1 each
  (a pointer is 8 bytes, so this is also the allocation price of a list slot);
- `bytes` : characters or bytes of a str/bytes that C code copies, scans or compares, and
  every byte allocated: 1 gas per `BYTES_PER_GAS` (8) bytes;
- big ints : multiplication, division and power of long ints are quadratic-ish in the limb
  count; `int_work` charges limbs(a) * limbs(b) for them (ints are at most 512 bits, so
  this is bounded and small).

Storage, events, crypto and cross-contract calls reuse the executor's prices for built-in
contracts (`taihang.execution.gas`) so that one unit means the same thing everywhere.
"""

from __future__ import annotations

from typing import Final

from taihang.constants import (
    BIG_INT_BITS_MAX,
    EVENT_DATA_BYTES_MAX,
    NESTING_DEPTH_MAX,
    RETURN_VALUE_BYTES_MAX,
    STATE_KEY_BYTES_MAX,
    STATE_VALUE_BYTES_MAX,
)
from taihang.execution import gas as executor_gas
from taihang.execution.contracts.errors import OutOfGas

# Metering points inserted by the compiler.
CALL: Final = 20  # entering any contract function
LOOP: Final = 2  # each iteration of a for or while loop
ITEM: Final = 2  # each item a comprehension draws
# Helpers and builtins.
OP: Final = 1  # any operator routed through a helper
BUILTIN: Final = 2  # any builtin or allowed method call
BYTES_PER_GAS: Final = 8  # allocation and C-level scans of str/bytes
SORT_COMPARE: Final = 1  # each of the n*log2(n) comparisons of sorted()
NODES_PER_GAS: Final = 4  # unpriced syntax (names, constants, unary ops, and/or, if) per gas
CODEC_ITEM: Final = 8  # each item of a value encoded or decoded at the host boundary
# Allocations whose size the length alone does not show (CPython object sizes, 64-bit).
CONTAINER: Final = 8  # a new list or tuple object (~64 bytes before its slots)
DICT: Final = 30  # a new dict with its first table (~230 bytes)
DICT_ENTRY: Final = 4  # each entry a dict display, comprehension or store adds (~32 bytes)
BOUND_METHOD: Final = 32  # a value's method taken without calling it (`d.get`, ~250 bytes)
# Host objects.
STORAGE_READ: Final = executor_gas.READ
STORAGE_WRITE: Final = executor_gas.WRITE
STORAGE_WRITE_PER_BYTE: Final = executor_gas.WRITE_PER_BYTE
STORAGE_SCAN_ITEM: Final = 50
EVENT: Final = executor_gas.EVENT
HASH: Final = 100
VERIFY: Final = 3_000
CROSS_CALL: Final = 700

# Limits.
INT_BITS_MAX: Final = BIG_INT_BITS_MAX
SEQUENCE_ITEMS_MAX: Final = 100_000  # list, tuple, dict and range lengths
STRING_BYTES_MAX: Final = 1 << 20  # str (in characters) and bytes lengths
CALL_DEPTH_MAX: Final = 64  # contract function frames, cross-contract calls included
NESTING_MAX: Final = NESTING_DEPTH_MAX  # values compared, converted or stored
INT_PARSE_CHARS_MAX: Final = 160  # int("...") input: 512 bits need at most 155 digits
STORAGE_KEY_BYTES_MAX: Final = STATE_KEY_BYTES_MAX // 2  # leaves room for the namespace
STORAGE_VALUE_BYTES_MAX: Final = STATE_VALUE_BYTES_MAX
STORAGE_SCAN_LIMIT_MAX: Final = 1_000
EVENT_BYTES_MAX: Final = EVENT_DATA_BYTES_MAX
RETURN_BYTES_MAX: Final = RETURN_VALUE_BYTES_MAX
GAS_LIMIT_DEFAULT: Final = 1_000_000


def for_nodes(count: int) -> int:
    """The gas for running `count` unpriced AST nodes once (rounded up)."""
    return (count + NODES_PER_GAS - 1) // NODES_PER_GAS


def for_bytes(size: int) -> int:
    """The gas for touching or allocating `size` bytes (rounded up)."""
    return (size + BYTES_PER_GAS - 1) // BYTES_PER_GAS


def for_sort(count: int) -> int:
    """The gas for sorting `count` items: n * ceil(log2 n) comparisons."""
    return count * max(1, (count - 1).bit_length()) * SORT_COMPARE


def for_int_product(a: int, b: int) -> int:
    """The gas for multiplying or dividing ints: product of their 64-bit limb counts."""
    return (abs(a).bit_length() // 64 + 1) * (abs(b).bit_length() // 64 + 1)


class Meter:
    """Counts gas for one call tree; raising `OutOfGas` (uncatchable) past `limit`."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def remaining(self) -> int:
        return self.limit - self.used

    def charge(self, amount: int) -> None:
        used = self.used + amount
        if used > self.limit:
            self.used = self.limit
            raise OutOfGas
        self.used = used
