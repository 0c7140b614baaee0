"""Unit tests for `taihang.ledger.transaction`: envelopes, ids, addresses and stateless checks."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import pytest

from taihang.codec import decode, encode, encode_value
from taihang.constants import (
    GAS_LIMIT_MAX,
    NAME_CHARS_MAX,
    TX_ARGS_BYTES_MAX,
    TX_BYTES_MAX,
    TX_EXPIRY_HEIGHTS_MAX,
)
from taihang.crypto import get_suite
from taihang.errors import DecodeError, InvalidInput, InvalidSignature, InvalidTransaction
from taihang.ledger.transaction import (
    NONCE_MAX,
    Transaction,
    TxBody,
    TxEnvelope,
    build_body,
    compute_address,
    decode_transaction,
    is_valid_name,
    sign_body,
    validate_transaction_context,
    verify_transaction_signature,
)

SUITE = get_suite("ed25519")
SEED = bytes(range(32))
PUBLIC_KEY = SUITE.public_key_from_seed(SEED)


def make_body(**overrides: Any) -> TxBody:
    fields: dict[str, Any] = {
        "channel": "main",
        "sender_public_key": PUBLIC_KEY,
        "nonce": 0,
        "contract": "kv",
        "method": "put",
        "args": ["key", {"n": 2**70, "b": b"\x00"}],
        "gas_limit": 100_000,
        "expires_at_height": 50,
    }
    fields.update(overrides)
    return build_body(**fields)


def make_tx(**overrides: Any) -> Transaction:
    return decode_transaction(sign_body(make_body(**overrides), SEED, SUITE), SUITE)


def envelope_of(body: TxBody, signature: bytes | None = None) -> bytes:
    """An envelope signed correctly unless `signature` is given."""
    body_bytes = encode(body)
    if signature is None:
        signature = SUITE.sign(SEED, b"taihang/tx/v1" + body_bytes)
    return encode(TxEnvelope(body=body_bytes, signature=signature))


def rejection(raw: bytes) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        decode_transaction(raw, SUITE)
    return info.value


# ----------------------------------------------------------------------------- round trip


def test_decode_transaction_round_trips_a_signed_body() -> None:
    body = make_body()
    raw = sign_body(body, SEED, SUITE)
    tx = decode_transaction(raw, SUITE)
    assert tx.body == body
    assert tx.raw == raw
    assert tx.size == len(raw)
    assert tx.body_bytes == encode(body)
    assert tx.args == ["key", {"n": 2**70, "b": b"\x00"}]
    assert tx.nonce == 0
    assert decode(raw, TxEnvelope).body == tx.body_bytes
    verify_transaction_signature(tx, SUITE)


def test_decode_transaction_computes_the_id_over_the_tagged_body_bytes() -> None:
    tx = make_tx()
    assert tx.id == hashlib.sha256(b"taihang/tx/v1" + tx.body_bytes).digest()
    assert make_tx(nonce=1).id != tx.id


def test_decode_transaction_computes_the_sender_address() -> None:
    tx = make_tx()
    assert tx.sender == hashlib.sha256(PUBLIC_KEY).digest()[:20].hex()
    assert tx.sender == compute_address(SUITE, PUBLIC_KEY)
    assert len(tx.sender) == 40 and tx.sender == tx.sender.lower()


def test_sign_body_signs_the_tag_and_the_exact_body_bytes() -> None:
    raw = sign_body(make_body(), SEED, SUITE)
    envelope = decode(raw, TxEnvelope)
    assert SUITE.verify(PUBLIC_KEY, b"taihang/tx/v1" + envelope.body, envelope.signature)
    assert not SUITE.verify(PUBLIC_KEY, envelope.body, envelope.signature)


def test_build_body_encodes_args_canonically() -> None:
    body = make_body(args=[{"b": 1, "a": 2}, (1, 2)])
    assert bytes(body.args) == encode_value([{"a": 2, "b": 1}, [1, 2]])


# ----------------------------------------------------------------------------- rejections


def test_decode_transaction_rejects_oversize_input() -> None:
    error = rejection(b"\x00" * (TX_BYTES_MAX + 1))
    assert isinstance(error, InvalidTransaction)
    assert error.code == "tx_too_large"


def test_decode_transaction_limits_the_args_bytes() -> None:
    text_chars = TX_ARGS_BYTES_MAX - 4  # fixarray header, str16 header (3 bytes), the text
    assert len(bytes(make_tx(args=["x" * text_chars]).body.args)) == TX_ARGS_BYTES_MAX
    error = rejection(sign_body(make_body(args=["x" * (text_chars + 1)]), SEED, SUITE))
    assert isinstance(error, InvalidTransaction)
    assert error.code == "tx_too_large"


@pytest.mark.parametrize("length", [0, 63, 65])
def test_decode_transaction_rejects_a_signature_of_the_wrong_length(length: int) -> None:
    error = rejection(envelope_of(make_body(), signature=b"\x01" * length))
    assert type(error) is InvalidSignature
    assert error.code == "bad_signature"


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_decode_transaction_rejects_a_public_key_of_the_wrong_length(length: int) -> None:
    error = rejection(envelope_of(make_body(sender_public_key=b"\x01" * length)))
    assert type(error) is InvalidTransaction
    assert error.code == "bad_public_key"


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("contract", ""),
        ("contract", "KV"),
        ("contract", "1kv"),
        ("contract", "kv/other"),
        ("contract", "a" * (NAME_CHARS_MAX + 1)),
        ("method", "put\n"),
        ("method", "_put"),
        ("method", "pu t"),
    ],
)
def test_decode_transaction_rejects_bad_names(field: str, name: str) -> None:
    error = rejection(envelope_of(make_body(**{field: name})))
    assert type(error) is InvalidTransaction
    assert error.code == "bad_name"


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("kv", True),
        ("a", True),
        ("my.contract-v2_x", True),
        ("a" * NAME_CHARS_MAX, True),
        ("a" * (NAME_CHARS_MAX + 1), False),
        ("", False),
        ("Kv", False),
        ("-kv", False),
        ("kv\n", False),
        ("kv!", False),
    ],
)
def test_is_valid_name_follows_the_pattern(name: str, valid: bool) -> None:
    assert is_valid_name(name) is valid


@pytest.mark.parametrize("gas_limit", [0, -1, GAS_LIMIT_MAX + 1])
def test_decode_transaction_rejects_gas_limits_out_of_range(gas_limit: int) -> None:
    error = rejection(envelope_of(make_body(gas_limit=gas_limit)))
    assert type(error) is InvalidTransaction
    assert error.code == "bad_gas_limit"


def test_decode_transaction_accepts_gas_limits_at_the_bounds() -> None:
    assert make_tx(gas_limit=1).body.gas_limit == 1
    assert make_tx(gas_limit=GAS_LIMIT_MAX).body.gas_limit == GAS_LIMIT_MAX


@pytest.mark.parametrize("expires_at_height", [0, -5])
def test_decode_transaction_rejects_expiry_below_one(expires_at_height: int) -> None:
    error = rejection(envelope_of(make_body(expires_at_height=expires_at_height)))
    assert type(error) is InvalidTransaction
    assert error.code == "bad_expiry"


@pytest.mark.parametrize("nonce", [-1, NONCE_MAX + 1])
def test_decode_transaction_rejects_nonces_out_of_range(nonce: int) -> None:
    error = rejection(envelope_of(make_body(nonce=nonce)))
    assert type(error) is InvalidTransaction
    assert error.code == "bad_nonce"


@pytest.mark.parametrize("args", [b"\xc0", b"\x81\xa1a\x01", b"\x01", b"\xa3abc"])
def test_decode_transaction_rejects_args_that_are_not_a_list(args: bytes) -> None:
    body = msgspec.structs.replace(make_body(), args=msgspec.Raw(args))
    error = rejection(envelope_of(body))
    assert type(error) is DecodeError
    assert "list" in error.message


def test_decode_transaction_rejects_non_canonical_args() -> None:
    body = msgspec.structs.replace(make_body(), args=msgspec.Raw(b"\x91\xcd\x00\x01"))
    assert type(rejection(envelope_of(body))) is DecodeError


def test_decode_transaction_rejects_a_non_canonical_envelope() -> None:
    raw = sign_body(make_body(), SEED, SUITE)
    envelope = decode(raw, TxEnvelope)
    # the body as bin32 instead of bin8/bin16: same content, other bytes
    wide = (
        b"\x92\xc6"
        + len(envelope.body).to_bytes(4, "big")
        + envelope.body
        + b"\xc4\x40"
        + envelope.signature
    )
    assert type(rejection(wide)) is DecodeError
    assert type(rejection(raw + b"\x00")) is DecodeError
    assert type(rejection(raw[:-1])) is DecodeError
    assert type(rejection(encode([envelope.body, envelope.signature, b""]))) is DecodeError


def test_decode_transaction_rejects_a_non_canonical_body() -> None:
    body_bytes = encode(make_body())
    assert body_bytes[1] == 0xA4  # channel "main" as fixstr
    wide_body = body_bytes[:1] + b"\xd9\x04" + body_bytes[2:]  # as str8
    signature = SUITE.sign(SEED, b"taihang/tx/v1" + wide_body)
    raw = encode(TxEnvelope(body=wide_body, signature=signature))
    assert type(rejection(raw)) is DecodeError


# ----------------------------------------------------------------------------- signature


def test_verify_transaction_signature_rejects_a_tampered_signature() -> None:
    raw = sign_body(make_body(), SEED, SUITE)
    envelope = decode(raw, TxEnvelope)
    for i in (0, 31, 32, 63):
        signature = bytearray(envelope.signature)
        signature[i] ^= 0x01
        tx = decode_transaction(envelope_of(make_body(), signature=bytes(signature)), SUITE)
        with pytest.raises(InvalidSignature):
            verify_transaction_signature(tx, SUITE)


def test_verify_transaction_signature_rejects_a_tampered_body() -> None:
    signature = decode(sign_body(make_body(), SEED, SUITE), TxEnvelope).signature
    for changed in (make_body(nonce=1), make_body(gas_limit=100_001), make_body(args=["key"])):
        tx = decode_transaction(envelope_of(changed, signature=signature), SUITE)
        with pytest.raises(InvalidSignature):
            verify_transaction_signature(tx, SUITE)


def test_verify_transaction_signature_rejects_another_key() -> None:
    other_seed = bytes(32)
    raw = sign_body(make_body(), other_seed, SUITE)  # signed by a key that is not the sender's
    with pytest.raises(InvalidSignature):
        verify_transaction_signature(decode_transaction(raw, SUITE), SUITE)


# ----------------------------------------------------------------------------- context


def test_validate_transaction_context_accepts_the_valid_window() -> None:
    tx = make_tx(expires_at_height=50)
    validate_transaction_context(tx, "main", 50)
    validate_transaction_context(tx, "main", 1)


def test_validate_transaction_context_rejects_another_channel() -> None:
    with pytest.raises(InvalidTransaction) as info:
        validate_transaction_context(make_tx(channel="other"), "main", 1)
    assert info.value.code == "unknown_channel"


def test_validate_transaction_context_rejects_an_expired_transaction() -> None:
    with pytest.raises(InvalidTransaction) as info:
        validate_transaction_context(make_tx(expires_at_height=50), "main", 51)
    assert info.value.code == "expired"


def test_validate_transaction_context_rejects_expiry_too_far_ahead() -> None:
    tx = make_tx(expires_at_height=10 + TX_EXPIRY_HEIGHTS_MAX)
    validate_transaction_context(tx, "main", 10)
    with pytest.raises(InvalidTransaction) as info:
        validate_transaction_context(tx, "main", 9)
    assert info.value.code == "bad_expiry"
