"""The default suite: Ed25519 signatures (libsodium via PyNaCl) and SHA-256.

PyNaCl's cffi calls release the GIL, so a thread pool verifies on several cores.
"""

from __future__ import annotations

import hashlib
from typing import Final

from nacl import bindings
from nacl.exceptions import BadSignatureError, CryptoError

from taihang.constants import ED25519_PUBLIC_KEY_BYTES, ED25519_SIGNATURE_BYTES


class Ed25519Suite:
    name: Final = "ed25519"
    hash_name: Final = "sha256"
    public_key_bytes: Final = ED25519_PUBLIC_KEY_BYTES
    signature_bytes: Final = ED25519_SIGNATURE_BYTES
    signature_bytes_min: Final = ED25519_SIGNATURE_BYTES  # fixed size
    signature_bytes_max: Final = ED25519_SIGNATURE_BYTES
    seed_bytes: Final = 32

    def hash(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def tagged_hash(self, tag: bytes, data: bytes) -> bytes:
        h = hashlib.sha256(tag)
        h.update(data)
        return h.digest()

    def public_key_from_seed(self, seed: bytes) -> bytes:
        public_key, _ = bindings.crypto_sign_seed_keypair(seed)
        return bytes(public_key)

    def sign(self, seed: bytes, message: bytes) -> bytes:
        _, secret_key = bindings.crypto_sign_seed_keypair(seed)
        return bytes(bindings.crypto_sign(message, secret_key)[: self.signature_bytes])

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        if len(public_key) != self.public_key_bytes or len(signature) != self.signature_bytes:
            return False
        try:
            bindings.crypto_sign_open(signature + message, public_key)
        except (BadSignatureError, CryptoError, ValueError, TypeError):
            return False
        return True


ED25519: Final = Ed25519Suite()
