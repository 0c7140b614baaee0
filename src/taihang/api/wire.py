"""Wire forms of ledger values (DESIGN.md §4): JSON with binary values as lowercase hex."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from taihang.codec import decode_value, value_to_json
from taihang.constants import TAG_TX
from taihang.crypto import CryptoSuite
from taihang.errors import InvalidInput
from taihang.ledger.block import Block, compute_block_id
from taihang.ledger.receipt import Receipt
from taihang.ledger.transaction import Transaction, decode_transaction


def struct_to_json(value: Any) -> Any:
    """Struct -> dict by field name, bytes -> hex, recursively."""
    if isinstance(value, msgspec.Struct):
        return {f: struct_to_json(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [struct_to_json(v) for v in value]
    return value


def tx_to_json(tx: Transaction) -> dict[str, Any]:
    body = tx.body
    return {
        "id": tx.id.hex(),
        "sender": tx.sender,
        "channel": body.channel,
        "nonce": body.nonce,
        "contract": body.contract,
        "method": body.method,
        "args": value_to_json(tx.args),
        "gas_limit": body.gas_limit,
        "expires_at_height": body.expires_at_height,
        "sender_public_key": body.sender_public_key.hex(),
        "signature": tx.signature.hex(),
        "tx": base64.b64encode(tx.raw).decode(),
    }


def block_to_json(block: Block, suite: CryptoSuite, *, with_txs: bool = True) -> dict[str, Any]:
    header = block.header
    out: dict[str, Any] = {
        "id": compute_block_id(suite, header).hex(),
        "height": header.height,
        "parent_id": header.parent_id.hex(),
        "header": struct_to_json(header),
        "tx_count": len(block.transactions),
    }
    if with_txs:
        out["transactions"] = [block_tx_to_json(raw, suite) for raw in block.transactions]
    return out


def block_tx_to_json(raw: bytes, suite: CryptoSuite) -> dict[str, Any]:
    """A block's transaction; one a Byzantine proposer included that does not decode is shown
    by its id with the reason (its receipt says `rejected`)."""
    try:
        return tx_to_json(decode_transaction(raw, suite))
    except InvalidInput as exc:
        return {
            "id": suite.tagged_hash(TAG_TX, raw).hex(),
            "sender": "",
            "channel": "",
            "nonce": 0,
            "contract": "",
            "method": "",
            "args": [],
            "gas_limit": 0,
            "expires_at_height": 0,
            "sender_public_key": "",
            "signature": "",
            "tx": base64.b64encode(raw).decode(),
            "invalid": exc.message,
        }


def receipt_to_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "tx_id": receipt.tx_id.hex(),
        "status": receipt.status,
        "gas_used": receipt.gas_used,
        "return_value": value_to_json(decode_value(bytes(receipt.return_value))),
        "events": [
            {
                "contract": e.contract,
                "name": e.name,
                "data": value_to_json(decode_value(bytes(e.data))),
            }
            for e in receipt.events
        ],
        "error_message": receipt.error_message,
    }


def decode_base64_tx(text: Any) -> bytes:
    if not isinstance(text, str):
        raise InvalidInput("a transaction must be a base64 string", code="malformed")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise InvalidInput(
            "transaction is not valid base64 (RFC 4648 §4)", code="malformed"
        ) from None
