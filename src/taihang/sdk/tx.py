"""Building and signing transactions."""

from __future__ import annotations

from typing import Any

from taihang.codec import encode
from taihang.constants import TAG_TX
from taihang.errors import InvalidInput
from taihang.ledger.transaction import TxEnvelope, build_body
from taihang.sdk.signer import KeySigner, Signer

DEFAULT_GAS_LIMIT = 1_000_000
DEFAULT_EXPIRY_BLOCKS = 10_000


def sign_tx(
    signer: Signer,
    *,
    channel: str,
    nonce: int,
    contract: str,
    method: str,
    args: list[Any],
    expires_at_height: int,
    gas_limit: int = DEFAULT_GAS_LIMIT,
) -> bytes:
    """The envelope bytes of a transaction signed by `signer`."""
    body = build_body(
        channel=channel,
        sender_public_key=signer.public_key,
        nonce=nonce,
        contract=contract,
        method=method,
        args=args,
        gas_limit=gas_limit,
        expires_at_height=expires_at_height,
    )
    body_bytes = encode(body)
    return encode(TxEnvelope(body=body_bytes, signature=signer.sign(TAG_TX + body_bytes)))


def build_signed_tx(
    *,
    seed: bytes,
    suite_name: str,
    channel: str,
    nonce: int,
    contract: str,
    method: str,
    args: list[Any],
    expires_at_height: int,
    gas_limit: int = DEFAULT_GAS_LIMIT,
) -> bytes:
    """The envelope bytes of a transaction signed with the key derived from `seed`."""
    return sign_tx(
        KeySigner.from_seed(seed, suite_name),
        channel=channel,
        nonce=nonce,
        contract=contract,
        method=method,
        args=args,
        expires_at_height=expires_at_height,
        gas_limit=gas_limit,
    )


def check_suite(signer: Signer, network_crypto: str) -> None:
    """Refuse a key of another suite than the network's, before anything is signed."""
    if signer.suite.name != network_crypto:
        raise InvalidInput(
            f"key {signer.address} is a {signer.suite.name} key but the network uses "
            f"{network_crypto}; create a key with --crypto {network_crypto}",
            code="wrong_suite",
        )
