"""The REST API under `/api/v1` (DESIGN.md §4 wire forms) and `/healthz`.

Handlers parse bodies themselves with msgspec (no per-request model validation on the hot
submit path) and answer errors as `application/problem+json` with a stable `code`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from taihang import __version__
from taihang.api.wire import block_to_json, decode_base64_tx, receipt_to_json, struct_to_json
from taihang.codec import decode, decode_value, value_from_json, value_to_json
from taihang.errors import (
    BlockNotFound,
    ContractError,
    InvalidInput,
    NotFound,
    TaihangError,
    TransactionNotFound,
)
from taihang.execution.executor import execute_query, get_account_nonce
from taihang.execution.state import state_key
from taihang.ledger.block import Block
from taihang.ledger.receipt import Receipt
from taihang.ledger.transaction import decode_transaction

if TYPE_CHECKING:
    from taihang.node.chain import Chain
    from taihang.node.runtime import Node

_json = msgspec.json.Encoder()
PROBLEM = "application/problem+json"
BODY_BYTES_MAX = 64 * 1024 * 1024
LIST_LIMIT_MAX = 100


def json_response(data: Any, status: int = 200) -> Response:
    return Response(_json.encode(data), status_code=status, media_type="application/json")


def problem(status: int, code: str, detail: str) -> Response:
    body = {
        "type": f"https://taihang.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
    }
    return Response(_json.encode(body), status_code=status, media_type=PROBLEM)


def error_status(exc: TaihangError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if exc.code in ("mempool_full",):
        return 503
    if isinstance(exc, InvalidInput | ContractError):
        return 422 if isinstance(exc, ContractError) else 400
    return 500


async def read_json(request: Request) -> Any:
    body = await request.body()
    if len(body) > BODY_BYTES_MAX:
        raise InvalidInput(f"request body exceeds {BODY_BYTES_MAX} bytes", code="too_large")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}", code="malformed") from None


def build_app(node: Node) -> FastAPI:
    app = FastAPI(title="Taihang node API", version=__version__, docs_url=None, redoc_url=None)

    @app.exception_handler(TaihangError)
    async def taihang_error(_: Request, exc: TaihangError) -> Response:
        return problem(error_status(exc), exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return problem(exc.status_code, code, str(exc.detail))

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/api/v1/status")
    async def status() -> Response:
        chain = node.chain
        assert chain is not None
        return json_response(
            {
                "node": node.config.name,
                "channel": node.genesis.channel,
                "crypto": node.genesis.crypto,
                "genesis_hash": chain.genesis_hash.hex(),
                "validator": node.signer.address,
                "height": chain.tip_height,
                "executed_height": node.executed_height,
                "mempool_size": len(node.mempool),
                "version": __version__,
                "uptime_ms": int(time.time() * 1000) - node.started_ms,
            }
        )

    @app.post("/api/v1/transactions", status_code=202)
    async def submit(request: Request) -> Response:
        data = await read_json(request)
        if not isinstance(data, dict) or "tx" not in data:
            raise InvalidInput('body must be {"tx": "<base64>"}', code="malformed")
        result = (await node.submit([decode_base64_tx(data["tx"])]))[0]
        if isinstance(result, TaihangError):
            raise result
        return json_response({"id": result.hex()}, 202)

    @app.post("/api/v1/transactions/batch", status_code=202)
    async def submit_batch(request: Request) -> Response:
        data = await read_json(request)
        if not isinstance(data, dict) or not isinstance(data.get("txs"), list):
            raise InvalidInput('body must be {"txs": ["<base64>", ...]}', code="malformed")
        texts = data["txs"]
        if len(texts) > node.config.api.batch_txs_max:
            raise InvalidInput(
                f"a batch holds at most {node.config.api.batch_txs_max} transactions",
                code="batch_too_large",
            )
        slots: list[Any] = []
        raws: list[bytes] = []
        for text in texts:
            try:
                raws.append(decode_base64_tx(text))
                slots.append(None)
            except InvalidInput as exc:
                slots.append({"error": {"code": exc.code, "detail": exc.message}})
        results = iter(await node.submit(raws))
        out = []
        for slot in slots:
            if slot is not None:
                out.append(slot)
                continue
            result = next(results)
            if isinstance(result, TaihangError):
                out.append({"error": {"code": result.code, "detail": result.message}})
            else:
                out.append({"id": result.hex()})
        return json_response({"results": out}, 202)

    @app.get("/api/v1/transactions/{tx_id}")
    async def get_transaction(tx_id: str, wait: bool = False, timeout_ms: int = 10_000) -> Response:
        key = parse_hex(tx_id, "transaction id", 32)
        timeout_ms = max(0, min(timeout_ms, node.config.api.wait_timeout_ms_max))
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            found = find_transaction(node, key)
            if found is not None:
                return json_response(found)
            remaining = deadline - time.monotonic()
            if not wait or remaining <= 0:
                break
            await node.wait_executed(remaining)
        if key in node.mempool:
            return json_response({"id": tx_id, "status": "pending"})
        raise TransactionNotFound(f"transaction {tx_id} is not known to this node")

    @app.get("/api/v1/blocks")
    async def list_blocks(cursor: int | None = None, limit: int = 20) -> Response:
        chain = node.chain
        assert chain is not None
        limit = max(1, min(limit, LIST_LIMIT_MAX))
        top = chain.tip_height if cursor is None else min(cursor, chain.tip_height)
        blocks = []
        for height in range(top, max(-1, top - limit), -1):
            raw = chain.store.find_block(height)
            if raw is not None:
                blocks.append(block_to_json(decode(raw, Block), chain.suite, with_txs=False))
        next_cursor = top - limit if top - limit >= 0 else None
        return json_response({"blocks": blocks, "next_cursor": next_cursor})

    @app.get("/api/v1/blocks/{ref}")
    async def get_block(ref: str) -> Response:
        chain = node.chain
        assert chain is not None
        raw = chain.store.find_block(resolve_height(node, ref))
        if raw is None:
            raise BlockNotFound(f"block {ref} not found")
        return json_response(block_to_json(decode(raw, Block), chain.suite))

    @app.get("/api/v1/blocks/{ref}/receipts")
    async def get_receipts(ref: str) -> Response:
        chain = node.chain
        assert chain is not None
        height = resolve_height(node, ref)
        if height > node.executed_height:
            raise BlockNotFound(f"block {height} is not executed yet")
        receipts = [receipt_to_json(decode(r, Receipt)) for r in chain.store.get_receipts(height)]
        return json_response({"height": height, "receipts": receipts})

    @app.get("/api/v1/state/{contract}/{key:path}")
    async def get_state(contract: str, key: str, proof: bool = False) -> Response:
        chain = node.chain
        assert chain is not None
        skey = state_key(contract, key)
        # Read value, proof and root in one thread hop so they describe the same version.
        value, state_proof, root, height = await asyncio.to_thread(read_state, chain, skey, proof)
        out: dict[str, Any] = {
            "contract": contract,
            "key": key,
            "state_key": skey.hex(),
            "value": None if value is None else value_to_json(decode_value(value)),
            "value_bytes": None if value is None else value.hex(),
            "height": height,
            "state_root": root.hex(),
        }
        if state_proof is not None:
            out["proof"] = struct_to_json(state_proof)
        return json_response(out)

    @app.post("/api/v1/query")
    async def query(request: Request) -> Response:
        chain = node.chain
        assert chain is not None
        data = await read_json(request)
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("contract"), str)
            or not isinstance(data.get("method"), str)
        ):
            raise InvalidInput(
                'body must be {"contract", "method", "args": [...]}', code="malformed"
            )
        args = value_from_json(data.get("args", []))
        if not isinstance(args, list):
            raise InvalidInput("args must be a list", code="malformed")
        result = execute_query(chain.executor, chain.tree, data["contract"], data["method"], args)
        return json_response({"result": value_to_json(result), "height": node.executed_height})

    @app.get("/api/v1/accounts/{address}")
    async def get_account(address: str) -> Response:
        chain = node.chain
        assert chain is not None
        parse_hex(address, "address", 20)
        from taihang.execution.executor import find_member

        member = find_member(chain.tree, address)
        return json_response(
            {
                "address": address,
                "nonce": get_account_nonce(chain.tree, address),
                "next_nonce": node.next_nonce(address),
                "member": None if member is None else value_to_json(member),
            }
        )

    return app


def read_state(chain: Chain, skey: bytes, with_proof: bool) -> tuple[bytes | None, Any, bytes, int]:
    """Value, proof, root and height of one version: the lock keeps execution out meanwhile."""
    with chain.lock:
        root, height = chain.tree.root, chain.executed_height
        if with_proof:
            value, state_proof = chain.tree.prove(skey)
            return value, state_proof, root, height
        return chain.tree.get(skey), None, root, height


def parse_hex(text: str, what: str, length: int) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise InvalidInput(f"{what} must be hex", code="malformed") from None
    if len(value) != length:
        raise InvalidInput(f"{what} must be {length} bytes", code="malformed")
    return value


def resolve_height(node: Node, ref: str) -> int:
    chain = node.chain
    assert chain is not None
    if ref == "latest":
        return chain.tip_height
    if ref.isdigit():
        return int(ref)
    block_id = parse_hex(ref, "block reference (height, id or latest)", 32)
    height = chain.store.find_height_by_id(block_id)
    if height is None:
        if block_id == chain.tip_id:
            return chain.tip_height
        raise BlockNotFound(f"no block with id {ref}")
    return height


def find_transaction(node: Node, tx_id: bytes) -> dict[str, Any] | None:
    chain = node.chain
    assert chain is not None
    location = chain.store.find_tx_location(tx_id)
    if location is None:
        return None
    height, index = location
    receipt = decode(chain.store.get_receipts(height)[index], Receipt)
    raw_block = chain.store.find_block(height)
    assert raw_block is not None
    block = decode(raw_block, Block)
    tx = decode_transaction(block.transactions[index], chain.suite)
    from taihang.api.wire import tx_to_json

    return {
        "id": tx_id.hex(),
        "status": "committed",
        "height": height,
        "index": index,
        "transaction": tx_to_json(tx),
        "receipt": receipt_to_json(receipt),
    }
