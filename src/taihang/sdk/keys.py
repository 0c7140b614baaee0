"""Key files for users and nodes: create, save, list and load private key seeds.

A key file is one JSON object holding one key, always written with mode 0600:

    {"version": 1, "name": "alice", "suite": "ed25519", "address": "<40 hex>",
     "public_key": "<hex>", "development": false,
     "crypto": {"kdf": "scrypt", "kdfparams": {"n", "r", "p", "salt": "<hex>", "dklen": 32},
                "cipher": "aes-256-gcm", "nonce": "<hex>", "ciphertext": "<hex>"}}

The seed is encrypted with AES-256-GCM under a key that scrypt derives from the password. The
file's public fields (version, name, suite, address, public key, development flag) are the
associated data, so none of them can be swapped for another key's without decryption failing.

Only the local network's development keys are stored unencrypted: they carry `"seed": "<hex>"`,
`"development": true` and a `"warning"` instead of `"crypto"` (DESIGN.md §4).

Keys of the national suite "sm" have their seed encrypted with SM4 instead (ADR 0005), so that
such a deployment uses national algorithms only: `"cipher": "sm4-gcm"` (scrypt dklen 16) where
the installed `cryptography` can do SM4-GCM, else `"cipher": "sm4-ctr+hmac-sm3"` (dklen 48: a
16-byte SM4 key, then a 32-byte HMAC-SM3 key; the nonce is a random 16-byte initial counter
block; encrypt-then-MAC with the MAC over len(associated data) as 8 bytes big-endian ||
associated data || nonce || ciphertext, stored after the ciphertext and compared in constant
time). Same KDF, same associated data. Loading accepts both SM4 forms for "sm" keys and only
AES-256-GCM for the others, so an "sm" key file with an AES cipher (or the reverse) is refused
as corrupted.

Loading checks, cheapest first: the file's mode (no group or other access), its size, the
JSON structure and version, that the address is the public key's, then the password, and last
that the decrypted seed really derives the public key. Every failure names the file and what is
wrong with it. Randomness (seeds, salts, nonces) lives here, at the edge, never in a core.

Scrypt cost: n=2**17, r=8, p=1 (128 MiB) took ~250 ms per derivation on the development machine
(n=2**16 took ~120 ms, n=2**15 ~60 ms). It is the OWASP minimum for scrypt and costs a user a
quarter second per command; tests pass a cheaper `ScryptParams`. Loading accepts any parameters
within `SCRYPT_MEMORY_BYTES_MAX`, so older or test files stay readable while a hostile file
cannot make us allocate gigabytes.
"""

from __future__ import annotations

import builtins
import os
import re
import secrets
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from taihang.crypto import CryptoSuite, get_suite
from taihang.errors import ConfigurationError, NotFound, TaihangError
from taihang.ledger.transaction import compute_address
from taihang.sdk.seed_ciphers import (
    _SEED_CIPHERS,
    _SeedCipher,
    get_seed_ciphers,
)
from taihang.types import Address

KEY_FILE_VERSION: Final = 1
KEY_FILE_SUFFIX: Final = ".json"
KEY_FILE_BYTES_MAX: Final = 64 * 1024  # a key file is well under 1 KiB; refuse anything huge
KEY_NAME_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z")
PASSWORD_ENV: Final = "TAIHANG_KEY_PASSWORD"
DEVELOPMENT_WARNING: Final = "development only: unencrypted"

KDF_NAME: Final = "scrypt"
SALT_BYTES: Final = 16
SCRYPT_MEMORY_BYTES_MAX: Final = 1024 * 1024 * 1024  # scrypt needs 128 * n * r bytes
SCRYPT_P_MAX: Final = 16
AD_DOMAIN: Final = "taihang/key-file/v1"

StrPath = str | os.PathLike[str]


class KeyStoreError(TaihangError):
    """A key file or key store problem; the message names the file and what is wrong."""

    code = "key_store"


# Cases are named for what happened (STYLE.md §Errors), not suffixed with "Error".


class InvalidKeyName(KeyStoreError):
    code = "invalid_key_name"


class KeyFileExists(KeyStoreError):
    code = "key_file_exists"


class KeyFileNotFound(KeyStoreError, NotFound):
    code = "key_file_not_found"


class KeyFileCorrupted(KeyStoreError):
    """Truncated, malformed, of another version, or with fields that do not fit together."""

    code = "key_file_corrupted"


class KeyFileInsecure(KeyStoreError):
    code = "key_file_insecure"


class PasswordRequired(KeyStoreError):
    code = "password_required"


class WrongPassword(KeyStoreError):
    code = "wrong_password"


@dataclass(frozen=True)
class ScryptParams:
    """Scrypt cost parameters; `DEFAULT_SCRYPT` for real keys, cheaper ones only in tests."""

    n: int
    r: int
    p: int

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) != 0:
            raise KeyStoreError(f"scrypt n must be a power of two >= 2, got {self.n}")
        if not 1 <= self.p <= SCRYPT_P_MAX:
            raise KeyStoreError(f"scrypt p must be in 1..{SCRYPT_P_MAX}, got {self.p}")
        if self.r < 1 or 128 * self.n * self.r > SCRYPT_MEMORY_BYTES_MAX:
            raise KeyStoreError(
                f"scrypt n={self.n}, r={self.r} needs more than "
                f"{SCRYPT_MEMORY_BYTES_MAX // 2**20} MiB (or r < 1)"
            )


DEFAULT_SCRYPT: Final = ScryptParams(n=2**17, r=8, p=1)


@dataclass(frozen=True)
class LoadedKey:
    """A key read from (or just written to) a key file, with its private seed."""

    name: str
    suite: str
    address: Address
    public_key: bytes
    seed: bytes = field(repr=False)  # never in logs or tracebacks
    development: bool


@dataclass(frozen=True)
class KeyInfo:
    """A key file's public fields, read without decrypting."""

    name: str
    suite: str
    address: Address
    public_key: bytes
    encrypted: bool
    development: bool
    path: Path


# The on-disk document. Decoding with msgspec checks every field's type in one native pass.
class _KdfParams(msgspec.Struct, forbid_unknown_fields=True):
    n: int
    r: int
    p: int
    salt: str
    dklen: int


class _CryptoSection(msgspec.Struct, forbid_unknown_fields=True):
    kdf: str
    kdfparams: _KdfParams
    cipher: str
    nonce: str
    ciphertext: str


class _KeyFileDocument(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    version: int
    name: str
    suite: str
    address: str
    public_key: str
    development: bool
    warning: str | None = None
    seed: str | None = None
    crypto: _CryptoSection | None = None


class _VersionOnly(msgspec.Struct):
    version: int


def generate_seed(suite: CryptoSuite) -> bytes:
    """A fresh private key seed from the operating system's CSPRNG."""
    return secrets.token_bytes(suite.seed_bytes)


def is_valid_key_name(name: str) -> bool:
    return KEY_NAME_PATTERN.match(name) is not None


def validate_key_name(name: str) -> None:
    if not is_valid_key_name(name):
        raise InvalidKeyName(
            f"invalid key name {name!r}: use 1-64 characters from a-z, 0-9, '_' and '-', "
            "starting with a letter or digit"
        )


def save_key(
    path: StrPath,
    seed: bytes,
    *,
    name: str,
    suite: CryptoSuite | str,
    password: str | None,
    development: bool = False,
    scrypt: ScryptParams = DEFAULT_SCRYPT,
) -> LoadedKey:
    """Write a new key file at `path` (mode 0600, atomically); never overwrite one.

    `password=None` stores the seed unencrypted, which only development keys may do.
    """
    path = Path(path)
    crypto_suite = get_suite(suite) if isinstance(suite, str) else suite
    validate_key_name(name)
    if len(seed) != crypto_suite.seed_bytes:
        raise KeyStoreError(
            f"a {crypto_suite.name} seed is {crypto_suite.seed_bytes} bytes, got {len(seed)}"
        )
    if password is None and not development:
        raise KeyStoreError(
            f"refusing to write {path} unencrypted: only development keys may have no password"
        )
    if password == "":
        raise KeyStoreError(f"refusing to encrypt {path} with an empty password")
    if os.path.lexists(path):
        # Checked early so that no scrypt time is spent; `_write_new_file` re-checks atomically.
        raise KeyFileExists(f"key file {path} already exists; refusing to overwrite it")
    public_key = crypto_suite.public_key_from_seed(seed)
    key = LoadedKey(
        name=name,
        suite=crypto_suite.name,
        address=compute_address(crypto_suite, public_key),
        public_key=public_key,
        seed=seed,
        development=development,
    )
    document = _build_document(key, password, scrypt)
    _write_new_file(path, msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")
    return key


def load_key(path: StrPath, password: str | None = None) -> LoadedKey:
    """Read and check the key file at `path`, decrypting its seed.

    For an encrypted file with `password=None`, the password comes from `TAIHANG_KEY_PASSWORD`;
    without either, `PasswordRequired` (this function never prompts: the CLI does). A
    development key needs no password; one given is ignored.
    """
    path = Path(path)
    document = _decode_document(path, _read_key_file(path, require_private=True))
    suite, public_key = _decode_public_fields(path, document)
    if document.crypto is None:
        seed = _decode_hex(path, "seed", document.seed or "", suite.seed_bytes)
    else:
        seed = _decrypt_seed(
            path,
            document.crypto,
            _resolve_password(path, password),
            _associated_data(
                document.name, suite.name, document.address, public_key, document.development
            ),
            suite.name,
        )
        if len(seed) != suite.seed_bytes:
            raise KeyFileCorrupted(f"key file {path}: the decrypted seed has the wrong length")
    if suite.public_key_from_seed(seed) != public_key:
        raise KeyFileCorrupted(f"key file {path}: its public key does not match its private key")
    return LoadedKey(
        name=document.name,
        suite=suite.name,
        address=Address(document.address),
        public_key=public_key,
        seed=seed,
        development=document.development,
    )


def load_key_info(path: StrPath) -> KeyInfo:
    """A key file's public fields, checked for consistency, without decrypting anything."""
    path = Path(path)
    document = _decode_document(path, _read_key_file(path, require_private=False))
    suite, public_key = _decode_public_fields(path, document)
    return KeyInfo(
        name=document.name,
        suite=suite.name,
        address=Address(document.address),
        public_key=public_key,
        encrypted=document.crypto is not None,
        development=document.development,
        path=path,
    )


class KeyStore:
    """A directory of key files named `<name>.json`, created with mode 0700 on first use."""

    def __init__(self, directory: StrPath, *, scrypt: ScryptParams = DEFAULT_SCRYPT) -> None:
        self.directory = Path(directory)
        self.scrypt = scrypt

    def path_for(self, name: str) -> Path:
        validate_key_name(name)
        return self.directory / f"{name}{KEY_FILE_SUFFIX}"

    def new(
        self,
        name: str,
        password: str | None,
        suite: str = "ed25519",
        *,
        development: bool = False,
    ) -> LoadedKey:
        """Generate a key called `name` and save it; `KeyFileExists` if the name is taken."""
        path = self.path_for(name)
        crypto_suite = get_suite(suite)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise KeyStoreError(
                f"cannot create key directory {self.directory}: {error.strerror}"
            ) from None
        return save_key(
            path,
            generate_seed(crypto_suite),
            name=name,
            suite=crypto_suite,
            password=password,
            development=development,
            scrypt=self.scrypt,
        )

    def list(self) -> builtins.list[KeyInfo]:
        """Every key in the store, sorted by name; a broken file raises, naming itself."""
        if not self.directory.is_dir():
            return []
        paths = sorted(self.directory.glob(f"*{KEY_FILE_SUFFIX}"))
        return [load_key_info(path) for path in paths if is_valid_key_name(path.stem)]

    def load(self, name: str, password: str | None = None) -> LoadedKey:
        path = self.path_for(name)
        try:
            key = load_key(path, password)
        except KeyFileNotFound:
            raise KeyFileNotFound(f"no key named {name!r} in {self.directory}") from None
        if key.name != name:
            # A copied or renamed file: refuse rather than sign as a key the user did not name.
            raise KeyFileCorrupted(f"key file {path} holds the key named {key.name!r}")
        return key


def _build_document(key: LoadedKey, password: str | None, scrypt: ScryptParams) -> _KeyFileDocument:
    document = _KeyFileDocument(
        version=KEY_FILE_VERSION,
        name=key.name,
        suite=key.suite,
        address=key.address,
        public_key=key.public_key.hex(),
        development=key.development,
    )
    if password is None:
        return msgspec.structs.replace(document, warning=DEVELOPMENT_WARNING, seed=key.seed.hex())
    associated_data = _associated_data(
        key.name, key.suite, key.address, key.public_key, key.development
    )
    cipher = _SEED_CIPHERS[get_seed_ciphers(key.suite)[0]]
    crypto = _encrypt_seed(key.seed, password, associated_data, scrypt, cipher)
    return msgspec.structs.replace(document, crypto=crypto)


def _associated_data(
    name: str, suite: str, address: str, public_key: bytes, development: bool
) -> bytes:
    # Built from decoded values, not the file's raw strings, so hex case cannot matter.
    fields = [AD_DOMAIN, KEY_FILE_VERSION, name, suite, address, public_key.hex(), development]
    return msgspec.json.encode(fields)


def _derive_key(password: str, salt: bytes, params: ScryptParams, length: int) -> bytes:
    # NFC: terminals differ in whether they compose accented characters; the key must not.
    secret = unicodedata.normalize("NFC", password).encode()
    kdf = Scrypt(salt=salt, length=length, n=params.n, r=params.r, p=params.p)
    return kdf.derive(secret)


def _encrypt_seed(
    seed: bytes,
    password: str,
    associated_data: bytes,
    params: ScryptParams,
    cipher: _SeedCipher,
) -> _CryptoSection:
    salt = secrets.token_bytes(SALT_BYTES)
    nonce = secrets.token_bytes(cipher.nonce_bytes)
    key = _derive_key(password, salt, params, cipher.key_bytes)
    try:
        ciphertext = cipher.seal(key, nonce, seed, associated_data)
    except UnsupportedAlgorithm:
        raise KeyStoreError(
            f"cannot encrypt with {cipher.name}: the installed cryptography/OpenSSL lacks it"
        ) from None
    kdfparams = _KdfParams(
        n=params.n, r=params.r, p=params.p, salt=salt.hex(), dklen=cipher.key_bytes
    )
    return _CryptoSection(
        kdf=KDF_NAME,
        kdfparams=kdfparams,
        cipher=cipher.name,
        nonce=nonce.hex(),
        ciphertext=ciphertext.hex(),
    )


def _get_file_cipher(path: Path, crypto: _CryptoSection, suite: str) -> _SeedCipher:
    """The file's cipher, if its suite may use it and its scrypt output length fits it."""
    ciphers = get_seed_ciphers(suite)
    if crypto.kdf != KDF_NAME or crypto.cipher not in ciphers:
        raise KeyFileCorrupted(
            f"key file {path}: its {suite} key is encrypted with kdf {crypto.kdf!r} and cipher "
            f"{crypto.cipher!r}; this Taihang reads {suite} keys encrypted with {KDF_NAME!r} "
            f"and {' or '.join(repr(name) for name in sorted(ciphers))}"
        )
    cipher = _SEED_CIPHERS[crypto.cipher]
    if crypto.kdfparams.dklen != cipher.key_bytes:
        raise KeyFileCorrupted(
            f"key file {path}: kdfparams.dklen must be {cipher.key_bytes} for {cipher.name}"
        )
    return cipher


def _decrypt_seed(
    path: Path, crypto: _CryptoSection, password: str, associated_data: bytes, suite: str
) -> bytes:
    cipher = _get_file_cipher(path, crypto, suite)
    kdfparams = crypto.kdfparams
    try:
        params = ScryptParams(n=kdfparams.n, r=kdfparams.r, p=kdfparams.p)
    except KeyStoreError as error:
        raise KeyFileCorrupted(f"key file {path}: {error.message}") from None
    salt = _decode_hex(path, "crypto.kdfparams.salt", kdfparams.salt, None)
    nonce = _decode_hex(path, "crypto.nonce", crypto.nonce, cipher.nonce_bytes)
    ciphertext = _decode_hex(path, "crypto.ciphertext", crypto.ciphertext, None)
    if len(ciphertext) < cipher.tag_bytes:
        raise KeyFileCorrupted(f"key file {path}: crypto.ciphertext is too short")
    key = _derive_key(password, salt, params, cipher.key_bytes)
    try:
        return cipher.unseal(key, nonce, ciphertext, associated_data)
    except UnsupportedAlgorithm:
        raise KeyStoreError(
            f"key file {path} is encrypted with {cipher.name}, which the installed "
            "cryptography/OpenSSL cannot decrypt; upgrade the cryptography package"
        ) from None
    except InvalidTag:
        # GCM cannot tell a wrong password from altered public fields; the address/public key
        # pair was already checked, so a wrong password is by far the likeliest cause.
        raise WrongPassword(
            f"wrong password for key file {path} "
            "(or its name, address, public key or ciphertext were altered)"
        ) from None


def _resolve_password(path: Path, password: str | None) -> str:
    if password is not None:
        return password
    from_environment = os.environ.get(PASSWORD_ENV)
    if from_environment:
        return from_environment
    raise PasswordRequired(
        f"key file {path} is encrypted: pass its password or set {PASSWORD_ENV} "
        "(it is not set or empty)"
    )


def _read_key_file(path: Path, *, require_private: bool) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileNotFound(f"key file {path} does not exist") from None
    except OSError as error:
        raise KeyStoreError(f"cannot open key file {path}: {error.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        # fstat on the open descriptor: the mode we check is the mode of what we read.
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise KeyFileCorrupted(f"key file {path} is not a regular file")
        if require_private and os.name == "posix" and mode & 0o077:
            raise KeyFileInsecure(
                f"key file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
            )
        data = file.read(KEY_FILE_BYTES_MAX + 1)
    if len(data) > KEY_FILE_BYTES_MAX:
        raise KeyFileCorrupted(f"key file {path} is larger than {KEY_FILE_BYTES_MAX} bytes")
    return data


def _decode_document(path: Path, data: bytes) -> _KeyFileDocument:
    try:
        # The version first, so that a newer file says so instead of failing on its fields.
        version = msgspec.json.decode(data, type=_VersionOnly).version
        if version != KEY_FILE_VERSION:
            raise KeyFileCorrupted(
                f"key file {path} has version {version}; this Taihang reads version "
                f"{KEY_FILE_VERSION}"
            )
        document = msgspec.json.decode(data, type=_KeyFileDocument)
    except msgspec.DecodeError as error:
        raise KeyFileCorrupted(f"key file {path} is corrupted or truncated: {error}") from None
    if (document.seed is None) == (document.crypto is None):
        raise KeyFileCorrupted(f"key file {path} must hold exactly one of 'seed' and 'crypto'")
    if document.crypto is None and not document.development:
        raise KeyFileCorrupted(
            f"key file {path} holds an unencrypted key that is not marked development-only"
        )
    return document


def _decode_public_fields(path: Path, document: _KeyFileDocument) -> tuple[CryptoSuite, bytes]:
    if not is_valid_key_name(document.name):
        raise KeyFileCorrupted(f"key file {path} has an invalid name {document.name!r}")
    try:
        suite = get_suite(document.suite)
    except ConfigurationError as error:
        raise KeyFileCorrupted(f"key file {path}: {error.message}") from None
    public_key = _decode_hex(path, "public_key", document.public_key, suite.public_key_bytes)
    expected = compute_address(suite, public_key)
    if document.address != expected:
        raise KeyFileCorrupted(
            f"key file {path}: address {document.address!r} does not match its public key "
            f"(which has address {expected})"
        )
    return suite, public_key


def _decode_hex(path: Path, name: str, text: str, length: int | None) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise KeyFileCorrupted(f"key file {path}: {name} is not hex") from None
    if length is not None and len(raw) != length:
        raise KeyFileCorrupted(f"key file {path}: {name} is {len(raw)} bytes, expected {length}")
    return raw


def _write_new_file(path: Path, data: bytes) -> None:
    """Write `data` to a new file at `path` with mode 0600: all of it or nothing, durably."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        # 0o600 from creation, so the secret is never readable by others, not even briefly.
        fd = os.open(temporary, flags, 0o600)
    except OSError as error:
        raise KeyStoreError(f"cannot write key file {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        _link_without_overwrite(temporary, path)
        _fsync_directory(path.parent)
    except OSError as error:
        raise KeyStoreError(f"cannot write key file {path}: {error.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _link_without_overwrite(source: Path, target: Path) -> None:
    # rename() would silently replace a file created since our first check; link() fails.
    try:
        os.link(source, target)
    except FileExistsError:
        raise KeyFileExists(f"key file {target} already exists; refusing to overwrite it") from None
    except OSError:
        # A filesystem without hard links: check, then rename (a small race, but only there).
        if os.path.lexists(target):
            raise KeyFileExists(
                f"key file {target} already exists; refusing to overwrite it"
            ) from None
        os.rename(source, target)


def _fsync_directory(directory: Path) -> None:
    # The new name is durable only once its directory is; Windows cannot open directories.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
