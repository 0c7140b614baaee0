"""The `CryptoSuite` protocol: one object per signature scheme + hash function pair.

A channel picks its suite at genesis; every hash, address and signature on that channel goes
through it. Suites are stateless and safe to share between threads.
"""

from __future__ import annotations

from typing import Protocol

from taihang.errors import ConfigurationError


class CryptoSuite(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def public_key_bytes(self) -> int: ...

    @property
    def signature_bytes(self) -> int: ...

    @property
    def seed_bytes(self) -> int: ...

    def hash(self, data: bytes) -> bytes:
        """The suite's 32-byte hash of `data`."""
        ...

    def tagged_hash(self, tag: bytes, data: bytes) -> bytes:
        """The suite hash of `tag || data`."""
        ...

    def public_key_from_seed(self, seed: bytes) -> bytes:
        """The public key for a private key seed (the seed comes from the caller's RNG)."""
        ...

    def sign(self, seed: bytes, message: bytes) -> bytes:
        """A signature over `message` with the key derived from `seed`."""
        ...

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """True when `signature` is valid for `message` under `public_key`; never raises."""
        ...


def known_suites() -> list[str]:
    return ["ed25519"]


def get_suite(name: str) -> CryptoSuite:
    """The suite called `name`, or `ConfigurationError` naming the known ones."""
    if name == "ed25519":
        from taihang.crypto.ed25519 import ED25519

        return ED25519
    raise ConfigurationError(
        f"unknown crypto suite {name!r}; known suites: {', '.join(known_suites())}"
    )
