"""Gas for the built-in contracts: a fixed price per operation and per byte.

Built-ins are native Python with bounded work per call, so flat prices are enough; the
contract runtime of a later issue meters size-aware gas with the same `GasMeter`.
"""

from __future__ import annotations

from typing import Final

from taihang.errors import OutOfGas

TX_BASE: Final = 1_000
TX_PER_BYTE: Final = 8
READ: Final = 100
WRITE: Final = 500
WRITE_PER_BYTE: Final = 4
EVENT: Final = 200


class GasMeter:
    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, amount: int) -> None:
        self.used += amount
        if self.used > self.limit:
            self.used = self.limit
            raise OutOfGas(f"out of gas (limit {self.limit})")
