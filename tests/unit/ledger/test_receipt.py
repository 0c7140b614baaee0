"""Unit tests for `taihang.ledger.receipt`: receipts, events and the receipts root."""

from __future__ import annotations

import pytest

from taihang.codec import decode, decode_value, encode, encode_value
from taihang.crypto import get_suite
from taihang.crypto.merkle import compute_root
from taihang.errors import DecodeError
from taihang.ledger.receipt import (
    RECEIPT_STATUSES,
    Receipt,
    build_event,
    build_receipt,
    compute_receipts_root,
    encode_receipts,
)


def test_build_receipt_defaults_to_no_value_events_or_message() -> None:
    receipt = build_receipt(b"\x01" * 32, "ok", 1_234)
    assert bytes(receipt.return_value) == encode_value(None)
    assert receipt.decoded_return_value() is None
    assert receipt.events == []
    assert receipt.error_message == ""
    assert receipt.is_ok


def test_build_receipt_keeps_the_return_value_and_events() -> None:
    event = build_event("asset", "Transfer", {"amount": 2**70})
    receipt = build_receipt(b"\x01" * 32, "ok", 5, return_value=[1, b"x"], events=[event])
    assert receipt.decoded_return_value() == [1, b"x"]
    assert decode_value(bytes(receipt.events[0].data)) == {"amount": 2**70}
    assert decode(encode(receipt), Receipt) == receipt


@pytest.mark.parametrize("status", [s for s in RECEIPT_STATUSES if s != "ok"])
def test_receipt_is_ok_only_for_ok(status: str) -> None:
    assert not build_receipt(b"", status, 0, error_message="why").is_ok  # type: ignore[arg-type]


def test_receipt_decode_rejects_an_unknown_status() -> None:
    data = encode(build_receipt(b"", "ok", 0)).replace(b"\xa2ok", b"\xa2no")
    with pytest.raises(DecodeError):
        decode(data, Receipt)


def test_build_event_rejects_values_a_contract_may_not_emit() -> None:
    with pytest.raises(DecodeError):
        build_event("kv", "Put", 1.5)


def test_compute_receipts_root_is_the_merkle_root_of_the_encoded_receipts() -> None:
    receipts = [build_receipt(bytes([i]) * 32, "ok", i) for i in range(3)]
    encoded = encode_receipts(receipts)
    assert encoded == [encode(r) for r in receipts]
    suite = get_suite("ed25519")
    assert compute_receipts_root(suite, encoded) == compute_root(encoded)
    assert compute_receipts_root(suite, encoded) != compute_receipts_root(suite, encoded[::-1])
