"""Event streams: blocks, transaction receipts and contract events over Server-Sent Events.

Theory of operation. A stream is a cursor over the executed ledger. Each executed height h
expands, always the same way, into numbered items: seq 0 is the `block` item, then for each
transaction in block order its `tx` item followed by one `event` item per event in its
receipt. The numbering ignores the client's filters, so the SSE id `h:seq` names the same item
in every stream, and resuming after it (`Last-Event-ID`) is exact whatever the filters.

The handler reads heights from the store while they are executed (history), then waits on the
node for the next one (live). Each step builds a bounded run of heights off the event loop, so
a long history never stalls block production; between steps it checks that the client is
still there and that the node is not stopping (uvicorn's graceful shutdown waits for every
open response, so a stream that outlived its node would keep the node from stopping).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from taihang.api.responses import get_chain, get_node, problem
from taihang.api.wire import block_tx_to_json, receipt_to_json, struct_to_json
from taihang.codec import decode, decode_value, value_to_json
from taihang.errors import InvalidInput
from taihang.ledger.block import Block, compute_block_id
from taihang.ledger.receipt import Receipt

if TYPE_CHECKING:
    from taihang.node.chain import Chain
    from taihang.node.runtime import Node

router = APIRouter(prefix="/api/v1", tags=["events"])

ITEM_TYPES: Final = ("block", "tx", "event")
KEEPALIVE_S: Final = 15.0  # below common proxy idle timeouts (30-60 s) and the SDK's read timeout
WAIT_SLICE_S: Final = 1.0  # how soon an idle stream notices a gone client or a stopping node
STEP_HEIGHTS_MAX: Final = 64  # heights built per step, so a step is bounded in time...
STEP_ITEMS_MAX: Final = 2_000  # ...and in memory; a single height is never split
STREAMS_MAX: Final = 256  # open streams per node; each holds a connection and a task
FILTER_CHARS_MAX: Final = 128
FROM_HEIGHT_HEADER: Final = "Taihang-From-Height"  # where the stream starts, for reconnecting
_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """Which items a client wants: `contract` applies to tx and event items, `event` to events."""

    types: frozenset[str]
    contract: str | None
    event: str | None

    def is_tx_wanted(self, contract: str) -> bool:
        return "tx" in self.types and self.contract in (None, contract)

    def is_event_wanted(self, contract: str, name: str) -> bool:
        return (
            "event" in self.types
            and self.contract in (None, contract)
            and self.event in (None, name)
        )


@dataclass(frozen=True, slots=True)
class Cursor:
    """The next item to send: at `height`, the first item with a seq above `after_seq`."""

    height: int
    after_seq: int = -1


class _StreamSlots:
    """Counts open streams against `STREAMS_MAX`; one per app, touched only on the event loop."""

    def __init__(self) -> None:
        self.open = 0


_PROBLEM: Final[dict[str, Any]] = {"content": {"application/problem+json": {}}}
EVENTS_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "`text/event-stream`: `block`, `tx` and `event` items, ids `height:seq`",
        "content": {"text/event-stream": {}},
    },
    400: {"description": "`malformed` input or a `future_height`", **_PROBLEM},
    503: {"description": "`too_many_streams`: retry later", **_PROBLEM},
}


@router.get("/events", response_class=StreamingResponse, responses=EVENTS_RESPONSES)
async def stream_events(
    request: Request,
    # Parsed by hand (not `int`) so that every bad value gets the same `malformed` answer.
    from_height: Annotated[
        str | None, Query(description="First height; default: the next one executed (live).")
    ] = None,
    types: Annotated[str | None, Query(description="Comma list of block, tx, event.")] = None,
    contract: Annotated[str | None, Query(description="Only this contract's tx/events.")] = None,
    event: Annotated[str | None, Query(description="Only events with this name.")] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="Resume after this item id.")
    ] = None,
) -> Response:
    """Blocks, receipts and events as `text/event-stream`, from a height or live."""
    node = get_node(request)
    wanted = parse_filter(types, contract, event)
    cursor = parse_cursor(last_event_id, from_height, node.executed_height)
    slots = get_stream_slots(request)
    if slots.open >= STREAMS_MAX:
        return problem(503, "too_many_streams", f"this node serves at most {STREAMS_MAX} streams")
    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # a buffering proxy would hold live items back
        FROM_HEIGHT_HEADER: str(cursor.height),
    }
    return StreamingResponse(
        stream_frames(request, node, cursor, wanted, slots),
        media_type="text/event-stream",
        headers=headers,
    )


def parse_filter(types: str | None, contract: str | None, event: str | None) -> StreamFilter:
    names = ITEM_TYPES if types is None else tuple(t.strip() for t in types.split(","))
    unknown = sorted(set(names) - set(ITEM_TYPES))
    if unknown or not names:
        raise InvalidInput(
            f"types must be a comma list among {', '.join(ITEM_TYPES)}; got {types!r}",
            code="malformed",
        )
    for label, value in (("contract", contract), ("event", event)):
        if value is not None and not 0 < len(value) <= FILTER_CHARS_MAX:
            raise InvalidInput(
                f"{label} must have 1 to {FILTER_CHARS_MAX} characters", code="malformed"
            )
    return StreamFilter(frozenset(names), contract, event)


def parse_cursor(last_event_id: str | None, from_height: str | None, executed: int) -> Cursor:
    """Where the stream starts; `Last-Event-ID` wins, as an EventSource resends the same URL."""
    if last_event_id:
        label = "Last-Event-ID height"
        height_text, _, seq_text = last_event_id.partition(":")
        cursor = Cursor(parse_count(height_text, label), parse_count(seq_text, "Last-Event-ID seq"))
    elif from_height is None:
        label, cursor = "from_height", Cursor(executed + 1)  # live only
    else:
        label, cursor = "from_height", Cursor(parse_count(from_height, "from_height"))
    if cursor.height > executed + 1:
        raise InvalidInput(
            f"{label} {cursor.height} is in the future: the executed height is {executed}, "
            f"so a stream can start at {executed + 1} at most",
            code="future_height",
        )
    return cursor


def parse_count(text: str, what: str) -> int:
    # isdigit() alone accepts non-ASCII digits such as '²', which int() refuses.
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise InvalidInput(f"{what} must be a non-negative integer, got {text!r}", code="malformed")
    return int(text)


def get_stream_slots(request: Request) -> _StreamSlots:
    slots: _StreamSlots | None = getattr(request.app.state, "event_stream_slots", None)
    if slots is None:
        slots = _StreamSlots()
        request.app.state.event_stream_slots = slots
    return slots


async def stream_frames(
    request: Request, node: Node, cursor: Cursor, wanted: StreamFilter, slots: _StreamSlots
) -> AsyncIterator[bytes]:
    """History then live, one bounded step at a time, until the client or the node goes."""
    chain = get_chain(request)
    last_sent = time.monotonic()
    # Counted here, not in the handler: a response cancelled before its first chunk never
    # starts this generator, so its `finally` would never give the slot back.
    slots.open += 1
    try:
        while not is_node_stopping(node) and not await request.is_disconnected():
            if cursor.height <= node.executed_height:
                frames, cursor = await asyncio.to_thread(
                    build_frames, chain, cursor, node.executed_height, wanted
                )
            else:
                frames = b""
                await node.wait_executed(WAIT_SLICE_S)
            if not frames and time.monotonic() - last_sent >= KEEPALIVE_S:
                frames = b": keep-alive\n\n"  # also while a long history is all filtered out
            if frames:
                yield frames
                last_sent = time.monotonic()
    finally:
        slots.open -= 1


def is_node_stopping(node: Node) -> bool:
    # uvicorn's graceful shutdown waits for every open response: end the stream first.
    return node.is_stopping


def build_frames(
    chain: Chain, cursor: Cursor, executed: int, wanted: StreamFilter
) -> tuple[bytes, Cursor]:
    """SSE frames from `cursor` on, a bounded run of whole heights; and the next cursor."""
    frames: list[bytes] = []
    height = cursor.height
    last = min(executed, cursor.height + STEP_HEIGHTS_MAX - 1)
    items = 0
    while height <= last and items < STEP_ITEMS_MAX:
        after_seq = cursor.after_seq if height == cursor.height else -1
        for seq, kind, data in expand_height(chain, height):
            items += 1
            if seq > after_seq and is_wanted(wanted, kind, data):
                frames.append(encode_frame(height, seq, kind, data))
        height += 1
    return b"".join(frames), Cursor(height)


def expand_height(chain: Chain, height: int) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Every item of an executed height, in stream order, numbered from 0 (the block)."""
    raw = chain.store.find_block(height)
    assert raw is not None, "an executed height has its block"
    block = decode(raw, Block)
    header = block.header
    yield (
        0,
        "block",
        {
            "id": compute_block_id(chain.suite, header).hex(),
            "height": height,
            "parent_id": header.parent_id.hex(),
            "tx_count": len(block.transactions),
            "timestamp_ms": header.timestamp_ms,
            "exec_root": struct_to_json(header.exec_root),
        },
    )
    seq = 1
    receipts = chain.store.get_receipts(height)
    for index, (tx_raw, receipt_raw) in enumerate(zip(block.transactions, receipts, strict=True)):
        receipt = decode(receipt_raw, Receipt)
        tx = block_tx_to_json(tx_raw, chain.suite)  # tolerates a Byzantine proposer's bytes
        yield (
            seq,
            "tx",
            {
                **receipt_to_json(receipt),
                "height": height,
                "index": index,
                "contract": tx["contract"],
                "method": tx["method"],
                "sender": tx["sender"],
            },
        )
        seq += 1
        for event_index, event in enumerate(receipt.events):
            yield (
                seq,
                "event",
                {
                    "height": height,
                    "tx_id": receipt.tx_id.hex(),
                    "index": index,
                    "event_index": event_index,
                    "contract": event.contract,
                    "name": event.name,
                    "data": value_to_json(decode_value(bytes(event.data))),
                },
            )
            seq += 1


def is_wanted(wanted: StreamFilter, kind: str, data: dict[str, Any]) -> bool:
    if kind == "block":
        return "block" in wanted.types
    if kind == "tx":
        return wanted.is_tx_wanted(data["contract"])
    return wanted.is_event_wanted(data["contract"], data["name"])


def encode_frame(height: int, seq: int, kind: str, data: dict[str, Any]) -> bytes:
    return b"id: %d:%d\nevent: %s\ndata: %s\n\n" % (height, seq, kind.encode(), _json.encode(data))
