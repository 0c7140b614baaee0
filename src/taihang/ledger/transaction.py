"""Transactions: the signed envelope, its body, ids, addresses and the stateless checks.

An envelope is `[body_bytes, signature]`. The signature covers `taihang/tx/v1 || body_bytes`
and the id is the suite hash of the same bytes, so nothing is ever re-encoded before it is
verified. Checks run cheapest first (DESIGN.md §1.4): size, structure, field rules here;
the signature in `verify_transaction_signature` (run in a worker pool by the node); membership,
nonce and expiry against state in `validate_transaction_context` and the mempool.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from taihang.codec import Canonical, Value, decode, decode_value, encode, encode_value
from taihang.constants import (
    GAS_LIMIT_MAX,
    NAME_CHARS_MAX,
    TAG_TX,
    TX_ARGS_BYTES_MAX,
    TX_BYTES_MAX,
    TX_EXPIRY_HEIGHTS_MAX,
)
from taihang.crypto import CryptoSuite
from taihang.errors import DecodeError, InvalidSignature, InvalidTransaction
from taihang.types import Address, TxId

NAME_PATTERN: Final = re.compile(r"[a-z][a-z0-9_.-]*\Z")
NONCE_MAX: Final = 2**63 - 1


class TxBody(Canonical, frozen=True):
    channel: str
    sender_public_key: bytes
    nonce: int
    contract: str
    method: str
    args: msgspec.Raw  # the canonical bytes of a list of dynamic values
    gas_limit: int
    expires_at_height: int


class TxEnvelope(Canonical, frozen=True):
    body: bytes
    signature: bytes


class Transaction:
    """A decoded transaction whose structure was checked (its signature not necessarily)."""

    __slots__ = ("args", "body", "body_bytes", "id", "raw", "sender", "signature")

    def __init__(
        self,
        raw: bytes,
        body_bytes: bytes,
        body: TxBody,
        signature: bytes,
        args: list[Value],
        tx_id: TxId,
        sender: Address,
    ) -> None:
        self.raw = raw
        self.body_bytes = body_bytes
        self.body = body
        self.signature = signature
        self.args = args
        self.id = tx_id
        self.sender = sender

    @property
    def nonce(self) -> int:
        return self.body.nonce

    @property
    def size(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        return f"Transaction(id={self.id.hex()[:16]}, sender={self.sender}, nonce={self.nonce})"


def compute_address(suite: CryptoSuite, public_key: bytes) -> Address:
    """Lowercase hex of the first 20 bytes of the suite hash of the public key."""
    return Address(suite.hash(public_key)[:20].hex())


def compute_tx_id(suite: CryptoSuite, body_bytes: bytes) -> TxId:
    return TxId(suite.tagged_hash(TAG_TX, body_bytes))


def is_valid_name(name: str) -> bool:
    return 0 < len(name) <= NAME_CHARS_MAX and NAME_PATTERN.match(name) is not None


def _validate_body(body: TxBody, suite: CryptoSuite) -> None:
    if len(body.sender_public_key) != suite.public_key_bytes:
        raise InvalidTransaction(
            f"sender_public_key must be {suite.public_key_bytes} bytes for suite {suite.name}, "
            f"got {len(body.sender_public_key)}",
            code="bad_public_key",
        )
    if not 0 <= body.nonce <= NONCE_MAX:
        raise InvalidTransaction(f"nonce {body.nonce} out of range", code="bad_nonce")
    if not is_valid_name(body.contract):
        raise InvalidTransaction(f"invalid contract name {body.contract!r}", code="bad_name")
    if not is_valid_name(body.method):
        raise InvalidTransaction(f"invalid method name {body.method!r}", code="bad_name")
    if not 0 < body.gas_limit <= GAS_LIMIT_MAX:
        raise InvalidTransaction(
            f"gas_limit must be between 1 and {GAS_LIMIT_MAX}, got {body.gas_limit}",
            code="bad_gas_limit",
        )
    if body.expires_at_height < 1:
        raise InvalidTransaction("expires_at_height must be at least 1", code="bad_expiry")


def decode_transaction(raw: bytes, suite: CryptoSuite) -> Transaction:
    """Decode and check an envelope's structure; raise `InvalidTransaction`/`DecodeError`."""
    if len(raw) > TX_BYTES_MAX:
        raise InvalidTransaction(
            f"transaction of {len(raw)} bytes exceeds the limit of {TX_BYTES_MAX}",
            code="tx_too_large",
        )
    envelope = decode(raw, TxEnvelope)
    signature_min, signature_max = suite.signature_bytes_min, suite.signature_bytes_max
    if not signature_min <= len(envelope.signature) <= signature_max:
        expected = (
            f"{signature_max}"
            if signature_min == signature_max
            else f"{signature_min} to {signature_max}"
        )
        raise InvalidSignature(
            f"signature must be {expected} bytes for suite {suite.name}, "
            f"got {len(envelope.signature)}"
        )
    body = decode(envelope.body, TxBody)
    args_bytes = bytes(body.args)
    if len(args_bytes) > TX_ARGS_BYTES_MAX:
        raise InvalidTransaction(f"args exceed {TX_ARGS_BYTES_MAX} bytes", code="tx_too_large")
    args = decode_value(args_bytes)
    if not isinstance(args, list):
        raise DecodeError("args must be a list")
    _validate_body(body, suite)
    return Transaction(
        raw=bytes(raw),
        body_bytes=envelope.body,
        body=body,
        signature=envelope.signature,
        args=args,
        tx_id=compute_tx_id(suite, envelope.body),
        sender=compute_address(suite, body.sender_public_key),
    )


def verify_transaction_signature(tx: Transaction, suite: CryptoSuite) -> None:
    """Raise `InvalidSignature` unless the envelope's signature is valid."""
    if not suite.verify(tx.body.sender_public_key, TAG_TX + tx.body_bytes, tx.signature):
        raise InvalidSignature(f"signature of transaction {tx.id.hex()} does not verify")


def validate_transaction_context(tx: Transaction, channel: str, next_height: int) -> None:
    """Raise unless `tx` is for this channel and can still be included at `next_height`."""
    if tx.body.channel != channel:
        raise InvalidTransaction(
            f"transaction is for channel {tx.body.channel!r}, this node serves {channel!r}",
            code="unknown_channel",
        )
    if tx.body.expires_at_height < next_height:
        raise InvalidTransaction(
            f"transaction expired at height {tx.body.expires_at_height}; "
            f"the next block is {next_height}",
            code="expired",
        )
    if tx.body.expires_at_height > next_height + TX_EXPIRY_HEIGHTS_MAX:
        raise InvalidTransaction(
            f"expires_at_height {tx.body.expires_at_height} is more than "
            f"{TX_EXPIRY_HEIGHTS_MAX} blocks ahead",
            code="bad_expiry",
        )


def build_body(
    *,
    channel: str,
    sender_public_key: bytes,
    nonce: int,
    contract: str,
    method: str,
    args: list[Value],
    gas_limit: int,
    expires_at_height: int,
) -> TxBody:
    return TxBody(
        channel=channel,
        sender_public_key=sender_public_key,
        nonce=nonce,
        contract=contract,
        method=method,
        args=msgspec.Raw(encode_value(list(args))),
        gas_limit=gas_limit,
        expires_at_height=expires_at_height,
    )


def sign_body(body: TxBody, seed: bytes, suite: CryptoSuite) -> bytes:
    """The envelope bytes of `body` signed with the key derived from `seed`."""
    body_bytes = encode(body)
    signature = suite.sign(seed, TAG_TX + body_bytes)
    return encode(TxEnvelope(body=body_bytes, signature=signature))
