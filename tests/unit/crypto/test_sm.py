"""Unit tests for `taihang.crypto.sm`: SM3 and SM2 vectors, the seed rule, DER checks, a verify
that never raises, transactions under the suite, and cross-checks with the openssl command."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taihang.codec import decode, encode
from taihang.constants import TAG_TX
from taihang.crypto import get_suite, known_suites
from taihang.crypto import sm as sm_module
from taihang.crypto.ed25519 import ED25519
from taihang.crypto.sm import (
    SM,
    SM2_DEFAULT_ID,
    SM2_ORDER,
    compute_private_key,
    decode_signature,
    encode_signature,
)
from taihang.errors import InvalidInput, InvalidSignature, InvalidTransaction
from taihang.ledger.transaction import (
    TxEnvelope,
    build_body,
    compute_address,
    decode_transaction,
    sign_body,
    verify_transaction_signature,
)

N = SM2_ORDER
P = 0xFFFFFFFE_FFFFFFFF_FFFFFFFF_FFFFFFFF_FFFFFFFF_00000000_FFFFFFFF_FFFFFFFF  # field prime
B = 0x28E9FA9E_9D9F5E34_4D5A9E4B_CF6509A7_F39789F5_15AB8F92_DDBCBD41_4D940E93  # y² = x³ - 3x + b
MESSAGE = b"taihang/test/v1 message"

# GM/T 0003.5-2012 Annex A (= GB/T 32918.5-2017 Annex A): the signature example on the
# recommended curve with the default ID 1234567812345678 and the message "message digest".
# The annex also gives k = 59276E27...BC21 and e = SM3(Z || M) = F0B43E94...8640, so the
# signature is deterministic there. (The GB/T 32918.2 examples use a test curve and the ID
# ALICE123@YAHOO.COM, so they do not apply to a suite fixed to the recommended curve and the
# default ID.)
VECTOR_PRIVATE_KEY = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
VECTOR_PUBLIC_KEY = (
    "04"
    "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)
VECTOR_MESSAGE = b"message digest"
VECTOR_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
VECTOR_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA

SEED = bytes(range(32))


def _public_key() -> bytes:
    return SM.public_key_from_seed(SEED)


# ----------------------------------------------------------------------------- SM3


@pytest.mark.parametrize(
    ("message", "digest"),
    [
        # GB/T 32905-2016 Annex A.1 and A.2.
        (b"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
        (b"abcd" * 16, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"),
    ],
)
def test_hash_matches_the_gbt_32905_vectors(message: bytes, digest: str) -> None:
    assert SM.hash(message).hex() == digest


def test_tagged_hash_is_sm3_of_tag_then_data() -> None:
    assert SM.tagged_hash(b"taihang/tx/v1", b"body") == SM.hash(b"taihang/tx/v1body")
    assert SM.tagged_hash(b"tag", b"") == hashlib.new("sm3", b"tag").digest()


def test_get_suite_knows_sm() -> None:
    assert "sm" in known_suites()
    assert get_suite("sm") is SM
    assert SM.name == "sm"
    assert (SM.public_key_bytes, SM.seed_bytes) == (65, 32)
    assert (SM.signature_bytes_min, SM.signature_bytes_max, SM.signature_bytes) == (8, 72, 72)


# ----------------------------------------------------------------------------- SM2 vector


def test_public_key_from_seed_matches_the_published_key() -> None:
    # The seed rule maps a valid private key to itself, so the published d is the seed.
    assert SM.public_key_from_seed(bytes.fromhex(VECTOR_PRIVATE_KEY)).hex().upper() == (
        VECTOR_PUBLIC_KEY
    )


def test_verify_accepts_the_published_signature() -> None:
    public_key = bytes.fromhex(VECTOR_PUBLIC_KEY)
    signature = encode_signature(VECTOR_R, VECTOR_S)
    assert SM.verify(public_key, VECTOR_MESSAGE, signature)
    assert not SM.verify(public_key, b"message digesT", signature)
    assert not SM.verify(public_key, VECTOR_MESSAGE, encode_signature(VECTOR_R + 1, VECTOR_S))


def test_default_id_gives_the_annex_digest() -> None:
    # e = SM3(Z || M) with Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA): what the suite
    # signs under the default ID, computed here independently of OpenSSL.
    gx = 0x32C4AE2C_1F198119_5F990446_6A39C994_8FE30BBF_F2660BE1_715A4589_334C74C7
    gy = 0xBC3736A2_F4F6779C_59BDCEE3_6B692153_D0A9877C_C62A4740_02DF32E5_2139F0A0
    entl = (8 * len(SM2_DEFAULT_ID)).to_bytes(2, "big")
    curve = b"".join(value.to_bytes(32, "big") for value in (P - 3, B, gx, gy))
    z = hashlib.new("sm3", entl + SM2_DEFAULT_ID + curve + bytes.fromhex(VECTOR_PUBLIC_KEY)[1:])
    e = hashlib.new("sm3", z.digest() + VECTOR_MESSAGE).hexdigest()
    assert e == "f0b43e94ba45accaace692ed534382eb17e6ab5a19ce7b31f4486fdfc0d28640"


def test_verify_rejects_the_negated_s_so_sm2_needs_no_low_s_rule() -> None:
    # Unlike ECDSA, (r, n - s) is not a second valid signature: SM2 is not malleable that way.
    public_key = bytes.fromhex(VECTOR_PUBLIC_KEY)
    assert not SM.verify(public_key, VECTOR_MESSAGE, encode_signature(VECTOR_R, N - VECTOR_S))


# ----------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("seed_int", "private_key"),
    [
        (0, N - 2),
        (1, 1),
        (12345, 12345),
        (N - 2, N - 2),
        (N - 1, 1),
        (N, 2),
        (2**256 - 1, 1 + (2**256 - 2) % (N - 2)),
    ],
)
def test_compute_private_key_maps_every_seed_into_1_to_n_minus_2(
    seed_int: int, private_key: int
) -> None:
    assert compute_private_key(seed_int.to_bytes(32, "big")) == private_key


@pytest.mark.parametrize("seed_int", [0, 1, N - 2, N - 1, N, 2**256 - 1])
def test_public_key_from_seed_accepts_every_edge_seed(seed_int: int) -> None:
    seed = seed_int.to_bytes(32, "big")
    public_key = SM.public_key_from_seed(seed)
    assert len(public_key) == 65
    assert public_key[0] == 0x04
    assert SM.verify(public_key, MESSAGE, SM.sign(seed, MESSAGE))


def test_public_key_from_seed_is_deterministic_and_distinct() -> None:
    assert SM.public_key_from_seed(SEED) == SM.public_key_from_seed(bytes(SEED))
    assert SM.public_key_from_seed(SEED) != SM.public_key_from_seed(bytes(32))


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_seed_of_the_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SM.public_key_from_seed(bytes(length))
    with pytest.raises(ValueError, match="32 bytes"):
        SM.sign(bytes(length), MESSAGE)


def test_compute_address_is_the_first_20_bytes_of_sm3_of_the_public_key() -> None:
    public_key = _public_key()
    expected = hashlib.new("sm3", public_key).digest()[:20].hex()
    assert compute_address(SM, public_key) == expected
    assert len(expected) == 40


# ----------------------------------------------------------------------------- sign / verify


def test_sign_then_verify_round_trips_for_random_keys() -> None:
    for _ in range(20):
        seed = secrets.token_bytes(32)
        message = secrets.token_bytes(secrets.randbelow(300))
        signature = SM.sign(seed, message)
        assert 8 <= len(signature) <= 72
        assert decode_signature(signature) is not None
        assert SM.verify(SM.public_key_from_seed(seed), message, signature)


def test_sign_is_randomised_and_both_signatures_verify() -> None:
    first, second = SM.sign(SEED, MESSAGE), SM.sign(SEED, MESSAGE)
    assert first != second
    assert SM.verify(_public_key(), MESSAGE, first)
    assert SM.verify(_public_key(), MESSAGE, second)


def test_verify_rejects_another_message_key_or_tampered_signature() -> None:
    signature = SM.sign(SEED, MESSAGE)
    assert not SM.verify(_public_key(), MESSAGE + b"!", signature)
    assert not SM.verify(SM.public_key_from_seed(bytes(32)), MESSAGE, signature)
    r, s = decode_signature(signature) or (0, 0)
    assert not SM.verify(_public_key(), MESSAGE, encode_signature(r, (s + 1) % N))
    assert not SM.verify(_public_key(), MESSAGE, encode_signature(r ^ 1, s))


def test_verify_from_a_thread_pool_matches_sequential_results() -> None:
    seeds = [secrets.token_bytes(32) for _ in range(40)]
    cases = []
    for index, seed in enumerate(seeds):
        message = MESSAGE if index % 3 else MESSAGE + b"?"  # every third one is invalid
        cases.append((SM.public_key_from_seed(seed), message, SM.sign(seed, MESSAGE)))
    expected = [SM.verify(*case) for case in cases]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            # Evictions while other threads verify: an `_Key` outlives the cache entry.
            sm_module._load_public_key.cache_clear()
            assert list(pool.map(lambda case: SM.verify(*case), cases)) == expected


# ----------------------------------------------------------------------------- DER


@given(st.integers(1, N - 1), st.integers(1, N - 1))
def test_encode_signature_then_decode_round_trips(r: int, s: int) -> None:
    signature = encode_signature(r, s)
    assert 8 <= len(signature) <= 72
    assert decode_signature(signature) == (None if (r + s) % N == 0 else (r, s))


def _der(*integers: bytes, tag: int = 0x30, extra: bytes = b"") -> bytes:
    body = b"".join(bytes([0x02, len(value)]) + value for value in integers) + extra
    return bytes([tag, len(body)]) + body


R32 = VECTOR_R.to_bytes(32, "big")  # top bit set: needs a leading zero byte in DER
S32 = VECTOR_S.to_bytes(32, "big")
MALFORMED_SIGNATURES = {
    "empty": b"",
    "seven bytes": bytes.fromhex("30050201010201"),
    "73 bytes": _der(b"\x00" + R32, b"\x00" + S32) + b"\x00",
    "raw r||s": R32 + S32,
    "not a sequence": _der(b"\x00" + R32, b"\x00" + S32, tag=0x31),
    "negative r": _der(R32, b"\x00" + S32),
    "r with a needless zero byte": _der(b"\x00\x01", b"\x01"),
    "r zero": _der(b"\x00", b"\x01"),
    "s zero": _der(b"\x01", b"\x00"),
    "r equal to n": _der(b"\x00" + N.to_bytes(32, "big"), b"\x01"),
    "s equal to n": _der(b"\x01", b"\x00" + N.to_bytes(32, "big")),
    "r + s equal to n": _der(b"\x01", b"\x00" + (N - 1).to_bytes(32, "big")),
    "trailing bytes": _der(b"\x01", b"\x01", extra=b"\x00"),
    "one integer": _der(b"\x00" + R32),
    "three integers": _der(b"\x01", b"\x01", b"\x01"),
    "long-form length": bytes([0x30, 0x81, 0x06]) + _der(b"\x01", b"\x01")[2:],
    "indefinite length": bytes([0x30, 0x80]) + _der(b"\x01", b"\x01")[2:] + b"\x00\x00",
    "sequence length too long": bytes([0x30, 0x07]) + _der(b"\x01", b"\x01")[2:],
    "integer length past the end": bytes.fromhex("300602010102050101"),
    "integer of 34 bytes": _der(b"\x00" * 2 + R32, b"\x01"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_SIGNATURES))
def test_decode_signature_rejects_malformed_der(name: str) -> None:
    assert decode_signature(MALFORMED_SIGNATURES[name]) is None


@pytest.mark.parametrize("name", sorted(MALFORMED_SIGNATURES))
def test_verify_rejects_malformed_der_without_raising(name: str) -> None:
    assert SM.verify(_public_key(), MESSAGE, MALFORMED_SIGNATURES[name]) is False


def test_decode_signature_accepts_the_shortest_and_longest_forms() -> None:
    assert decode_signature(bytes.fromhex("3006020101020101")) == (1, 1)
    longest = _der(b"\x00" + R32, b"\x00" + S32)
    assert len(longest) == 72
    assert decode_signature(longest) == (VECTOR_R, VECTOR_S)


# ----------------------------------------------------------------------------- bad keys


def _point(x: int, y: int) -> bytes:
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _smallest_point() -> tuple[int, int]:
    """The curve point with the smallest x (p = 3 mod 4, so a square root is one power)."""
    for x in range(1, 1000):
        rhs = (x**3 - 3 * x + B) % P
        y = pow(rhs, (P + 1) // 4, P)
        if y * y % P == rhs:
            return x, y
    raise AssertionError("no point with a small x")


def _not_on_curve() -> bytes:
    x, y = _smallest_point()
    return _point(x, (y + 1) % P)


def _x_plus_p() -> bytes:
    # The same point with x written as x + p (< 2**256 since x is small): not canonical.
    x, y = _smallest_point()
    return _point(x + P, y)


MALFORMED_PUBLIC_KEYS = {
    "empty": b"",
    "64 bytes, no prefix": bytes.fromhex(VECTOR_PUBLIC_KEY)[1:],
    "66 bytes": bytes.fromhex(VECTOR_PUBLIC_KEY) + b"\x00",
    "compressed": bytes([0x02 + (bytes.fromhex(VECTOR_PUBLIC_KEY)[-1] & 1)])
    + bytes.fromhex(VECTOR_PUBLIC_KEY)[1:33],
    "hybrid": bytes([0x06 + (bytes.fromhex(VECTOR_PUBLIC_KEY)[-1] & 1)])
    + bytes.fromhex(VECTOR_PUBLIC_KEY)[1:],
    "prefix zero": b"\x00" + bytes.fromhex(VECTOR_PUBLIC_KEY)[1:],
    "all zero": b"\x04" + bytes(64),
    "not on the curve": _not_on_curve(),
    "x plus p": _x_plus_p(),
    "ed25519 key": ED25519.public_key_from_seed(SEED),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_PUBLIC_KEYS))
def test_verify_rejects_malformed_public_keys_without_raising(name: str) -> None:
    signature = encode_signature(VECTOR_R, VECTOR_S)
    assert SM.verify(MALFORMED_PUBLIC_KEYS[name], VECTOR_MESSAGE, signature) is False


def test_load_public_key_checks_the_point_in_openssl() -> None:
    x, y = _smallest_point()
    assert sm_module._load_public_key(_point(x, y)) is not None
    assert sm_module._load_public_key(_point(x, (y + 1) % P)) is None  # not on the curve
    assert sm_module._load_public_key(_point(x + P, y)) is None  # coordinate not below p
    assert sm_module._load_public_key(b"\x04" + bytes(64)) is None


@pytest.mark.parametrize(
    "arguments",
    [
        (None, MESSAGE, b"\x30"),
        (b"\x04" * 65, None, encode_signature(1, 1)),
        (b"\x04" * 65, MESSAGE, None),
        ("04" * 65, MESSAGE, encode_signature(1, 1)),
        (65, MESSAGE, encode_signature(1, 1)),
    ],
)
def test_verify_returns_false_for_arguments_that_are_not_bytes(arguments: tuple[Any, ...]) -> None:
    assert SM.verify(*arguments) is False


def test_verify_rejects_an_ed25519_signature() -> None:
    signature = ED25519.sign(SEED, MESSAGE)
    assert SM.verify(_public_key(), MESSAGE, signature) is False
    assert ED25519.verify(ED25519.public_key_from_seed(SEED), MESSAGE, SM.sign(SEED, MESSAGE)) is (
        False
    )


# ----------------------------------------------------------------------------- transactions


def _signed_tx(suite: Any, seed: bytes = SEED) -> bytes:
    body = build_body(
        channel="main",
        sender_public_key=suite.public_key_from_seed(seed),
        nonce=0,
        contract="kv",
        method="put",
        args=["key", "value"],
        gas_limit=100_000,
        expires_at_height=10,
    )
    return sign_body(body, seed, suite)


def test_transaction_signed_with_sm_decodes_and_verifies() -> None:
    tx = decode_transaction(_signed_tx(SM), SM)
    verify_transaction_signature(tx, SM)
    assert 8 <= len(tx.signature) <= 72
    assert tx.sender == compute_address(SM, _public_key())
    assert tx.id == SM.tagged_hash(TAG_TX, tx.body_bytes)
    assert SM.verify(_public_key(), TAG_TX + tx.body_bytes, tx.signature)


def test_ed25519_transaction_is_rejected_by_the_sm_suite() -> None:
    with pytest.raises(InvalidTransaction, match="must be 65 bytes for suite sm, got 32"):
        decode_transaction(_signed_tx(ED25519), SM)


def test_sm_transaction_is_rejected_by_the_ed25519_suite() -> None:
    with pytest.raises(InvalidInput, match="for suite ed25519") as caught:
        decode_transaction(_signed_tx(SM), ED25519)
    # A 64-byte DER signature is possible but rare; then the public key length rejects it.
    assert isinstance(caught.value, InvalidSignature | InvalidTransaction)


@pytest.mark.parametrize("length", [0, 7, 73, 100])
def test_decode_transaction_rejects_sm_signature_lengths_outside_8_to_72(length: int) -> None:
    envelope = decode(_signed_tx(SM), TxEnvelope)
    raw = encode(TxEnvelope(body=envelope.body, signature=b"\x30" * length))
    with pytest.raises(InvalidSignature, match="must be 8 to 72 bytes for suite sm"):
        decode_transaction(raw, SM)


@pytest.mark.parametrize("length", [8, 64, 70, 71, 72])
def test_decode_transaction_leaves_well_sized_sm_signatures_to_verification(length: int) -> None:
    envelope = decode(_signed_tx(SM), TxEnvelope)
    tx = decode_transaction(encode(TxEnvelope(envelope.body, b"\x30" * length)), SM)
    with pytest.raises(InvalidSignature, match="does not verify"):
        verify_transaction_signature(tx, SM)


# ----------------------------------------------------------------------------- openssl CLI

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not on PATH")
SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")
ID_OPTION = f"distid:{SM2_DEFAULT_ID.decode()}"


def _openssl(*arguments: str | Path) -> subprocess.CompletedProcess[bytes]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *map(str, arguments)], capture_output=True, timeout=30)


def _private_key_der(seed: bytes) -> bytes:
    # RFC 5915 ECPrivateKey on the SM2 curve, without the public key (openssl computes it).
    d = compute_private_key(seed).to_bytes(32, "big")
    return bytes.fromhex("30310201010420") + d + bytes.fromhex("a00a06082a811ccf5501822d")


@needs_openssl
def test_openssl_derives_the_same_public_key_from_the_seed(tmp_path: Path) -> None:
    seed = os.urandom(32)
    (tmp_path / "key.der").write_bytes(_private_key_der(seed))
    result = _openssl(
        "pkey", "-inform", "DER", "-in", tmp_path / "key.der", "-pubout", "-outform", "DER"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == SPKI_PREFIX + SM.public_key_from_seed(seed)


@needs_openssl
@pytest.mark.parametrize("tool", ["pkeyutl", "dgst"])
def test_suite_verifies_what_openssl_signs(tmp_path: Path, tool: str) -> None:
    key, message, signature = tmp_path / "key.pem", tmp_path / "message", tmp_path / "signature"
    assert _openssl("genpkey", "-algorithm", "SM2", "-out", key).returncode == 0
    message.write_bytes(MESSAGE)
    arguments: list[str | Path]
    if tool == "pkeyutl":
        arguments = ["pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", key]
        result = _openssl(*arguments, "-in", message, "-out", signature, "-pkeyopt", ID_OPTION)
    else:
        arguments = ["dgst", "-sm3", "-sign", key, "-sigopt", ID_OPTION]
        result = _openssl(*arguments, "-out", signature, message)
    assert result.returncode == 0, result.stderr
    spki = _openssl("pkey", "-in", key, "-pubout", "-outform", "DER").stdout
    assert spki.startswith(SPKI_PREFIX)
    public_key = spki[len(SPKI_PREFIX) :]
    assert SM.verify(public_key, MESSAGE, signature.read_bytes())
    assert not SM.verify(public_key, MESSAGE + b"!", signature.read_bytes())


@needs_openssl
def test_openssl_verifies_what_the_suite_signs(tmp_path: Path) -> None:
    seed = os.urandom(32)
    public_key, message, signature = tmp_path / "pub.der", tmp_path / "m", tmp_path / "sig"
    public_key.write_bytes(SPKI_PREFIX + SM.public_key_from_seed(seed))
    message.write_bytes(MESSAGE)
    signature.write_bytes(SM.sign(seed, MESSAGE))
    verify = ["pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-keyform", "DER"]
    result = _openssl(
        *verify, "-inkey", public_key, "-in", message, "-sigfile", signature, "-pkeyopt", ID_OPTION
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert b"Signature Verified Successfully" in result.stdout
    message.write_bytes(MESSAGE + b"!")
    result = _openssl(
        *verify, "-inkey", public_key, "-in", message, "-sigfile", signature, "-pkeyopt", ID_OPTION
    )
    assert result.returncode != 0


@needs_openssl
def test_openssl_signs_with_the_private_key_the_seed_rule_gives(tmp_path: Path) -> None:
    seed = (N + 3).to_bytes(32, "big")  # above n - 2: the rule wraps it round to d = 5
    key, message, signature = tmp_path / "key.der", tmp_path / "m", tmp_path / "sig"
    key.write_bytes(_private_key_der(seed))
    message.write_bytes(MESSAGE)
    sign: list[str | Path] = ["pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-keyform", "DER"]
    result = _openssl(
        *sign, "-inkey", key, "-in", message, "-out", signature, "-pkeyopt", ID_OPTION
    )
    assert result.returncode == 0, result.stderr
    assert compute_private_key(seed) == 5
    assert SM.verify(SM.public_key_from_seed(seed), MESSAGE, signature.read_bytes())
