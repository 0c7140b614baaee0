"""Submitting transactions (one or a batch) and reading them back with their receipts."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from taihang.api.responses import get_chain, get_node, json_response, parse_hex, read_json
from taihang.api.wire import block_tx_to_json, decode_base64_tx, receipt_to_json
from taihang.codec import decode
from taihang.errors import InvalidInput, TaihangError, TransactionNotFound
from taihang.ledger.block import Block
from taihang.ledger.receipt import Receipt
from taihang.node.chain import Chain

router = APIRouter(prefix="/api/v1/transactions", tags=["transactions"])


@router.post("", status_code=202)
async def submit(request: Request) -> Response:
    """Submit one transaction: `{"tx": "<base64 envelope>"}` -> 202 `{"id"}`."""
    data = await read_json(request)
    if not isinstance(data, dict) or "tx" not in data:
        raise InvalidInput('body must be {"tx": "<base64>"}', code="malformed")
    result = (await get_node(request).submit([decode_base64_tx(data["tx"])]))[0]
    if isinstance(result, TaihangError):
        raise result
    return json_response({"id": result.hex()}, 202)


@router.post("/batch", status_code=202)
async def submit_batch(request: Request) -> Response:
    """Submit many: `{"txs": [...]}` -> 202 `{"results": [{"id"} | {"error"}, ...]}` in order."""
    node = get_node(request)
    data = await read_json(request)
    if not isinstance(data, dict) or not isinstance(data.get("txs"), list):
        raise InvalidInput('body must be {"txs": ["<base64>", ...]}', code="malformed")
    texts = data["txs"]
    if len(texts) > node.config.api.batch_txs_max:
        raise InvalidInput(
            f"a batch holds at most {node.config.api.batch_txs_max} transactions",
            code="batch_too_large",
        )
    answers: list[dict[str, Any] | None] = []
    raws: list[bytes] = []
    for text in texts:
        try:
            raws.append(decode_base64_tx(text))
            answers.append(None)  # filled in from the node's results below
        except InvalidInput as exc:
            answers.append({"error": {"code": exc.code, "detail": exc.message}})
    results = iter(await node.submit(raws))
    for index, answer in enumerate(answers):
        if answer is None:
            result = next(results)
            if isinstance(result, TaihangError):
                answers[index] = {"error": {"code": result.code, "detail": result.message}}
            else:
                answers[index] = {"id": result.hex()}
    return json_response({"results": answers}, 202)


@router.get("/{tx_id}")
async def get_transaction(
    request: Request, tx_id: str, wait: bool = False, timeout_ms: int = 10_000
) -> Response:
    """The committed transaction with its receipt; with `wait`, until committed or timeout."""
    node = get_node(request)
    key = parse_hex(tx_id, "transaction id", 32)
    timeout_ms = max(0, min(timeout_ms, node.config.api.wait_timeout_ms_max))
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        found = find_transaction(get_chain(request), key)
        if found is not None:
            return json_response(found)
        remaining = deadline - time.monotonic()
        if not wait or remaining <= 0:
            break
        await node.wait_executed(remaining)
    if key in node.mempool:
        return json_response({"id": tx_id, "status": "pending"})
    raise TransactionNotFound(f"transaction {tx_id} is not known to this node")


def find_transaction(chain: Chain, tx_id: bytes) -> dict[str, Any] | None:
    location = chain.store.find_tx_location(tx_id)
    if location is None:
        return None
    height, index = location
    receipt = decode(chain.store.get_receipts(height)[index], Receipt)
    raw_block = chain.store.find_block(height)
    assert raw_block is not None, "an indexed transaction's block is stored"
    block = decode(raw_block, Block)
    return {
        "id": tx_id.hex(),
        "status": "committed",
        "height": height,
        "index": index,
        "transaction": block_tx_to_json(block.transactions[index], chain.suite),
        "receipt": receipt_to_json(receipt),
    }
