"""The `CryptoSuite` protocol: one object per signature scheme + hash function pair.

A channel picks its suite at genesis; every hash, address and signature on that channel goes
through it. Suites are stateless and safe to share between threads (a suite may cache parsed
keys; results never depend on it). Signatures may vary in length (DER-encoded SM2): a
well-formed one is `signature_bytes_min` to `signature_bytes_max` bytes long.
"""

from __future__ import annotations

from typing import Protocol

from taihang.errors import ConfigurationError


class CryptoSuite(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def hash_name(self) -> str:
        """The hash every id, address, Merkle root and state-tree node uses ("sha256", "sm3")."""
        ...

    @property
    def public_key_bytes(self) -> int: ...

    @property
    def signature_bytes(self) -> int:
        """The exact signature length of a fixed-size scheme (Ed25519: 64).

        For a variable-length scheme it is the maximum (DER-encoded SM2: 72): size buffers and
        limits with it, and check a signature's length against `signature_bytes_min` and
        `signature_bytes_max`.
        """
        ...

    @property
    def signature_bytes_min(self) -> int:
        """The shortest well-formed signature (Ed25519: 64; SM2 DER: 8)."""
        ...

    @property
    def signature_bytes_max(self) -> int:
        """The longest well-formed signature (Ed25519: 64; SM2 DER: 72)."""
        ...

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
    return ["ed25519", "sm"]


def get_suite(name: str) -> CryptoSuite:
    """The suite called `name`, or `ConfigurationError` naming the known ones.

    "sm" loads the system OpenSSL 3 library on first use; where it is missing or built without
    SM2, that is a `ConfigurationError` saying so.
    """
    if name == "ed25519":
        from taihang.crypto.ed25519 import ED25519

        return ED25519
    if name == "sm":
        from taihang.crypto.sm import SM

        return SM
    raise ConfigurationError(
        f"unknown crypto suite {name!r}; known suites: {', '.join(known_suites())}"
    )
