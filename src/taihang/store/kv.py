"""The `KVStore` interface and its RocksDB engine (`rocksdict`, raw mode).

Everything durable goes through here: atomic write batches (optionally synced), point reads,
multi-gets and ordered prefix scans. Keys and values are bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, cast

from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteOptions

from taihang.errors import StoreError

BLOCK_CACHE_BYTES = 256 * 1024 * 1024


class KVStore(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def multi_get(self, keys: list[bytes]) -> list[bytes | None]: ...

    def write(self, puts: Mapping[bytes, bytes | None], *, sync: bool) -> None:
        """Apply all puts (None deletes) atomically; with `sync`, durable on return."""
        ...

    def scan(self, prefix: bytes, *, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Items whose key starts with `prefix`, in key order, from `start` if given."""
        ...

    def close(self) -> None: ...


class MemoryKV:
    """An in-memory KVStore for unit tests of code above the store (same semantics)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.writes = 0

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def multi_get(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.data.get(k) for k in keys]

    def write(self, puts: Mapping[bytes, bytes | None], *, sync: bool) -> None:
        self.writes += 1
        for key, value in puts.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def scan(self, prefix: bytes, *, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        lower = max(prefix, start) if start is not None else prefix
        for key in sorted(k for k in self.data if k.startswith(prefix) and k >= lower):
            yield key, self.data[key]

    def close(self) -> None:
        pass


class RocksKV:
    """RocksDB through rocksdict in raw mode (values are bytes, never pickled)."""

    def __init__(self, path: Path, *, block_cache_bytes: int = BLOCK_CACHE_BYTES) -> None:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_background_jobs(2)
        options.increase_parallelism(2)
        # Point reads dominate (state values, tree nodes, tx index): a bloom filter skips
        # SST files without the key and a shared block cache keeps hot tree levels in memory
        # (measured ~30% faster blocks and ~70% faster reads at 1M keys, ADR 0003).
        table = BlockBasedOptions()
        table.set_bloom_filter(10, False)
        table.set_block_cache(Cache(block_cache_bytes))
        options.set_block_based_table_factory(table)
        try:
            self._db = Rdict(str(path), options)
        except Exception as exc:  # rocksdict raises bare Exception on open errors
            raise StoreError(f"cannot open the store at {path}: {exc}") from None
        self._sync = WriteOptions()
        self._sync.sync = True
        self._nosync = WriteOptions()
        self._nosync.sync = False
        self._closed = False

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def multi_get(self, keys: list[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        values = self._db.get(list[Any](keys))
        return cast(list[bytes | None], values)

    def write(self, puts: Mapping[bytes, bytes | None], *, sync: bool) -> None:
        batch = WriteBatch(raw_mode=True)
        for key, value in puts.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db.write(batch, self._sync if sync else self._nosync)

    def scan(self, prefix: bytes, *, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        lower = max(prefix, start) if start is not None else prefix
        iterator = self._db.iter()
        iterator.seek(lower)
        while iterator.valid():
            key = iterator.key()
            if not key.startswith(prefix):
                break
            yield key, iterator.value()
            iterator.next()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()
