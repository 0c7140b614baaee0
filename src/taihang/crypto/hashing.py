"""SHA-256 and domain-separated hashing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

HashFn = Callable[[bytes], bytes]  # a 32-byte hash: the channel's suite hash (SHA-256 or SM3)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def tagged_hash(tag: bytes, data: bytes) -> bytes:
    """SHA-256 of `tag || data`: the hash rule for every tagged type (DESIGN.md §4)."""
    h = hashlib.sha256(tag)
    h.update(data)
    return h.digest()


def sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


HASHES: dict[str, HashFn] = {"sha256": sha256, "sm3": sm3}


def get_hash(name: str) -> HashFn:
    """The hash function called `name` (a suite's `hash_name`), for light clients."""
    try:
        return HASHES[name]
    except KeyError:
        raise ValueError(f"unknown hash {name!r}; known: {', '.join(HASHES)}") from None
