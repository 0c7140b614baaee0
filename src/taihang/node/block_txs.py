"""Decoding a committed block's transactions for execution, without trusting the proposer.

With several validators a block's transactions come from its proposer, which may be
Byzantine: a transaction that does not decode, or whose signature does not verify, must not
halt execution (every honest node would halt alike) nor run as its claimed sender. Each such
transaction gets a deterministic `rejected` receipt in its place; every node decides the same,
since decoding and signature checks are pure functions of the bytes.

Signatures checked at admission (API or gossip) are not checked again: the node passes
`is_verified`, a lookup in the ids it verified, so each transaction costs one verification per
node (DESIGN.md §3: every node checks every transaction once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from taihang.constants import TAG_TX
from taihang.crypto import CryptoSuite
from taihang.errors import InvalidInput
from taihang.ledger.transaction import (
    Transaction,
    decode_transaction,
    verify_transaction_signature,
)


@dataclass(frozen=True, slots=True)
class InvalidBlockTx:
    """A transaction of a block that cannot run: its id and why (the receipt's message)."""

    id: bytes
    reason: str


def decode_block_transactions(
    raws: list[bytes], suite: CryptoSuite, is_verified: Callable[[bytes], bool] | None
) -> list[Transaction | InvalidBlockTx]:
    """Decode each raw transaction; check its signature unless `is_verified(id)` says done."""
    results: list[Transaction | InvalidBlockTx] = []
    for raw in raws:
        try:
            tx = decode_transaction(raw, suite)
        except InvalidInput as exc:
            # No body to hash: the id of undecodable bytes is the tagged hash of all of them.
            results.append(InvalidBlockTx(suite.tagged_hash(TAG_TX, raw), exc.message))
            continue
        if is_verified is None or not is_verified(tx.id):
            try:
                verify_transaction_signature(tx, suite)
            except InvalidInput as exc:
                results.append(InvalidBlockTx(tx.id, exc.message))
                continue
        results.append(tx)
    return results
