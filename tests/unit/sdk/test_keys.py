"""Key files: round trips, encryption, tamper detection, permissions and the key store."""

from __future__ import annotations

import json
import os
import stat
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taihang.crypto import get_suite
from taihang.errors import NotFound, TaihangError
from taihang.ledger.transaction import compute_address
from taihang.sdk.keys import (
    DEFAULT_SCRYPT,
    DEVELOPMENT_WARNING,
    PASSWORD_ENV,
    InvalidKeyName,
    KeyFileCorrupted,
    KeyFileExists,
    KeyFileInsecure,
    KeyFileNotFound,
    KeyStore,
    KeyStoreError,
    PasswordRequired,
    ScryptParams,
    WrongPassword,
    generate_seed,
    load_key,
    load_key_info,
    save_key,
)

SUITE = get_suite("ed25519")
FAST = ScryptParams(n=2**10, r=8, p=1)  # ~1 ms; real keys use DEFAULT_SCRYPT
SEED = bytes(range(32))
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _no_password_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


@pytest.fixture
def encrypted_path(tmp_path: Path) -> Path:
    path = tmp_path / "alice.json"
    save_key(path, SEED, name="alice", suite=SUITE, password=PASSWORD, scrypt=FAST)
    return path


@pytest.fixture
def development_path(tmp_path: Path) -> Path:
    path = tmp_path / "dev.json"
    save_key(path, SEED, name="dev", suite="ed25519", password=None, development=True)
    return path


@pytest.fixture
def umask_zero() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))  # an existing file keeps its mode 0600


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_seed_is_suite_sized_and_fresh() -> None:
    first, second = generate_seed(SUITE), generate_seed(SUITE)
    assert len(first) == SUITE.seed_bytes
    assert first != second


def test_default_scrypt_is_the_documented_cost() -> None:
    assert (DEFAULT_SCRYPT.n, DEFAULT_SCRYPT.r, DEFAULT_SCRYPT.p) == (2**17, 8, 1)


def test_save_key_then_load_key_round_trips_encrypted(encrypted_path: Path) -> None:
    key = load_key(encrypted_path, PASSWORD)
    public_key = SUITE.public_key_from_seed(SEED)
    assert key.seed == SEED
    assert key.name == "alice"
    assert key.suite == "ed25519"
    assert key.public_key == public_key
    assert key.address == compute_address(SUITE, public_key)
    assert not key.development
    signature = SUITE.sign(key.seed, b"message")
    assert SUITE.verify(key.public_key, b"message", signature)


def test_save_key_encrypted_file_holds_no_seed(encrypted_path: Path) -> None:
    text = encrypted_path.read_text()
    document = json.loads(text)
    assert SEED.hex() not in text
    assert "seed" not in document
    assert document["version"] == 1
    assert document["crypto"]["kdf"] == "scrypt"
    assert document["crypto"]["cipher"] == "aes-256-gcm"
    assert document["crypto"]["kdfparams"]["dklen"] == 32
    assert document["crypto"]["kdfparams"]["n"] == FAST.n


def test_save_key_returns_what_load_key_reads(tmp_path: Path) -> None:
    path = tmp_path / "bob.json"
    saved = save_key(path, SEED, name="bob", suite=SUITE, password=PASSWORD, scrypt=FAST)
    assert load_key(path, PASSWORD) == saved


def test_save_key_development_is_unencrypted_and_marked(development_path: Path) -> None:
    document = json.loads(development_path.read_text())
    assert document["development"] is True
    assert document["warning"] == DEVELOPMENT_WARNING
    assert document["seed"] == SEED.hex()
    assert "crypto" not in document
    key = load_key(development_path)
    assert key.seed == SEED
    assert key.development


def test_save_key_refuses_no_password_unless_development(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="only development keys"):
        save_key(tmp_path / "a.json", SEED, name="a", suite=SUITE, password=None)
    assert not (tmp_path / "a.json").exists()


def test_save_key_refuses_empty_password(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="empty password"):
        save_key(tmp_path / "a.json", SEED, name="a", suite=SUITE, password="", scrypt=FAST)


def test_save_key_refuses_wrong_seed_length(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="32 bytes"):
        save_key(tmp_path / "a.json", b"short", name="a", suite=SUITE, password=PASSWORD)


@pytest.mark.usefixtures("umask_zero")
def test_save_key_file_mode_is_0600_even_with_umask_zero(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    save_key(path, SEED, name="a", suite=SUITE, password=PASSWORD, scrypt=FAST)
    assert _mode(path) == 0o600


def test_save_key_refuses_to_overwrite(encrypted_path: Path) -> None:
    before = encrypted_path.read_bytes()
    with pytest.raises(KeyFileExists, match="already exists"):
        save_key(encrypted_path, bytes(32), name="alice", suite=SUITE, password="x", scrypt=FAST)
    assert encrypted_path.read_bytes() == before


def test_save_key_leaves_no_temporary_file(encrypted_path: Path) -> None:
    assert sorted(p.name for p in encrypted_path.parent.iterdir()) == ["alice.json"]


def test_save_key_into_missing_directory_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="cannot write key file"):
        path = tmp_path / "no" / "a.json"
        save_key(path, SEED, name="a", suite=SUITE, password=None, development=True)


def test_load_key_wrong_password(encrypted_path: Path) -> None:
    with pytest.raises(WrongPassword, match=f"wrong password for key file {encrypted_path}"):
        load_key(encrypted_path, "not the password")


def test_load_key_password_from_environment(
    encrypted_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    assert load_key(encrypted_path).seed == SEED


def test_load_key_explicit_password_wins_over_environment(
    encrypted_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "something else")
    assert load_key(encrypted_path, PASSWORD).seed == SEED


def test_load_key_without_any_password_says_so(encrypted_path: Path) -> None:
    with pytest.raises(PasswordRequired, match=PASSWORD_ENV):
        load_key(encrypted_path)


def test_load_key_normalizes_unicode_passwords(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    composed = unicodedata.normalize("NFC", "pässwörd")
    save_key(path, SEED, name="a", suite=SUITE, password=composed, scrypt=FAST)
    assert load_key(path, unicodedata.normalize("NFD", composed)).seed == SEED


def test_load_key_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileNotFound, match="does not exist") as caught:
        load_key(tmp_path / "missing.json", PASSWORD)
    assert isinstance(caught.value, NotFound)


@pytest.mark.parametrize("keep_bytes", [0, 1, 40, -3])
def test_load_key_truncated_file(encrypted_path: Path, keep_bytes: int) -> None:
    data = encrypted_path.read_bytes()
    encrypted_path.write_bytes(data[:keep_bytes])
    with pytest.raises(KeyFileCorrupted, match=f"key file {encrypted_path}.*corrupted"):
        load_key(encrypted_path, PASSWORD)


def test_load_key_wrong_version(encrypted_path: Path) -> None:
    _edit(encrypted_path, lambda document: document.update(version=2))
    with pytest.raises(KeyFileCorrupted, match="has version 2"):
        load_key(encrypted_path, PASSWORD)


def test_load_key_wrong_field_type(encrypted_path: Path) -> None:
    _edit(encrypted_path, lambda document: document.update(development="no"))
    with pytest.raises(KeyFileCorrupted, match="development"):
        load_key(encrypted_path, PASSWORD)


def test_load_key_tampered_address(encrypted_path: Path) -> None:
    _edit(encrypted_path, lambda document: document.update(address="00" * 20))
    with pytest.raises(KeyFileCorrupted, match="does not match its public key"):
        load_key(encrypted_path, PASSWORD)


def test_load_key_swapped_public_fields_fail_decryption(encrypted_path: Path) -> None:
    other = SUITE.public_key_from_seed(bytes(32))

    def swap(document: dict[str, Any]) -> None:
        document.update(public_key=other.hex(), address=compute_address(SUITE, other))

    _edit(encrypted_path, swap)
    with pytest.raises(WrongPassword, match="altered"):
        load_key(encrypted_path, PASSWORD)


def test_load_key_renamed_inside_fails_decryption(encrypted_path: Path) -> None:
    _edit(encrypted_path, lambda document: document.update(name="mallory"))
    with pytest.raises(WrongPassword):
        load_key(encrypted_path, PASSWORD)


def test_load_key_development_seed_must_match_public_key(development_path: Path) -> None:
    _edit(development_path, lambda document: document.update(seed="11" * 32))
    with pytest.raises(KeyFileCorrupted, match="public key does not match its private key"):
        load_key(development_path)


def test_load_key_refuses_unencrypted_key_not_marked_development(
    development_path: Path,
) -> None:
    _edit(development_path, lambda document: document.update(development=False))
    with pytest.raises(KeyFileCorrupted, match="not marked development-only"):
        load_key(development_path)


def test_load_key_refuses_hostile_scrypt_cost(encrypted_path: Path) -> None:
    _edit(encrypted_path, lambda document: document["crypto"]["kdfparams"].update(n=2**30))
    with pytest.raises(KeyFileCorrupted, match="MiB"):
        load_key(encrypted_path, PASSWORD)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_load_key_refuses_file_readable_by_others(development_path: Path, mode: int) -> None:
    development_path.chmod(mode)
    with pytest.raises(KeyFileInsecure, match=f"chmod 600 {development_path}"):
        load_key(development_path)


def test_load_key_info_reads_without_password(encrypted_path: Path) -> None:
    info = load_key_info(encrypted_path)
    assert info.name == "alice"
    assert info.encrypted
    assert not info.development
    assert info.public_key == SUITE.public_key_from_seed(SEED)


def test_loaded_key_repr_hides_the_seed(development_path: Path) -> None:
    key = load_key(development_path)
    assert SEED.hex() not in repr(key)
    assert repr(SEED) not in repr(key)


def test_key_store_new_list_and_load(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", scrypt=FAST)
    alice = store.new("alice", PASSWORD)
    dev = store.new("dev-1", None, development=True)
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert _mode(store.path_for("alice")) == 0o600
    infos = store.list()
    assert [(i.name, i.address, i.encrypted, i.development) for i in infos] == [
        ("alice", alice.address, True, False),
        ("dev-1", dev.address, False, True),
    ]
    assert store.load("alice", PASSWORD) == alice
    assert store.load("dev-1") == dev


def test_key_store_list_of_missing_directory_is_empty(tmp_path: Path) -> None:
    assert KeyStore(tmp_path / "nothing").list() == []


def test_key_store_new_refuses_existing_name(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, scrypt=FAST)
    store.new("alice", PASSWORD)
    with pytest.raises(KeyFileExists):
        store.new("alice", PASSWORD)


def test_key_store_load_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(KeyFileNotFound, match="no key named 'carol'"):
        KeyStore(tmp_path).load("carol")


def test_key_store_load_refuses_copied_file(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, scrypt=FAST)
    store.new("alice", None, development=True)
    store.path_for("bob").write_bytes(store.path_for("alice").read_bytes())
    store.path_for("bob").chmod(0o600)
    with pytest.raises(KeyFileCorrupted, match="holds the key named 'alice'"):
        store.load("bob")


@pytest.mark.parametrize("name", ["", "Alice", "-a", "_a", "a b", "a.json", "../a", "a" * 65])
def test_key_store_rejects_invalid_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidKeyName):
        KeyStore(tmp_path).path_for(name)


@pytest.mark.parametrize("name", ["a", "0", "alice_2", "node-1", "a" * 64])
def test_key_store_accepts_valid_names(tmp_path: Path, name: str) -> None:
    assert KeyStore(tmp_path).path_for(name) == tmp_path / f"{name}.json"


def test_errors_are_taihang_errors() -> None:
    assert issubclass(KeyStoreError, TaihangError)
    for error in (WrongPassword, KeyFileCorrupted, KeyFileInsecure, PasswordRequired):
        assert issubclass(error, KeyStoreError)
