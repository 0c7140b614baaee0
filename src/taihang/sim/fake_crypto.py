"""`FakeSuite`: a fast, deterministic stand-in for a signature scheme, for the simulator only.

Theory of operation: a "public key" is SHA-256 of the seed, and a "signature" is
SHA-256(b"fake-sig" || public key || message). Anyone who knows the public key can forge one,
so this suite proves nothing about authenticity; what it does keep is everything the consensus
code can observe: a signature binds one key to one message, a wrong key or a changed message
fails `verify`, and the same inputs give the same bytes in every process. That is enough to
catch encoding and signer-bookkeeping bugs while costing two hashes instead of an elliptic-curve
operation, so the simulator runs many more seeds per second. A few runs use the real suites.

It satisfies the `CryptoSuite` protocol; hashing is SHA-256, exactly as in the ed25519 suite,
so ids and addresses have the same shape as on a real channel.
"""

from __future__ import annotations

import hashlib
from typing import Final

FAKE_SIGNATURE_TAG: Final = b"fake-sig"
FAKE_KEY_BYTES: Final = 32
FAKE_SIGNATURE_BYTES: Final = 32


class FakeSuite:
    """A `CryptoSuite` named "fake": SHA-256 hashing and hash-based pseudo-signatures."""

    name: Final = "fake"
    hash_name: Final = "sha256"
    public_key_bytes: Final = FAKE_KEY_BYTES
    signature_bytes: Final = FAKE_SIGNATURE_BYTES
    signature_bytes_min: Final = FAKE_SIGNATURE_BYTES  # fixed size, like Ed25519
    signature_bytes_max: Final = FAKE_SIGNATURE_BYTES
    seed_bytes: Final = 32

    def hash(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def tagged_hash(self, tag: bytes, data: bytes) -> bytes:
        h = hashlib.sha256(tag)
        h.update(data)
        return h.digest()

    def public_key_from_seed(self, seed: bytes) -> bytes:
        return hashlib.sha256(seed).digest()

    def sign(self, seed: bytes, message: bytes) -> bytes:
        return self._signature(self.public_key_from_seed(seed), message)

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        if len(public_key) != FAKE_KEY_BYTES or len(signature) != FAKE_SIGNATURE_BYTES:
            return False
        return self._signature(public_key, message) == signature

    @staticmethod
    def _signature(public_key: bytes, message: bytes) -> bytes:
        h = hashlib.sha256(FAKE_SIGNATURE_TAG)
        h.update(public_key)
        h.update(message)
        return h.digest()


FAKE: Final = FakeSuite()
