"""Building and signing transactions."""

from __future__ import annotations

from typing import Any

from taihang.crypto import get_suite
from taihang.ledger.transaction import build_body, sign_body

DEFAULT_GAS_LIMIT = 1_000_000
DEFAULT_EXPIRY_BLOCKS = 10_000


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
    suite = get_suite(suite_name)
    body = build_body(
        channel=channel,
        sender_public_key=suite.public_key_from_seed(seed),
        nonce=nonce,
        contract=contract,
        method=method,
        args=args,
        gas_limit=gas_limit,
        expires_at_height=expires_at_height,
    )
    return sign_body(body, seed, suite)
