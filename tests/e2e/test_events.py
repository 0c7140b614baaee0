"""Event streams (`GET /api/v1/events`, the SDK's `iter_events`, `taihang events tail`).

One node serves the module. A few transactions at the start give the history blocks, receipts
and events of three contracts (one transaction reverts, so it has a receipt and no event);
idle blocks arrive every second, so a stream always has something new within a second.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from itertools import islice
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from e2e_support import RunningNode, Sender, admin_sender, run_cli

from taihang.api import routes_events
from taihang.cli.network import init_network
from taihang.crypto import get_suite
from taihang.errors import InvalidInput, TransientError
from taihang.sdk.events import (
    SseParser,
    StreamItem,
    StreamResume,
    aiter_events,
    decode_item,
    iter_events,
)

pytestmark = pytest.mark.e2e


@dataclass
class History:
    tx_ids: dict[str, str]  # label -> tx id
    height: int  # every transaction above is executed at or below this height
    items: list[StreamItem]  # the unfiltered stream from height 1 through `height`


@pytest.fixture(scope="module")
def ev_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    running = RunningNode(init_network(tmp_path_factory.mktemp("events") / "net", nodes=1))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def history(ev_node: RunningNode) -> History:
    network = ev_node.network
    other = Sender(network, get_suite(network.crypto).tagged_hash(b"events", b"other"))
    with ev_node.client() as client:
        admin = admin_sender(network, client)
        txs = {
            "put": admin.tx("kv", "put", ["colour", "blue"]),
            "reverted": admin.tx("kv", "put", ["", "an empty key reverts"]),
            "issue": admin.tx("asset", "issue", [other.address, 5]),
            "transfer": admin.tx("asset", "transfer", [other.address, 7]),
        }
        tx_ids = {label: client.submit(raw) for label, raw in txs.items()}
    height = max(wait_committed(ev_node, tx_id)["height"] for tx_id in tx_ids.values())
    return History(tx_ids, height, read_through(ev_node.api, height))


def wait_committed(node: RunningNode, tx_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=node.api, timeout=30) as http:
        answer = http.get(f"/api/v1/transactions/{tx_id}", params={"wait": "true"}).json()
    assert answer["status"] == "committed", answer
    found: dict[str, Any] = answer
    return found


def read_through(api: str, height: int, **filters: Any) -> list[StreamItem]:
    """Items from height 1 through `height` (the next height's first item ends the read)."""
    items = []
    stream = iter_events(api, from_height=1, **filters)
    for item in stream:
        if item.height > height:
            break
        items.append(item)
    stream.close()
    return items


def take(stream: Generator[StreamItem, None, None], count: int) -> list[StreamItem]:
    items = list(islice(stream, count))
    stream.close()
    return items


def ids(items: list[StreamItem]) -> list[str]:
    return [item.id for item in items]


def read_sse(response: httpx.Response, count: int) -> list[StreamItem]:
    """`count` items of a raw streaming response, with the SDK's parser."""
    parser, items = SseParser(), []
    for line in response.iter_lines():
        message = parser.feed_line(line)
        if message is not None:
            items.append(decode_item(message, "test"))
            if len(items) == count:
                break
    return items


# --- history --------------------------------------------------------------------------------
def test_history_from_height_1_is_in_order_with_contiguous_heights(
    ev_node: RunningNode, history: History
) -> None:
    items = history.items
    blocks = [item for item in items if item.type == "block"]
    assert [b.height for b in blocks] == list(range(1, history.height + 1))
    for block in blocks:
        own = [item for item in items if item.height == block.height]
        assert own[0] is block
        assert [item.seq for item in own] == list(range(len(own)))  # no filter: seqs 0, 1, ...
        assert [item.id for item in own] == [f"{block.height}:{item.seq}" for item in own]
        assert sum(item.type == "tx" for item in own) == block.data["tx_count"]
        tx_id = None
        for item in own[1:]:
            if item.type == "tx":
                tx_id = item.data["tx_id"]
            else:  # an event follows the transaction that emitted it
                assert item.type == "event" and item.data["tx_id"] == tx_id
    with httpx.Client(base_url=ev_node.api) as http:
        last = http.get(f"/api/v1/blocks/{history.height}").json()
    assert blocks[-1].data["id"] == last["id"]
    assert blocks[-1].data["parent_id"] == last["parent_id"]


def test_history_items_carry_receipts_and_events(ev_node: RunningNode, history: History) -> None:
    txs = {item.data["tx_id"]: item for item in history.items if item.type == "tx"}
    events = [item for item in history.items if item.type == "event"]
    put, reverted = txs[history.tx_ids["put"]], txs[history.tx_ids["reverted"]]
    assert (put.data["contract"], put.data["method"], put.data["status"]) == ("kv", "put", "ok")
    assert reverted.data["status"] == "reverted" and reverted.data["events"] == []
    with httpx.Client(base_url=ev_node.api) as http:
        receipts = http.get(f"/api/v1/blocks/{put.height}/receipts").json()["receipts"]
    assert {k: put.data[k] for k in receipts[put.data["index"]]} == receipts[put.data["index"]]
    transfer = next(e for e in events if e.data["tx_id"] == history.tx_ids["transfer"])
    assert (transfer.data["contract"], transfer.data["name"]) == ("asset", "Transfer")
    assert transfer.data["data"]["amount"] == 7
    assert not any(e.data["tx_id"] == history.tx_ids["reverted"] for e in events)


def test_filters_by_type_contract_and_event_name(ev_node: RunningNode, history: History) -> None:
    def expected(keep: Any) -> list[str]:
        return [item.id for item in history.items if keep(item)]

    kv = expected(lambda i: i.type in ("tx", "event") and i.data["contract"] == "kv")
    got = take(iter_events(ev_node.api, from_height=1, types=["tx", "event"], contract="kv"), 3)
    assert ids(got) == kv[:3] and len(kv) == 3  # two kv txs, one Put event

    transfers = expected(lambda i: i.type == "event" and i.data["name"] == "Transfer")
    got = take(iter_events(ev_node.api, from_height=1, event="Transfer", types=["event"]), 1)
    assert ids(got) == transfers

    # `event` narrows events only: block items, and tx items of the contract, still pass.
    asset_issue = expected(
        lambda i: (
            i.type == "block"
            or (i.type == "tx" and i.data["contract"] == "asset")
            or (i.type == "event" and (i.data["contract"], i.data["name"]) == ("asset", "Issue"))
        )
    )
    stream = iter_events(ev_node.api, from_height=1, contract="asset", event="Issue")
    assert ids(take(stream, len(asset_issue))) == asset_issue


# --- resuming -------------------------------------------------------------------------------
def test_resume_after_last_event_id_misses_nothing_and_repeats_nothing(
    ev_node: RunningNode, history: History
) -> None:
    items = history.items
    # Cut inside the busiest height, right after its first transaction.
    busiest = max({i.height for i in items}, key=lambda h: sum(i.height == h for i in items))
    cut = next(k for k, i in enumerate(items) if i.height == busiest and i.type == "tx")
    rest = items[cut + 1 :]
    with (
        httpx.Client(base_url=ev_node.api, timeout=30) as http,
        http.stream("GET", "/api/v1/events", headers={"Last-Event-ID": items[cut].id}) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert ids(read_sse(response, len(rest))) == ids(rest)
    # With a filter, the same id resumes at the same place (seqs ignore filters).
    events = [i for i in rest if i.type == "event"]
    params = {"types": "event", "from_height": "1"}  # Last-Event-ID wins over from_height
    with (
        httpx.Client(base_url=ev_node.api, timeout=30) as http,
        http.stream(
            "GET", "/api/v1/events", params=params, headers={"Last-Event-ID": items[cut].id}
        ) as response,
    ):
        assert ids(read_sse(response, len(events))) == ids(events)


def test_resume_from_height_after_reading_a_prefix(ev_node: RunningNode, history: History) -> None:
    # A height is complete once the next block item arrives; resume at that height.
    resume_at = history.height
    head = []
    stream = iter_events(ev_node.api, from_height=1)
    for item in stream:
        if item.height == resume_at:
            break
        head.append(item)
    stream.close()
    tail = take(iter_events(ev_node.api, from_height=resume_at), len(history.items) - len(head))
    assert ids(head + tail) == ids(history.items)


def test_async_iterator_yields_the_same_items(ev_node: RunningNode, history: History) -> None:
    async def first(count: int) -> list[StreamItem]:
        items = []
        async for item in aiter_events(ev_node.api, from_height=1):
            items.append(item)
            if len(items) == count:
                break
        return items

    assert ids(asyncio.run(first(6))) == ids(history.items[:6])


# --- live -----------------------------------------------------------------------------------
def test_live_items_arrive_for_a_transaction_sent_after_the_stream_opened(
    ev_node: RunningNode, history: History
) -> None:
    with httpx.Client(base_url=ev_node.api) as http:
        executed = http.get("/api/v1/status").json()["executed_height"]
    stream = iter_events(ev_node.api)  # live only
    opened = next(stream)  # an idle block comes within a second, so the stream is open now
    assert (opened.type, opened.seq) == ("block", 0) and opened.height > executed
    with ev_node.client() as client:
        tx_id = client.submit(admin_sender(ev_node.network, client).tx("kv", "put", ["live", 1]))
    seen = [opened]
    for item in stream:
        seen.append(item)
        if item.type == "event" and item.data["tx_id"] == tx_id:
            break
    stream.close()
    blocks = [i.height for i in seen if i.type == "block"]
    assert blocks == list(range(opened.height, opened.height + len(blocks)))
    tx = next(i for i in seen if i.type == "tx" and i.data["tx_id"] == tx_id)
    assert tx.data["status"] == "ok" and seen[-1].data["name"] == "Put"


# --- errors ---------------------------------------------------------------------------------
def test_future_height_is_a_problem_that_names_the_executed_height(ev_node: RunningNode) -> None:
    with httpx.Client(base_url=ev_node.api) as http:
        response = http.get("/api/v1/events", params={"from_height": 10**9})
        executed = http.get("/api/v1/status").json()["executed_height"]
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "future_height" and "executed height is" in body["detail"]
    assert int(body["detail"].split("executed height is ")[1].split(",")[0]) <= executed
    with pytest.raises(InvalidInput) as raised:
        next(iter_events(ev_node.api, from_height=10**9))
    assert raised.value.code == "future_height" and "executed height" in raised.value.message


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"from_height": "-1"}, {}),
        ({"from_height": "abc"}, {}),
        ({"from_height": "1.5"}, {}),
        ({"types": "block,nope"}, {}),
        ({"types": ""}, {}),
        ({"contract": "x" * 200}, {}),
        ({}, {"Last-Event-ID": "7"}),
        ({}, {"Last-Event-ID": "a:b"}),
    ],
)
def test_malformed_requests_are_problems(
    ev_node: RunningNode, params: dict[str, str], headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=ev_node.api) as http:
        response = http.get("/api/v1/events", params=params, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "malformed"


# --- cli ------------------------------------------------------------------------------------
def test_cli_tail_prints_json_lines(ev_node: RunningNode, history: History) -> None:
    home = ev_node.network.path
    result = run_cli("events", "tail", "--from-height", "1", "--limit", "4", home=home)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ids(history.items[:4])
    assert lines[0]["type"] == "block" and lines[0]["block_id"] == history.items[0].data["id"]
    result = run_cli(
        "events", "tail", "--from-height", "1", "--type", "tx,event", "--contract", "asset",
        "--event", "Transfer", "--limit", "3", home=home,
    )  # fmt: skip
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["type"] for line in lines] == ["tx", "tx", "event"]
    assert (lines[2]["contract"], lines[2]["name"]) == ("asset", "Transfer")


# --- reconnecting ---------------------------------------------------------------------------
def test_sdk_reconnects_across_a_node_restart_without_gaps(
    ev_node: RunningNode, history: History
) -> None:
    """Last: it restarts the module's node. An open stream must not hold the node's stop."""
    stream = iter_events(ev_node.api, from_height=1, timeout_s=10)
    before = list(islice(stream, len(history.items)))
    with httpx.Client(base_url=ev_node.api, timeout=30) as http:
        # A client that goes away mid-stream must not leave the node waiting for it either.
        with http.stream("GET", "/api/v1/events", params={"from_height": "1"}) as dropped:
            read_sse(dropped, 1)
        started = time.monotonic()
        assert ev_node.stop() == 0
        assert time.monotonic() - started < 10
    ev_node.start()
    after = []
    for item in stream:
        after.append(item)
        if item.height >= before[-1].height + 3:
            break
    stream.close()
    joined = before + after
    assert len(set(ids(joined))) == len(joined)
    blocks = [i.height for i in joined if i.type == "block"]
    assert blocks == list(range(1, len(blocks) + 1))


# --- in-process: parser, backoff, keep-alive (no node needed) ------------------------------
def test_sse_parser_follows_the_event_stream_rules() -> None:
    parser = SseParser()
    lines = [": keep-alive", "", "id: 4:1", "event: tx", 'data: {"a":', "data: 1}", "retry: 9", ""]
    messages = [m for m in map(parser.feed_line, lines) if m is not None]
    assert len(messages) == 1
    assert (messages[0].id, messages[0].event, messages[0].data) == ("4:1", "tx", '{"a":\n1}')
    assert parser.feed_line("id: 5:0") is None and parser.feed_line("") is None  # no data
    assert parser.last_id == "5:0"  # ...but the id still counts, as the standard says


def test_reconnect_backoff_is_bounded() -> None:
    resume = StreamResume("http://node", {}, retries_max=3)
    delays = [resume.compute_backoff_s("dropped") for _ in range(3)]
    assert delays == sorted(delays) and delays[0] > 0
    with pytest.raises(TransientError, match="4 times in a row"):
        resume.compute_backoff_s("dropped")


class _IdleNode:
    """Nothing new is ever executed: the stream can only send keep-alives."""

    executed_height = 0
    chain = object()

    def __init__(self) -> None:
        self._stopping = asyncio.Event()

    @property
    def is_stopping(self) -> bool:
        return self._stopping.is_set()

    async def wait_executed(self, timeout_s: float) -> bool:
        await asyncio.sleep(timeout_s)
        return False


class _Request:
    def __init__(self, node: _IdleNode, polls_max: int) -> None:
        self.app = SimpleNamespace(state=SimpleNamespace(node=node))
        self.polls, self.polls_max = 0, polls_max

    async def is_disconnected(self) -> bool:
        self.polls += 1
        return self.polls > self.polls_max


def test_idle_stream_sends_keep_alives_and_ends_on_disconnect_or_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(routes_events, "KEEPALIVE_S", 0.02)
    monkeypatch.setattr(routes_events, "WAIT_SLICE_S", 0.01)
    wanted = routes_events.parse_filter(None, None, None)

    async def collect(node: _IdleNode, polls_max: int, slots: Any) -> list[bytes]:
        stream = routes_events.stream_frames(
            _Request(node, polls_max), node, routes_events.Cursor(1), wanted, slots
        )
        return [frame async for frame in stream]

    slots = routes_events.get_stream_slots(_Request(_IdleNode(), 0))
    frames = asyncio.run(collect(_IdleNode(), 20, slots))
    assert frames and set(frames) == {b": keep-alive\n\n"}
    assert slots.open == 0  # the slot comes back when the client goes

    async def stop_soon() -> list[bytes]:
        node = _IdleNode()
        asyncio.get_running_loop().call_later(0.05, node._stopping.set)
        return await collect(node, 10**9, slots)

    asyncio.run(stop_soon())  # returns: a stopping node ends the stream
    assert slots.open == 0
