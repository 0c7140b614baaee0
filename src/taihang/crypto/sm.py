"""The national suite "sm": SM2 signatures (GB/T 32918) and SM3 hashing (GB/T 32905).

Theory of operation
-------------------
* **Hash.** SM3 through `hashlib` (OpenSSL). `tagged_hash(tag, data)` is SM3(tag || data), the
  same rule as the default suite's SHA-256 one (DESIGN.md §4).
* **Binding.** SM2 runs in the system OpenSSL 3 libcrypto through the thin `ctypes` binding
  below (ADR 0005): no extra dependency, security fixes arrive with the operating system, and
  it measured as fast as `tongsuopy` here. ctypes releases the GIL during every foreign call,
  so a thread pool verifies on several cores.
* **Private keys.** A key is a 32-byte seed from the caller's RNG (randomness stays at the
  edges). The SM2 private key is `d = 1 + ((int(seed) - 1) mod (n - 2))` with the seed read
  big-endian and n the group order: d lies in [1, n - 2], the range GB/T 32918.1 §6.1 allows
  (d = n - 1 has no inverse of 1 + d), every 32-byte seed is valid, and d equals the seed
  itself whenever the seed already is a valid SM2 private key (all but ~2**-32 of seeds), so an
  existing SM2 key imports as its own 32-byte big-endian encoding.
* **Public keys** are 65 bytes, uncompressed: 0x04 || x || y. Compressed and hybrid forms are
  rejected, and OpenSSL checks that the point is on the curve.
* **Signatures** are SM2 with SM3 and the default distinguishing ID `1234567812345678`
  (GB/T 35276, GM/T 0009), DER-encoded as SEQUENCE { INTEGER r, INTEGER s }: 8 to 72 bytes.
  `verify` first checks in Python that the DER is strictly canonical (minimal lengths and
  integers, nothing trailing) and that 1 <= r, s < n with r + s != n, so that the set of
  accepted signatures is fixed here, identical on every node whatever its OpenSSL version.
  SM2 has no low-S rule: unlike ECDSA, (r, n - s) is not a valid signature of the same message,
  so there is nothing to normalise, and standard signers (the openssl command among them)
  produce s anywhere in [1, n - 1].
* **Signing is randomised**: OpenSSL draws the nonce k from its DRBG, so signing the same
  message twice gives two different signatures that both verify. Only edges sign.
* **Caches.** Loaded keys are kept in small LRU caches (a node sees the same senders again
  and again, and a signer signs with one key): parsing a public key costs ~10% of a
  verification, deriving a signing key (one scalar multiplication) as much as the signature.
  An `_Key` frees its EVP_PKEY only when the last reference goes, so an eviction can never
  free a key that another thread is still using.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from collections.abc import Callable
from functools import lru_cache
from typing import Any, ClassVar, Final

from taihang.errors import ConfigurationError

# The recommended curve's group order n (GB/T 32918.5).
SM2_ORDER: Final = 0xFFFFFFFE_FFFFFFFF_FFFFFFFF_FFFFFFFF_7203DF6B_21C6052B_53BBF409_39D54123
SM2_DEFAULT_ID: Final = b"1234567812345678"
SM2_PUBLIC_KEY_BYTES: Final = 65
SM2_SIGNATURE_BYTES_MIN: Final = 8  # 30 06 02 01 r 02 01 s
SM2_SIGNATURE_BYTES_MAX: Final = 72  # 30 46 02 21 00 r(32) 02 21 00 s(32)
SM_SEED_BYTES: Final = 32

PUBLIC_KEY_CACHE_SIZE: Final = 4096  # measured ~2.3 KiB each: ~9 MiB when full
SIGNING_KEY_CACHE_SIZE: Final = 16

_UNCOMPRESSED_POINT: Final = 0x04
_DER_SEQUENCE: Final = 0x30
_DER_INTEGER: Final = 0x02
_SCALAR_BYTES: Final = 32

# OpenSSL 3 constants (openssl/evp.h, core.h, obj_mac.h).
_OPENSSL_VERSION_MIN: Final = 0x3000_0000
_EVP_PKEY_SM2: Final = 1172  # NID_sm2
_EVP_PKEY_PUBLIC_KEY: Final = 0x86  # OSSL_KEYMGMT_SELECT_ALL_PARAMETERS | PUBLIC_KEY
_OSSL_PARAM_UTF8_STRING: Final = 4
_OSSL_PARAM_OCTET_STRING: Final = 5
_OSSL_PARAM_UNMODIFIED: Final = ctypes.c_size_t(-1).value
# RFC 5915 ECPrivateKey { version 1, privateKey, [0] parameters: the SM2 curve OID }, without
# the public key, which OpenSSL then computes while it decodes.
_EC_PRIVATE_KEY_PREFIX: Final = bytes.fromhex("30310201010420")
_EC_PRIVATE_KEY_SUFFIX: Final = bytes.fromhex("a00a06082a811ccf5501822d")
_LIBCRYPTO_NAMES: Final = ("libcrypto.so.3", "libcrypto.3.dylib", "libcrypto-3-x64.dll")


class _OsslParam(ctypes.Structure):
    """OSSL_PARAM from openssl/core.h."""

    _fields_: ClassVar = [
        ("key", ctypes.c_char_p),
        ("data_type", ctypes.c_uint),
        ("data", ctypes.c_void_p),
        ("data_size", ctypes.c_size_t),
        ("return_size", ctypes.c_size_t),
    ]


class _Libcrypto:
    """The few libcrypto functions the suite calls, bound with their C signatures."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        ptr, char_p, size_t, c_int = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int
        pptr, psize = ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)
        init_signature = (ptr, pptr, char_p, ptr, char_p, ptr, ptr)

        def bind(name: str, restype: Any, *argtypes: Any) -> Callable[..., Any]:
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
            return function  # type: ignore[no-any-return]

        self.err_clear_error = bind("ERR_clear_error", None)
        self.pkey_ctx_new_from_name = bind("EVP_PKEY_CTX_new_from_name", ptr, ptr, char_p, char_p)
        self.pkey_ctx_free = bind("EVP_PKEY_CTX_free", None, ptr)
        self.pkey_ctx_set1_id = bind("EVP_PKEY_CTX_set1_id", c_int, ptr, char_p, c_int)
        self.pkey_fromdata_init = bind("EVP_PKEY_fromdata_init", c_int, ptr)
        self.pkey_fromdata = bind(
            "EVP_PKEY_fromdata", c_int, ptr, pptr, c_int, ctypes.POINTER(_OsslParam)
        )
        self.pkey_free = bind("EVP_PKEY_free", None, ptr)
        self.pkey_get_octet_string_param = bind(
            "EVP_PKEY_get_octet_string_param", c_int, ptr, char_p, char_p, size_t, psize
        )
        self.d2i_private_key = bind(
            "d2i_PrivateKey", ptr, c_int, ptr, ctypes.POINTER(char_p), ctypes.c_long
        )
        self.md_ctx_new = bind("EVP_MD_CTX_new", ptr)
        self.md_ctx_free = bind("EVP_MD_CTX_free", None, ptr)
        self.digest_sign_init = bind("EVP_DigestSignInit_ex", c_int, *init_signature)
        self.digest_verify_init = bind("EVP_DigestVerifyInit_ex", c_int, *init_signature)
        self.digest_sign = bind("EVP_DigestSign", c_int, ptr, char_p, psize, char_p, size_t)
        self.digest_verify = bind("EVP_DigestVerify", c_int, ptr, char_p, size_t, char_p, size_t)


def _open_libcrypto() -> _Libcrypto:
    """The system OpenSSL 3 libcrypto, with SM2 enabled, or `ConfigurationError` saying why not."""
    found = ctypes.util.find_library("crypto")
    names = [*_LIBCRYPTO_NAMES, *([found] if found else [])]
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        version_num = getattr(lib, "OpenSSL_version_num", None)  # absent before 1.1
        if version_num is None:
            continue
        version_num.restype, version_num.argtypes = ctypes.c_ulong, []
        if version_num() < _OPENSSL_VERSION_MIN:
            continue
        binding = _Libcrypto(lib)
        context = binding.pkey_ctx_new_from_name(None, b"SM2", None)
        if not context:
            binding.err_clear_error()
            raise ConfigurationError(
                f"the sm crypto suite needs SM2, but the OpenSSL library {name} was built "
                "without it (some distributions disable SM2/SM3/SM4)"
            )
        binding.pkey_ctx_free(context)
        return binding
    raise ConfigurationError(
        "the sm crypto suite needs the OpenSSL 3 library libcrypto (tried "
        f"{', '.join(names)}); install OpenSSL 3 (e.g. the libssl3 package)"
    )


def _new_sm3() -> Any:
    try:
        return hashlib.new("sm3")
    except ValueError:
        raise ConfigurationError(
            "the sm crypto suite needs SM3, but this Python's OpenSSL does not provide it"
        ) from None


_LIB: Final = _open_libcrypto()
_GROUP_NAME: Final = ctypes.create_string_buffer(b"SM2")  # read-only, shared by all threads
_SM3_EMPTY: Final = _new_sm3()  # copy() skips the by-name algorithm fetch of hashlib.new


class _Key:
    """An owned EVP_PKEY pointer, freed when the last reference to it goes."""

    __slots__ = ("pointer",)
    _free: ClassVar[Callable[..., Any]] = _LIB.pkey_free  # held here: globals die at exit

    def __init__(self, pointer: int) -> None:
        self.pointer = pointer

    def __del__(self) -> None:
        self._free(self.pointer)


def compute_private_key(seed: bytes) -> int:
    """The SM2 private key d = 1 + ((int(seed) - 1) mod (n - 2)) in [1, n - 2] of a seed."""
    if len(seed) != SM_SEED_BYTES:
        raise ValueError(f"an sm seed is {SM_SEED_BYTES} bytes, got {len(seed)}")
    return 1 + (int.from_bytes(seed, "big") - 1) % (SM2_ORDER - 2)


def encode_signature(r: int, s: int) -> bytes:
    """The DER encoding SEQUENCE { INTEGER r, INTEGER s } of a signature."""
    body = _encode_der_integer(r) + _encode_der_integer(s)
    return bytes([_DER_SEQUENCE, len(body)]) + body


def decode_signature(signature: bytes) -> tuple[int, int] | None:
    """(r, s) of a strictly canonical DER signature with 1 <= r, s < n, r + s != n; else None."""
    length = len(signature)
    if not SM2_SIGNATURE_BYTES_MIN <= length <= SM2_SIGNATURE_BYTES_MAX:
        return None
    # Short-form length only: the content is at most 70 bytes.
    if signature[0] != _DER_SEQUENCE or signature[1] != length - 2:
        return None
    first = _decode_der_integer(signature, 2)
    if first is None:
        return None
    r, offset = first
    second = _decode_der_integer(signature, offset)
    if second is None:
        return None
    s, offset = second
    if offset != length or not (0 < r < SM2_ORDER and 0 < s < SM2_ORDER):
        return None
    if (r + s) % SM2_ORDER == 0:
        return None  # t = 0 is rejected by GB/T 32918.2 §7.1 step B5
    return r, s


def _encode_der_integer(value: int) -> bytes:
    if value < 0:
        raise ValueError("a DER signature integer cannot be negative")
    # One extra byte when the top bit is set, so the integer does not read as negative.
    content = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return bytes([_DER_INTEGER, len(content)]) + content


def _decode_der_integer(data: bytes, offset: int) -> tuple[int, int] | None:
    """A minimal, positive DER INTEGER of at most 33 bytes at `offset`, and the offset after it."""
    if offset + 2 > len(data) or data[offset] != _DER_INTEGER:
        return None
    size = data[offset + 1]
    start, end = offset + 2, offset + 2 + size
    if not 1 <= size <= _SCALAR_BYTES + 1 or end > len(data):
        return None
    if data[start] & 0x80:
        return None  # negative
    if data[start] == 0 and (size == 1 or not data[start + 1] & 0x80):
        return None  # a leading zero byte that is not needed (or zero itself)
    return int.from_bytes(data[start:end], "big"), end


@lru_cache(maxsize=SIGNING_KEY_CACHE_SIZE)
def _load_signing_key(seed: bytes) -> _Key:
    private_key = compute_private_key(seed).to_bytes(_SCALAR_BYTES, "big")
    der = _EC_PRIVATE_KEY_PREFIX + private_key + _EC_PRIVATE_KEY_SUFFIX
    cursor = ctypes.c_char_p(der)
    pointer = _LIB.d2i_private_key(_EVP_PKEY_SM2, None, ctypes.byref(cursor), len(der))
    if not pointer:
        _LIB.err_clear_error()
        raise RuntimeError("OpenSSL could not load an SM2 private key")  # a bug or no memory
    return _Key(pointer)


@lru_cache(maxsize=PUBLIC_KEY_CACHE_SIZE)
def _load_public_key(public_key: bytes) -> _Key | None:
    """The key for a 65-byte uncompressed point, or None when it is not on the curve."""
    point = (ctypes.c_char * SM2_PUBLIC_KEY_BYTES).from_buffer_copy(public_key)
    group, unmodified = _GROUP_NAME, _OSSL_PARAM_UNMODIFIED
    params = (_OsslParam * 3)(
        _OsslParam(b"group", _OSSL_PARAM_UTF8_STRING, ctypes.addressof(group), 3, unmodified),
        _OsslParam(
            b"pub", _OSSL_PARAM_OCTET_STRING, ctypes.addressof(point), len(point), unmodified
        ),
        _OsslParam(None, 0, None, 0, 0),  # the end marker
    )
    context = _LIB.pkey_ctx_new_from_name(None, b"SM2", None)
    if not context:
        raise MemoryError("OpenSSL could not allocate an SM2 key context")
    try:
        pointer = ctypes.c_void_p()
        if (
            _LIB.pkey_fromdata_init(context) != 1
            or _LIB.pkey_fromdata(context, ctypes.byref(pointer), _EVP_PKEY_PUBLIC_KEY, params) != 1
            or not pointer.value
        ):
            _LIB.err_clear_error()
            return None
        return _Key(pointer.value)
    finally:
        _LIB.pkey_ctx_free(context)


def _sign(key: _Key, message: bytes) -> bytes:
    context = _LIB.md_ctx_new()
    if not context:
        raise MemoryError("OpenSSL could not allocate a digest context")
    try:
        key_context = ctypes.c_void_p()
        signature = ctypes.create_string_buffer(SM2_SIGNATURE_BYTES_MAX)
        size = ctypes.c_size_t(SM2_SIGNATURE_BYTES_MAX)
        if (
            _LIB.digest_sign_init(
                context, ctypes.byref(key_context), b"SM3", None, None, key.pointer, None
            )
            != 1
            or _LIB.pkey_ctx_set1_id(key_context, SM2_DEFAULT_ID, len(SM2_DEFAULT_ID)) != 1
            or _LIB.digest_sign(context, signature, ctypes.byref(size), message, len(message)) != 1
        ):
            _LIB.err_clear_error()
            raise RuntimeError("OpenSSL failed to make an SM2 signature")
        return signature.raw[: size.value]
    finally:
        _LIB.md_ctx_free(context)


def _verify(key: _Key, message: bytes, signature: bytes) -> bool:
    context = _LIB.md_ctx_new()
    if not context:
        raise MemoryError("OpenSSL could not allocate a digest context")
    try:
        key_context = ctypes.c_void_p()
        valid = bool(
            _LIB.digest_verify_init(
                context, ctypes.byref(key_context), b"SM3", None, None, key.pointer, None
            )
            == 1
            and _LIB.pkey_ctx_set1_id(key_context, SM2_DEFAULT_ID, len(SM2_DEFAULT_ID)) == 1
            and _LIB.digest_verify(context, signature, len(signature), message, len(message)) == 1
        )
    finally:
        _LIB.md_ctx_free(context)
    if not valid:
        _LIB.err_clear_error()  # the error queue is per thread and would otherwise grow
    return valid


class SmSuite:
    """SM2 signatures with SM3, the default ID and DER encoding; SM3 hashes (module docstring)."""

    name: Final = "sm"
    hash_name: Final = "sm3"
    public_key_bytes: Final = SM2_PUBLIC_KEY_BYTES
    signature_bytes: Final = SM2_SIGNATURE_BYTES_MAX  # DER varies: this is the maximum
    signature_bytes_min: Final = SM2_SIGNATURE_BYTES_MIN
    signature_bytes_max: Final = SM2_SIGNATURE_BYTES_MAX
    seed_bytes: Final = SM_SEED_BYTES

    def hash(self, data: bytes) -> bytes:
        h = _SM3_EMPTY.copy()
        h.update(data)
        return bytes(h.digest())

    def tagged_hash(self, tag: bytes, data: bytes) -> bytes:
        h = _SM3_EMPTY.copy()
        h.update(tag)
        h.update(data)
        return bytes(h.digest())

    def public_key_from_seed(self, seed: bytes) -> bytes:
        key = _load_signing_key(seed)
        public_key = ctypes.create_string_buffer(SM2_PUBLIC_KEY_BYTES)
        size = ctypes.c_size_t()
        if (
            _LIB.pkey_get_octet_string_param(
                key.pointer, b"pub", public_key, SM2_PUBLIC_KEY_BYTES, ctypes.byref(size)
            )
            != 1
            or size.value != SM2_PUBLIC_KEY_BYTES
        ):
            _LIB.err_clear_error()
            raise RuntimeError("OpenSSL did not return an uncompressed SM2 public key")
        return public_key.raw

    def sign(self, seed: bytes, message: bytes) -> bytes:
        return _sign(_load_signing_key(seed), message)

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        try:
            if len(public_key) != SM2_PUBLIC_KEY_BYTES or public_key[0] != _UNCOMPRESSED_POINT:
                return False
            if decode_signature(signature) is None:
                return False
            key = _load_public_key(bytes(public_key))
            return key is not None and _verify(key, bytes(message), bytes(signature))
        except (TypeError, ctypes.ArgumentError):
            return False  # not bytes-like: invalid, as the protocol promises, not an error


SM: Final = SmSuite()
