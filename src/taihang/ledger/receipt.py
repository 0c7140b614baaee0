"""Receipts and events: what executing a transaction produced.

Every transaction in an executed block gets exactly one receipt, in block order. The receipts
root is the Merkle root over the canonical receipt bytes.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from taihang.codec import Canonical, Value, decode_value, encode, encode_value
from taihang.crypto import CryptoSuite
from taihang.crypto.merkle import compute_root

ReceiptStatus = Literal["ok", "reverted", "out_of_gas", "rejected"]
RECEIPT_STATUSES: Final = ("ok", "reverted", "out_of_gas", "rejected")
_NONE_BYTES: Final = encode_value(None)


class Event(Canonical, frozen=True):
    contract: str
    name: str
    data: msgspec.Raw  # canonical dynamic value


class Receipt(Canonical, frozen=True):
    tx_id: bytes
    status: ReceiptStatus
    gas_used: int
    return_value: msgspec.Raw  # canonical dynamic value
    events: list[Event]
    error_message: str

    @property
    def is_ok(self) -> bool:
        return self.status == "ok"

    def decoded_return_value(self) -> Value:
        return decode_value(bytes(self.return_value))


def build_event(contract: str, name: str, data: Value) -> Event:
    return Event(contract=contract, name=name, data=msgspec.Raw(encode_value(data)))


def build_receipt(
    tx_id: bytes,
    status: ReceiptStatus,
    gas_used: int,
    *,
    return_value: Value = None,
    events: list[Event] | None = None,
    error_message: str = "",
) -> Receipt:
    raw = _NONE_BYTES if return_value is None else encode_value(return_value)
    return Receipt(
        tx_id=tx_id,
        status=status,
        gas_used=gas_used,
        return_value=msgspec.Raw(raw),
        events=events or [],
        error_message=error_message,
    )


def compute_receipts_root(suite: CryptoSuite, encoded_receipts: list[bytes]) -> bytes:
    """The Merkle root (under the suite hash) of the canonical receipt bytes."""
    return compute_root(encoded_receipts, suite.hash)


def encode_receipts(receipts: list[Receipt]) -> list[bytes]:
    return [encode(r) for r in receipts]
