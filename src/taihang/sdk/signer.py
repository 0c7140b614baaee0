"""Signers: what signs a transaction. A key loaded in this process, or the key agent."""

from __future__ import annotations

from typing import Protocol

from taihang.crypto import CryptoSuite, get_suite
from taihang.sdk.keys import LoadedKey


class Signer(Protocol):
    @property
    def address(self) -> str: ...

    @property
    def public_key(self) -> bytes: ...

    @property
    def suite(self) -> CryptoSuite: ...

    def sign(self, message: bytes) -> bytes: ...


class KeySigner:
    """Signs with a key held in this process (loaded from a key file or generated)."""

    def __init__(self, key: LoadedKey) -> None:
        self._key = key
        self._suite = get_suite(key.suite)

    @classmethod
    def from_seed(cls, seed: bytes, suite_name: str = "ed25519", name: str = "key") -> KeySigner:
        from taihang.ledger.transaction import compute_address

        suite = get_suite(suite_name)
        public_key = suite.public_key_from_seed(seed)
        key = LoadedKey(
            name=name,
            suite=suite_name,
            address=compute_address(suite, public_key),
            public_key=public_key,
            seed=seed,
            development=True,
        )
        return cls(key)

    @property
    def name(self) -> str:
        return self._key.name

    @property
    def address(self) -> str:
        return self._key.address

    @property
    def public_key(self) -> bytes:
        return self._key.public_key

    @property
    def suite(self) -> CryptoSuite:
        return self._suite

    def sign(self, message: bytes) -> bytes:
        return self._suite.sign(self._key.seed, message)
