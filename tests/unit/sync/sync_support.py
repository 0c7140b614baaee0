"""Helpers for the ledger-sync tests: one certified chain built once, and tampered copies.

`BLOCKS[h]` is the block at height h (`BLOCKS[0]` is genesis), each in round h so every QC
commits its parent (consecutive rounds); `IDS[h]` is its id. Some blocks carry transactions,
so a tampered payload is a real change. `TIP_HEIGHT_MAX` is the highest height with a commit
proof (the QC on the block above it).
"""

from __future__ import annotations

from typing import Any

import msgspec
from consensus_support import CHANNEL, ChainBuilder, Keys, make_genesis, make_keys

from taihang.ledger.block import Block
from taihang.sync.messages import RangeRequest, RangeResponse, Tip

CHAIN_LENGTH = 49  # blocks above genesis
TIP_HEIGHT_MAX = CHAIN_LENGTH - 1

KEYS: Keys = make_keys(4)
SUITE = KEYS.suite
GENESIS = make_genesis(KEYS)
BUILDER = ChainBuilder(KEYS, GENESIS)
GENESIS_ID = BUILDER.genesis_id


def build_transactions(height: int) -> list[bytes]:
    return [f"tx/{height}/{i}".encode() for i in range(height % 3)]


def _build_chain() -> list[Block]:
    blocks = [GENESIS]
    for height in range(1, CHAIN_LENGTH + 1):
        child = BUILDER.child(blocks[-1], round=height, transactions=build_transactions(height))
        blocks.append(child)
    return blocks


BLOCKS: list[Block] = _build_chain()
IDS: list[bytes] = [BUILDER.block_id(block) for block in BLOCKS]


def build_tip(height: int, nonce: int = 7) -> Tip:
    """The genuine certified tip at `height`: its proof is the QC on the block above."""
    if height == 0:
        return Tip(nonce=nonce, height=0, block_id=GENESIS_ID, proof=None)
    proof = BUILDER.qc_of(BLOCKS[height + 1])
    return Tip(nonce=nonce, height=height, block_id=IDS[height], proof=proof)


def get_range(start: int, count: int) -> list[Block]:
    return BLOCKS[start : start + count]


def build_response(request: RangeRequest) -> RangeResponse:
    return RangeResponse(start=request.start, blocks=get_range(request.start, request.count))


def replace_header(block: Block, **changes: Any) -> Block:
    header = msgspec.structs.replace(block.header, **changes)
    return msgspec.structs.replace(block, header=header)


def replace_transactions(block: Block, transactions: list[bytes]) -> Block:
    return msgspec.structs.replace(block, transactions=transactions)


def tamper_range(blocks: list[Block], offset: int) -> list[Block]:
    """The range with one header field of block `offset` changed (its id no longer matches)."""
    tampered = list(blocks)
    block = tampered[offset]
    tampered[offset] = replace_header(block, timestamp_ms=block.header.timestamp_ms + 1)
    return tampered


__all__ = [
    "BLOCKS",
    "BUILDER",
    "CHANNEL",
    "GENESIS",
    "GENESIS_ID",
    "IDS",
    "KEYS",
    "SUITE",
    "TIP_HEIGHT_MAX",
    "build_response",
    "build_tip",
    "get_range",
    "replace_header",
    "replace_transactions",
    "tamper_range",
]
