"""State access for execution: keys, typed reads and a write overlay with checkpoints.

State is a flat map of byte keys to canonical dynamic values. A key is the contract's
namespace, a slash, and the contract's own key (`asset/balance/<address>`), so contracts can
never touch each other's data. The overlay collects one block's writes on top of the executed
state; a per-transaction checkpoint lets a failed transaction's writes be dropped while its
nonce increment stays.
"""

from __future__ import annotations

from typing import Protocol

from taihang.codec import Value, decode_value, encode_value

_MISSING = object()


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None:
        """The raw value at `key` in the executed state, or None."""
        ...


def state_key(namespace: str, key: str) -> bytes:
    return f"{namespace}/{key}".encode()


class Overlay:
    """One block's writes over a `StateReader`; values cached decoded."""

    __slots__ = ("_base", "_journal", "_values", "_writes")

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._values: dict[bytes, Value] = {}  # decoded values read or written (None = absent)
        self._writes: dict[bytes, bytes | None] = {}  # encoded writes, None = delete
        self._journal: list[tuple[bytes, object, object]] | None = None

    def get(self, key: bytes, default: Value = None) -> Value:
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            raw = self._base.get(key)
            value = None if raw is None else decode_value(raw)
            self._values[key] = value
        return default if value is None else value

    def has(self, key: bytes) -> bool:
        return self.get(key) is not None

    def set(self, key: bytes, value: Value) -> int:
        """Write `value`; returns its encoded size for gas accounting."""
        raw = encode_value(value)
        self._record(key)
        self._values[key] = value
        self._writes[key] = raw
        return len(raw)

    def delete(self, key: bytes) -> None:
        self._record(key)
        self._values[key] = None
        self._writes[key] = None

    def _record(self, key: bytes) -> None:
        if self._journal is not None:
            self._journal.append(
                (key, self._values.get(key, _MISSING), self._writes.get(key, _MISSING))
            )

    def begin(self) -> None:
        """Start a checkpoint; `commit` keeps the writes since, `rollback` drops them."""
        assert self._journal is None, "checkpoints do not nest"
        self._journal = []

    def commit(self) -> None:
        assert self._journal is not None
        self._journal = None

    def rollback(self) -> None:
        assert self._journal is not None
        for key, value, write in reversed(self._journal):
            if value is _MISSING:
                self._values.pop(key, None)
            else:
                self._values[key] = value
            if write is _MISSING:
                self._writes.pop(key, None)
            else:
                self._writes[key] = write  # type: ignore[assignment]
        self._journal = None

    @property
    def writes(self) -> dict[bytes, bytes | None]:
        return self._writes
