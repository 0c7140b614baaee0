"""The ciphers that seal a key file's seed: AES-256-GCM, and SM4 for keys of the sm suite.

Each cipher is a named pair of seal/unseal functions with its key, nonce and tag sizes; a key
file records the cipher's name, and `get_seed_ciphers(suite)` says which names a suite may use
(the first one for new files). SM4-GCM needs a `cryptography` built with it; where it is
missing, SM4-CTR with an SM3-HMAC (encrypt-then-MAC) takes its place.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CIPHER_NAME: Final = "aes-256-gcm"  # every suite but "sm"
CIPHER_SM4_GCM: Final = "sm4-gcm"
CIPHER_SM4_CTR_HMAC: Final = "sm4-ctr+hmac-sm3"  # where `cryptography` lacks SM4-GCM
SM_SUITE: Final = "sm"
DERIVED_KEY_BYTES: Final = 32  # AES-256
NONCE_BYTES: Final = 12  # the AES-GCM standard nonce size
TAG_BYTES: Final = 16
SM4_KEY_BYTES: Final = 16
HMAC_SM3_KEY_BYTES: Final = 32
HMAC_SM3_BYTES: Final = 32
CTR_NONCE_BYTES: Final = 16  # SM4-CTR's initial counter block is one 128-bit block


@dataclass(frozen=True)
class _SeedCipher:
    """An authenticated cipher for seeds: `seal` returns ciphertext || tag, `unseal` raises
    `InvalidTag` when anything (key, nonce, ciphertext, tag, associated data) differs."""

    name: str
    key_bytes: int  # the scrypt output length, `kdfparams.dklen`
    nonce_bytes: int
    tag_bytes: int
    seal: Callable[[bytes, bytes, bytes, bytes], bytes]  # (key, nonce, seed, associated data)
    unseal: Callable[[bytes, bytes, bytes, bytes], bytes]  # (key, nonce, sealed, associated data)


def _aes_gcm_seal(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    return AESGCM(key).encrypt(nonce, plaintext, associated_data)


def _aes_gcm_unseal(key: bytes, nonce: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    return AESGCM(key).decrypt(nonce, sealed, associated_data)


def _sm4_gcm_seal(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(associated_data)
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    return ciphertext + encryptor.tag


def _sm4_gcm_unseal(key: bytes, nonce: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(associated_data)
    return decryptor.update(ciphertext) + decryptor.finalize()  # InvalidTag on any change


def _hmac_sm3(mac_key: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
    # The length prefix makes the split between associated data and the rest unambiguous; the
    # nonce has a fixed length and the ciphertext runs to the end.
    mac = hmac.new(mac_key, len(associated_data).to_bytes(8, "big"), "sm3")
    mac.update(associated_data)
    mac.update(nonce)
    mac.update(ciphertext)
    return mac.digest()


def _sm4_ctr_hmac_seal(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    encryption_key, mac_key = key[:SM4_KEY_BYTES], key[SM4_KEY_BYTES:]
    encryptor = Cipher(algorithms.SM4(encryption_key), modes.CTR(nonce)).encryptor()
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    return ciphertext + _hmac_sm3(mac_key, nonce, ciphertext, associated_data)


def _sm4_ctr_hmac_unseal(key: bytes, nonce: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    encryption_key, mac_key = key[:SM4_KEY_BYTES], key[SM4_KEY_BYTES:]
    ciphertext, tag = sealed[:-HMAC_SM3_BYTES], sealed[-HMAC_SM3_BYTES:]
    # Encrypt-then-MAC: nothing is decrypted before the MAC checks, in constant time.
    if not hmac.compare_digest(tag, _hmac_sm3(mac_key, nonce, ciphertext, associated_data)):
        raise InvalidTag
    decryptor = Cipher(algorithms.SM4(encryption_key), modes.CTR(nonce)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


_SEED_CIPHERS: Final = {
    cipher.name: cipher
    for cipher in (
        _SeedCipher(
            CIPHER_NAME, DERIVED_KEY_BYTES, NONCE_BYTES, TAG_BYTES, _aes_gcm_seal, _aes_gcm_unseal
        ),
        _SeedCipher(
            CIPHER_SM4_GCM, SM4_KEY_BYTES, NONCE_BYTES, TAG_BYTES, _sm4_gcm_seal, _sm4_gcm_unseal
        ),
        _SeedCipher(
            CIPHER_SM4_CTR_HMAC,
            SM4_KEY_BYTES + HMAC_SM3_KEY_BYTES,
            CTR_NONCE_BYTES,
            HMAC_SM3_BYTES,
            _sm4_ctr_hmac_seal,
            _sm4_ctr_hmac_unseal,
        ),
    )
}


@functools.cache
def is_sm4_gcm_supported() -> bool:
    """Whether the installed `cryptography` (and its OpenSSL) can encrypt with SM4-GCM."""
    try:
        Cipher(algorithms.SM4(bytes(SM4_KEY_BYTES)), modes.GCM(bytes(NONCE_BYTES))).encryptor()
    except UnsupportedAlgorithm:
        return False
    return True


def get_seed_ciphers(suite: str) -> tuple[str, ...]:
    """The ciphers a key file of `suite` may use, the one new files get first."""
    if suite != SM_SUITE:
        return (CIPHER_NAME,)
    if is_sm4_gcm_supported():
        return (CIPHER_SM4_GCM, CIPHER_SM4_CTR_HMAC)
    return (CIPHER_SM4_CTR_HMAC, CIPHER_SM4_GCM)
