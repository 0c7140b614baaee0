"""Test people, signed transactions and a dict-backed state for execution tests.

Person `who` (a small int) has the Ed25519 seed `bytes([who]) * 32`, so tests name signers by
number and every run signs the same bytes. `sign_tx` builds, signs and decodes a transaction
the way a node admits one (cached: signing dominates the cost of such tests). `DictState` is a
`StateReader` over a dict, with the ordered scan, advanced by a block's write set.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from taihang.codec import Value, decode_value, encode_value
from taihang.crypto import get_suite
from taihang.ledger.transaction import (
    Transaction,
    build_body,
    compute_address,
    decode_transaction,
    sign_body,
)

SUITE = get_suite("ed25519")


def seed_of(who: int) -> bytes:
    return bytes([who]) * 32


def key_of(who: int) -> bytes:
    return SUITE.public_key_from_seed(seed_of(who))


def addr(who: int) -> str:
    return compute_address(SUITE, key_of(who))


def sign_tx(
    who: int,
    nonce: int,
    contract: str,
    method: str,
    args: list[Value],
    *,
    channel: str = "main",
    gas_limit: int = 1_000_000,
    expires_at_height: int = 1_000,
) -> Transaction:
    """`who`'s signed call of `contract.method(*args)`, decoded as a node admits it."""
    fields = (who, nonce, contract, method, channel, gas_limit, expires_at_height)
    return _sign(fields, encode_value(list(args)))


@cache
def _sign(fields: tuple[int, int, str, str, str, int, int], args: bytes) -> Transaction:
    who, nonce, contract, method, channel, gas_limit, expires_at_height = fields
    body = build_body(
        channel=channel,
        sender_public_key=key_of(who),
        nonce=nonce,
        contract=contract,
        method=method,
        args=decode_value(args),
        gas_limit=gas_limit,
        expires_at_height=expires_at_height,
    )
    return decode_transaction(sign_body(body, seed_of(who), SUITE), SUITE)


class DictState:
    """A `StateReader` over a dict; `apply` advances it by a block's writes."""

    def __init__(self, data: Mapping[bytes, bytes] | None = None) -> None:
        self.data: dict[bytes, bytes] = dict(data or {})

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def scan(self, prefix: bytes, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        keys = sorted(k for k in self.data if k.startswith(prefix) and (after is None or k > after))
        return [(k, self.data[k]) for k in keys[:limit]]

    def apply(self, writes: Mapping[bytes, bytes | None]) -> None:
        for key, value in writes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
