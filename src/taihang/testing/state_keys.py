"""State keys with chosen key-hash prefixes, to build state trees of a known shape in tests."""

from __future__ import annotations

import itertools

from taihang.crypto.jmt import compute_key_hash


def find_keys(prefix: str, count: int) -> list[bytes]:
    """The first `count` keys b"k<i>" whose key hash starts with the nibbles `prefix`."""
    found = []
    for index in itertools.count():
        key = b"k%d" % index
        if compute_key_hash(key).hex().startswith(prefix):
            found.append(key)
            if len(found) == count:
                return found
    raise AssertionError("unreachable")
