"""Key files of the "sm" suite: SM4-GCM, the SM4-CTR + HMAC-SM3 fallback, tampering, cipher and
suite mismatches, and that key files written before SM4 existed still load."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from taihang.crypto import get_suite
from taihang.ledger.transaction import compute_address
from taihang.sdk import seed_ciphers
from taihang.sdk.keys import (
    AD_DOMAIN,
    PASSWORD_ENV,
    KeyFileCorrupted,
    KeyStore,
    KeyStoreError,
    ScryptParams,
    WrongPassword,
    load_key,
    load_key_info,
    save_key,
)
from taihang.sdk.seed_ciphers import CIPHER_SM4_CTR_HMAC, CIPHER_SM4_GCM, get_seed_ciphers

SM = get_suite("sm")
FAST = ScryptParams(n=2**10, r=8, p=1)
SEED = bytes(range(32))
PASSWORD = "国密 password"

# Written by the key store before SM4 support existed: it must keep loading unchanged.
LEGACY_ED25519_PASSWORD = "legacy password"
LEGACY_ED25519_FILE = {
    "version": 1,
    "name": "legacy",
    "suite": "ed25519",
    "address": "56475aa75463474c0285df5dbf2bcab73da65135",
    "public_key": "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",
    "development": False,
    "crypto": {
        "kdf": "scrypt",
        "kdfparams": {
            "n": 1024,
            "r": 8,
            "p": 1,
            "salt": "c431bcf2400c80f5200ea9836773b3a4",
            "dklen": 32,
        },
        "cipher": "aes-256-gcm",
        "nonce": "0df09db1c76961b8ab972d3a",
        "ciphertext": "51a34ab195a0cea1f3a9db42f366ff7992d8c48fc58b6d223a24046c546076ca"
        "98bd19d988f82892fef1b63cc8f5d574",
    },
}


@pytest.fixture(autouse=True)
def _no_password_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


@pytest.fixture
def without_sm4_gcm(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installation whose `cryptography` cannot do SM4-GCM."""
    monkeypatch.setattr(seed_ciphers, "is_sm4_gcm_supported", lambda: False)


def _save_sm(path: Path, *, force_ctr: bool, monkeypatch: pytest.MonkeyPatch) -> Path:
    with monkeypatch.context() as patch:
        if force_ctr:
            patch.setattr(seed_ciphers, "is_sm4_gcm_supported", lambda: False)
        save_key(path, SEED, name="alice", suite="sm", password=PASSWORD, scrypt=FAST)
    return path


@pytest.fixture(params=[CIPHER_SM4_GCM, CIPHER_SM4_CTR_HMAC])
def sm_path(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    force_ctr = request.param == CIPHER_SM4_CTR_HMAC
    return _save_sm(tmp_path / "alice.json", force_ctr=force_ctr, monkeypatch=monkeypatch)


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _flip_hex(text: str, index: int) -> str:
    raw = bytearray(bytes.fromhex(text))
    raw[index] ^= 0x01
    return raw.hex()


def _scrypt(document: dict[str, Any]) -> bytes:
    params = document["crypto"]["kdfparams"]
    kdf = Scrypt(
        salt=bytes.fromhex(params["salt"]),
        length=params["dklen"],
        n=params["n"],
        r=params["r"],
        p=params["p"],
    )
    return kdf.derive(PASSWORD.encode())


def _associated_data(document: dict[str, Any]) -> bytes:
    fields = [
        AD_DOMAIN,
        document["version"],
        document["name"],
        document["suite"],
        document["address"],
        document["public_key"],
        document["development"],
    ]
    return msgspec.json.encode(fields)


def test_sm4_gcm_is_available_here() -> None:
    # The development machine's cryptography (OpenSSL 3) has it; the fallback is tested below.
    assert seed_ciphers.is_sm4_gcm_supported()
    assert get_seed_ciphers("sm")[0] == CIPHER_SM4_GCM
    assert get_seed_ciphers("ed25519") == ("aes-256-gcm",)


def test_save_key_sm_then_load_round_trips(sm_path: Path) -> None:
    key = load_key(sm_path, PASSWORD)
    public_key = SM.public_key_from_seed(SEED)
    assert key.seed == SEED
    assert key.suite == "sm"
    assert key.public_key == public_key
    assert len(key.public_key) == 65
    assert key.address == compute_address(SM, public_key)
    assert SM.verify(key.public_key, b"message", SM.sign(key.seed, b"message"))
    info = load_key_info(sm_path)
    assert (info.suite, info.encrypted, info.public_key) == ("sm", True, public_key)


def test_save_key_sm_uses_sm4_gcm_with_a_16_byte_key(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    save_key(path, SEED, name="a", suite="sm", password=PASSWORD, scrypt=FAST)
    document = json.loads(path.read_text())
    crypto = document["crypto"]
    assert crypto["cipher"] == "sm4-gcm"
    assert crypto["kdf"] == "scrypt"
    assert crypto["kdfparams"]["dklen"] == 16
    assert len(bytes.fromhex(crypto["nonce"])) == 12
    assert SEED.hex() not in path.read_text()
    # The documented format, decrypted independently of the key store.
    sealed = bytes.fromhex(crypto["ciphertext"])
    cipher = Cipher(
        algorithms.SM4(_scrypt(document)),
        modes.GCM(bytes.fromhex(crypto["nonce"]), sealed[-16:]),
    )
    decryptor = cipher.decryptor()
    decryptor.authenticate_additional_data(_associated_data(document))
    assert decryptor.update(sealed[:-16]) + decryptor.finalize() == SEED


@pytest.mark.usefixtures("without_sm4_gcm")
def test_save_key_sm_falls_back_to_sm4_ctr_with_hmac_sm3(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    save_key(path, SEED, name="a", suite="sm", password=PASSWORD, scrypt=FAST)
    document = json.loads(path.read_text())
    crypto = document["crypto"]
    assert crypto["cipher"] == "sm4-ctr+hmac-sm3"
    assert crypto["kdfparams"]["dklen"] == 48
    nonce, sealed = bytes.fromhex(crypto["nonce"]), bytes.fromhex(crypto["ciphertext"])
    assert len(nonce) == 16
    assert len(sealed) == 32 + 32
    # The documented format: SM4 key || HMAC key; MAC over len(ad) || ad || nonce || ciphertext.
    key = _scrypt(document)
    ciphertext, tag = sealed[:-32], sealed[-32:]
    associated_data = _associated_data(document)
    mac_input = len(associated_data).to_bytes(8, "big") + associated_data + nonce + ciphertext
    assert hmac.new(key[16:], mac_input, "sm3").digest() == tag
    decryptor = Cipher(algorithms.SM4(key[:16]), modes.CTR(nonce)).decryptor()
    assert decryptor.update(ciphertext) + decryptor.finalize() == SEED
    assert load_key(path, PASSWORD).seed == SEED


def test_load_key_reads_a_ctr_file_where_gcm_is_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save_sm(tmp_path / "a.json", force_ctr=True, monkeypatch=monkeypatch)
    assert seed_ciphers.is_sm4_gcm_supported()
    assert load_key(path, PASSWORD).seed == SEED


def test_load_key_sm_wrong_password(sm_path: Path) -> None:
    with pytest.raises(WrongPassword, match=f"wrong password for key file {sm_path}"):
        load_key(sm_path, "not the password")


@pytest.mark.parametrize("index", [0, 31, -1])
def test_load_key_sm_tampered_ciphertext_or_tag(sm_path: Path, index: int) -> None:
    def tamper(document: dict[str, Any]) -> None:
        crypto = document["crypto"]
        crypto["ciphertext"] = _flip_hex(crypto["ciphertext"], index)

    _edit(sm_path, tamper)
    with pytest.raises(WrongPassword, match="altered"):
        load_key(sm_path, PASSWORD)


def test_load_key_sm_tampered_nonce(sm_path: Path) -> None:
    def tamper(document: dict[str, Any]) -> None:
        document["crypto"]["nonce"] = _flip_hex(document["crypto"]["nonce"], 0)

    _edit(sm_path, tamper)
    with pytest.raises(WrongPassword):
        load_key(sm_path, PASSWORD)


def test_load_key_sm_renamed_inside_fails_decryption(sm_path: Path) -> None:
    _edit(sm_path, lambda document: document.update(name="mallory"))
    with pytest.raises(WrongPassword):
        load_key(sm_path, PASSWORD)


def test_load_key_sm_swapped_public_fields_fail_decryption(sm_path: Path) -> None:
    other = SM.public_key_from_seed(bytes(32))

    def swap(document: dict[str, Any]) -> None:
        document.update(public_key=other.hex(), address=compute_address(SM, other))

    _edit(sm_path, swap)
    with pytest.raises(WrongPassword, match="altered"):
        load_key(sm_path, PASSWORD)


def test_load_key_sm_truncated_ciphertext(sm_path: Path) -> None:
    _edit(sm_path, lambda document: document["crypto"].update(ciphertext="00" * 8))
    with pytest.raises(KeyFileCorrupted, match="too short"):
        load_key(sm_path, PASSWORD)


def test_load_key_sm_nonce_of_the_wrong_length(sm_path: Path) -> None:
    _edit(sm_path, lambda document: document["crypto"].update(nonce="00" * 13))
    with pytest.raises(KeyFileCorrupted, match=r"crypto\.nonce is 13 bytes"):
        load_key(sm_path, PASSWORD)


def test_load_key_sm_wrong_dklen(sm_path: Path) -> None:
    _edit(sm_path, lambda document: document["crypto"]["kdfparams"].update(dklen=32))
    with pytest.raises(KeyFileCorrupted, match="dklen must be"):
        load_key(sm_path, PASSWORD)


def test_load_key_refuses_an_sm_key_file_with_an_aes_cipher(sm_path: Path) -> None:
    _edit(sm_path, lambda document: document["crypto"].update(cipher="aes-256-gcm"))
    with pytest.raises(KeyFileCorrupted, match=r"sm key .*'aes-256-gcm'.*'sm4-ctr\+hmac-sm3'"):
        load_key(sm_path, PASSWORD)


@pytest.mark.parametrize("cipher", [CIPHER_SM4_GCM, CIPHER_SM4_CTR_HMAC])
def test_load_key_refuses_an_ed25519_key_file_with_an_sm4_cipher(
    tmp_path: Path, cipher: str
) -> None:
    path = tmp_path / "bob.json"
    save_key(path, SEED, name="bob", suite="ed25519", password=PASSWORD, scrypt=FAST)
    _edit(path, lambda document: document["crypto"].update(cipher=cipher))
    with pytest.raises(
        KeyFileCorrupted, match=f"ed25519 key .*{re.escape(repr(cipher))}.*'aes-256-gcm'"
    ):
        load_key(path, PASSWORD)


def test_load_key_refuses_an_unknown_cipher(sm_path: Path) -> None:
    _edit(sm_path, lambda document: document["crypto"].update(cipher="sm4-cbc"))
    with pytest.raises(KeyFileCorrupted, match="'sm4-cbc'"):
        load_key(sm_path, PASSWORD)


def test_load_key_sm4_gcm_file_without_sm4_support_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save_sm(tmp_path / "a.json", force_ctr=False, monkeypatch=monkeypatch)

    class NoSm4:
        @staticmethod
        def SM4(key: bytes) -> Any:
            raise UnsupportedAlgorithm("SM4 is not supported by this backend")

    monkeypatch.setattr(seed_ciphers, "algorithms", NoSm4)
    with pytest.raises(KeyStoreError, match="sm4-gcm, which the installed cryptography"):
        load_key(path, PASSWORD)


def test_save_key_without_sm4_support_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoSm4:
        @staticmethod
        def SM4(key: bytes) -> Any:
            raise UnsupportedAlgorithm("SM4 is not supported by this backend")

    monkeypatch.setattr(seed_ciphers, "algorithms", NoSm4)
    monkeypatch.setattr(seed_ciphers, "is_sm4_gcm_supported", lambda: False)
    with pytest.raises(KeyStoreError, match="cannot encrypt with sm4-ctr"):
        save_key(tmp_path / "a.json", SEED, name="a", suite="sm", password=PASSWORD, scrypt=FAST)
    assert not (tmp_path / "a.json").exists()


def test_load_key_still_reads_an_ed25519_file_written_before_sm4(tmp_path: Path) -> None:
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps(LEGACY_ED25519_FILE))
    path.chmod(0o600)
    key = load_key(path, LEGACY_ED25519_PASSWORD)
    assert key.seed == bytes(range(32))
    assert key.suite == "ed25519"


def test_save_key_ed25519_still_writes_aes_256_gcm(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    save_key(path, SEED, name="a", suite="ed25519", password=PASSWORD, scrypt=FAST)
    crypto = json.loads(path.read_text())["crypto"]
    assert (crypto["cipher"], crypto["kdfparams"]["dklen"]) == ("aes-256-gcm", 32)


def test_save_key_sm_development_is_unencrypted(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    save_key(path, SEED, name="dev", suite="sm", password=None, development=True)
    key = load_key(path)
    assert key.seed == SEED
    assert key.public_key == SM.public_key_from_seed(SEED)


def test_key_store_new_sm_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", scrypt=FAST)
    created = store.new("carol", PASSWORD, suite="sm")
    assert store.load("carol", PASSWORD) == created
    assert [(info.name, info.suite) for info in store.list()] == [("carol", "sm")]
    assert json.loads(store.path_for("carol").read_text())["crypto"]["cipher"] == "sm4-gcm"
