"""State access for execution: keys, typed reads and a write overlay with checkpoints.

State is a flat map of byte keys to canonical dynamic values. A key is the contract's
namespace, a slash, and the contract's own key (`asset/balance/<address>`), so contracts can
never touch each other's data. The overlay collects one block's writes on top of the executed
state; a per-transaction checkpoint lets a failed transaction's writes be dropped while its
nonce increment stays.

Prefix scans (`Overlay.scan`) merge the base's ordered `scan` with the block's writes: a
written key overrides the base, a deleted one hides it, and the result is in ascending key
order. The sorted index of written keys is built on a block's first scan and kept up to date
from then on (including checkpoint rollbacks), so blocks that never scan pay nothing for it.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Final, Protocol

from taihang.codec import Value, decode_value, encode_value

_MISSING = object()
SCAN_PAGE_MAX: Final = 1024  # the most base entries one `Overlay.scan` page asks for


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None:
        """The raw value at `key` in the executed state, or None."""
        ...

    def scan(self, prefix: bytes, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        """At most `limit` (state_key, raw value) pairs of the executed state whose keys start
        with `prefix` and sort strictly after `after` (None: from the first), ascending by key
        bytes."""
        ...


def state_key(namespace: str, key: str) -> bytes:
    return f"{namespace}/{key}".encode()


class Overlay:
    """One block's writes over a `StateReader`; values cached decoded."""

    __slots__ = ("_base", "_index", "_journal", "_values", "_writes")

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._values: dict[bytes, Value] = {}  # decoded values read or written (None = absent)
        self._writes: dict[bytes, bytes | None] = {}  # encoded writes, None = delete
        self._journal: list[tuple[bytes, object, object]] | None = None
        self._index: list[bytes] | None = None  # sorted keys of `_writes`, from the first scan

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
        """Journal `key`'s state before a write; index it if it is newly written."""
        write = self._writes.get(key, _MISSING)
        if self._journal is not None:
            self._journal.append((key, self._values.get(key, _MISSING), write))
        if write is _MISSING and self._index is not None:
            insort(self._index, key)

    def scan(self, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """At most `limit` (key, raw value) pairs whose keys start with `prefix`, ascending by
        key bytes, as the block sees them: the base's values under this block's writes so far
        (a written value overrides the base, a deleted key is skipped)."""
        return self.scan_counted(prefix, limit)[0]

    def scan_counted(self, prefix: bytes, limit: int) -> tuple[list[tuple[bytes, bytes]], int]:
        """`scan`, and how many entries it examined (base rows read plus written keys merged):
        keys this block deleted cost a scan work without being returned, so gas counts them."""
        found: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            return found, 0
        if self._index is None:
            self._index = sorted(self._writes)
        written, writes = self._index, self._writes
        first = i = bisect_left(written, prefix)  # the next written key to merge
        read = 0
        after: bytes | None = None
        page = limit
        while True:
            base = self._base.scan(prefix, after, page)
            read += len(base)
            # Keys of the prefix form one interval of the order: a written key at or after
            # `prefix` and before a base key (which has the prefix) has the prefix too.
            for key, raw in base:
                while i < len(written) and written[i] < key:
                    value = writes[written[i]]
                    if value is not None:
                        found.append((written[i], value))
                        if len(found) == limit:
                            return found, read + i + 1 - first
                    i += 1
                if i < len(written) and written[i] == key:
                    i += 1
                    value = writes[key]
                else:
                    value = raw
                if value is not None:
                    found.append((key, value))
                    if len(found) == limit:
                        return found, read + i - first
            if len(base) < page:  # the base is exhausted: the rest are written keys only
                while i < len(written) and written[i].startswith(prefix):
                    value = writes[written[i]]
                    i += 1
                    if value is not None:
                        found.append((written[i - 1], value))
                        if len(found) == limit:
                            break
                return found, read + i - first
            # Deleted keys hid some of the page: read on, in growing pages.
            after = base[-1][0]
            page = max(limit - len(found), min(2 * page, SCAN_PAGE_MAX))

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
            if write is _MISSING:  # first written in this checkpoint: unwrite and unindex it
                del self._writes[key]
                if self._index is not None:
                    del self._index[bisect_left(self._index, key)]
            else:
                self._writes[key] = write  # type: ignore[assignment]
        self._journal = None

    @property
    def writes(self) -> dict[bytes, bytes | None]:
        return self._writes
