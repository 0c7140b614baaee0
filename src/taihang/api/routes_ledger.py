"""Reading the ledger: status, blocks, receipts, state with proofs, queries and accounts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from taihang import __version__
from taihang.api.responses import get_chain, get_node, json_response, parse_hex, read_json
from taihang.api.wire import block_to_json, receipt_to_json, struct_to_json
from taihang.codec import decode, decode_value, value_from_json, value_to_json
from taihang.errors import BlockNotFound, InvalidInput
from taihang.execution.executor import find_member, get_account_nonce
from taihang.execution.state import state_key
from taihang.ledger.block import Block
from taihang.ledger.receipt import Receipt
from taihang.node.chain import Chain

router = APIRouter(prefix="/api/v1", tags=["ledger"])
LIST_LIMIT_MAX = 100
HEIGHT_DIGITS_MAX = 18  # below 2**63: larger heights cannot exist


@router.get("/status")
async def status(request: Request) -> Response:
    """The node's view: channel, committed `height`, `executed_height`, mempool, version, and
    consensus: `round`, `leader`, connected `peers` (node names) and `last_commit_ms`."""
    node, chain = get_node(request), get_chain(request)
    consensus = node.consensus_info()
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
            "round": consensus["round"],
            "leader": consensus["leader"],
            "peers": consensus["peers"],
            "last_commit_ms": consensus["last_commit_ms"],
        }
    )


@router.get("/blocks")
async def list_blocks(request: Request, cursor: int | None = None, limit: int = 20) -> Response:
    """Newest first, without transactions; `next_cursor` continues the listing."""
    chain = get_chain(request)
    limit = max(1, min(limit, LIST_LIMIT_MAX))
    top = chain.tip_height if cursor is None else min(cursor, chain.tip_height)
    blocks = []
    for height in range(top, max(-1, top - limit), -1):
        raw = chain.store.find_block(height)
        if raw is not None:
            blocks.append(block_to_json(decode(raw, Block), chain.suite, with_txs=False))
    next_cursor = top - limit if top - limit >= 0 else None
    return json_response({"blocks": blocks, "next_cursor": next_cursor})


@router.get("/blocks/{ref}")
async def get_block(request: Request, ref: str) -> Response:
    """A block by height, id or `latest`."""
    chain = get_chain(request)
    raw = chain.store.find_block(resolve_height(chain, ref))
    if raw is None:
        raise BlockNotFound(f"block {ref} not found")
    return json_response(block_to_json(decode(raw, Block), chain.suite))


@router.get("/blocks/{ref}/receipts")
async def get_receipts(request: Request, ref: str) -> Response:
    """A block's receipts in one call, once the block is executed."""
    chain = get_chain(request)
    height = resolve_height(chain, ref)
    if height > get_node(request).executed_height:
        raise BlockNotFound(f"block {height} is not executed yet")
    receipts = [receipt_to_json(decode(r, Receipt)) for r in chain.store.get_receipts(height)]
    return json_response({"height": height, "receipts": receipts})


@router.get("/state/{contract}/{key:path}")
async def get_state(request: Request, contract: str, key: str, proof: bool = False) -> Response:
    """A state value at the executed height; with `proof`, its proof against the state root."""
    chain = get_chain(request)
    skey = state_key(contract, key)
    value, state_proof, root, height = await asyncio.to_thread(read_state, chain, skey, proof)
    out: dict[str, Any] = {
        "contract": contract,
        "key": key,
        "state_key": skey.hex(),
        "value": None if value is None else value_to_json(decode_value(value)),
        "value_bytes": None if value is None else value.hex(),
        "height": height,
        "state_root": root.hex(),
        "hash": chain.suite.hash_name,  # the tree's hash: verify proofs with this one
    }
    if state_proof is not None:
        out["proof"] = struct_to_json(state_proof)
    return json_response(out)


@router.post("/query")
async def query(request: Request) -> Response:
    """A read-only call: `{"contract", "method", "args"}` -> `{"result", "height"}`."""
    chain = get_chain(request)
    data = await read_json(request)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("contract"), str)
        or not isinstance(data.get("method"), str)
    ):
        raise InvalidInput('body must be {"contract", "method", "args": [...]}', code="malformed")
    args = value_from_json(data.get("args", []))
    if not isinstance(args, list):
        raise InvalidInput("args must be a list", code="malformed")
    # Contract code runs in the executor worker, one request at a time: wait off the loop.
    result = await asyncio.to_thread(chain.query, data["contract"], data["method"], args)
    return json_response({"result": value_to_json(result), "height": chain.executed_height})


@router.get("/accounts/{address}")
async def get_account(request: Request, address: str) -> Response:
    """Nonce (executed), next nonce (counting the mempool) and membership of an address."""
    node, chain = get_node(request), get_chain(request)
    parse_hex(address, "address", 20)
    member = find_member(chain.tree, address)
    return json_response(
        {
            "address": address,
            "nonce": get_account_nonce(chain.tree, address),
            "next_nonce": node.next_nonce(address),
            "member": None if member is None else value_to_json(member),
        }
    )


def read_state(chain: Chain, skey: bytes, with_proof: bool) -> tuple[bytes | None, Any, bytes, int]:
    """Value, proof, root and height of one version: the lock keeps execution out meanwhile."""
    with chain.lock:
        root, height = chain.tree.root, chain.executed_height
        if with_proof:
            value, state_proof = chain.tree.prove(skey)
            return value, state_proof, root, height
        return chain.tree.get(skey), None, root, height


def resolve_height(chain: Chain, ref: str) -> int:
    if ref == "latest":
        return chain.tip_height
    if ref.isascii() and ref.isdigit():
        if len(ref) > HEIGHT_DIGITS_MAX:
            raise BlockNotFound(f"block {ref} not found")
        return int(ref)
    block_id = parse_hex(ref, "block reference (height, id or latest)", 32)
    height = chain.store.find_height_by_id(block_id)
    if height is not None:
        return height
    if block_id == chain.tip_id:
        return chain.tip_height  # committed, not yet executed: not in the id index yet
    raise BlockNotFound(f"no block with id {ref}")
