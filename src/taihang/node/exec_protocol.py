"""The messages between the node and its contract executor worker, and their framing.

The node (which holds the keys and the store) sends a block or a query; while the worker runs
it, the worker asks for the state it needs (`Read`, `Scan`) and the node answers each request
before the worker goes on; the worker ends with `BlockDone`, `QueryDone` or `Halted`. Long
blocks carry `Progress` messages so the node's watchdog can tell slow from stuck.

Both directions use the canonical tagged codec, so neither side ever unpickles anything from
the other: a worker whose sandbox was escaped still cannot run code in the node by what it
sends. Each message is a 4-byte big-endian length and that many bytes.
"""

from __future__ import annotations

import msgspec

from taihang.codec import Canonical
from taihang.codec.envelope import TaggedCodec
from taihang.ledger.receipt import Receipt

MESSAGE_BYTES_MAX = 512 * 1024 * 1024  # a block's write set and receipts, with room to spare
LENGTH_BYTES = 4


# --- node -> worker ---------------------------------------------------------------------------
class ExecuteBlock(Canonical, frozen=True):
    """Execute block `height` over the executed state at `height - 1`."""

    channel: str
    height: int
    timestamp_ms: int
    txs: list[bytes]  # the block's decoded-valid transactions, as their envelope bytes


class Query(Canonical, frozen=True):
    """Answer a read-only call over the executed state at `base_height`."""

    base_height: int
    contract: str
    method: str
    args: msgspec.Raw  # canonical dynamic list


class ReadReply(Canonical, frozen=True):
    values: list[bytes | None]  # in the order of the `Read` keys


class ScanReply(Canonical, frozen=True):
    items: list[tuple[bytes, bytes]]


# --- worker -> node ---------------------------------------------------------------------------
class Read(Canonical, frozen=True):
    keys: list[bytes]


class Scan(Canonical, frozen=True):
    prefix: bytes
    after: bytes | None
    limit: int


class Progress(Canonical, frozen=True):
    txs_done: int


class BlockDone(Canonical, frozen=True):
    receipts: list[Receipt]
    writes: list[tuple[bytes, bytes | None]]  # the block's write set, None = delete
    nonces: list[tuple[str, int]]  # each sender's next nonce after the block


class QueryDone(Canonical, frozen=True):
    value: bytes  # the canonical return value; empty when the query failed
    error_kind: str  # "" on success, "contract" (a failed call) or "input" (a bad query)
    error_code: str
    error_message: str


class Halted(Canonical, frozen=True):
    """The worker stopped on something no contract may cause (a tripped limit, a bug)."""

    reason: str


WorkerMessage = Read | Scan | Progress | BlockDone | QueryDone | Halted
NodeMessage = ExecuteBlock | Query | ReadReply | ScanReply

TO_WORKER: TaggedCodec[NodeMessage] = TaggedCodec(
    {ExecuteBlock: 1, Query: 2, ReadReply: 3, ScanReply: 4},
    "executor request",
    max_bytes=MESSAGE_BYTES_MAX,
)
FROM_WORKER: TaggedCodec[WorkerMessage] = TaggedCodec(
    {Read: 1, Scan: 2, Progress: 3, BlockDone: 4, QueryDone: 5, Halted: 6},
    "executor reply",
    max_bytes=MESSAGE_BYTES_MAX,
)


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(LENGTH_BYTES, "big") + payload


def frame_length(header: bytes) -> int:
    """The payload length a header announces; raise `ValueError` past the limit."""
    length = int.from_bytes(header, "big")
    if length > MESSAGE_BYTES_MAX:
        raise ValueError(f"a message of {length} bytes exceeds the limit of {MESSAGE_BYTES_MAX}")
    return length
