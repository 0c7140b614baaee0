"""Following a node's event stream (`GET /api/v1/events`, Server-Sent Events) from Python.

`iter_events` (sync) and `aiter_events` (asyncio) yield `StreamItem`s and survive dropped
connections: they reconnect with `Last-Event-ID` set to the last item received, so the node
resumes exactly after it. Before the first item, a reconnect starts from the height the node
reported in the `Taihang-From-Height` header, so even a live-only stream misses nothing.
Reconnects are bounded (`retries_max` in a row, with doubling backoff); a problem answer
(a future height, a malformed filter) is raised at once through `raise_for_problem`.

The SSE parsing is sans-IO (`SseParser`: lines in, messages out) and shared by both loops.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from taihang.errors import ProtocolViolation, TransientError
from taihang.sdk.errors import raise_for_problem

EVENTS_PATH: Final = "/api/v1/events"
FROM_HEIGHT_HEADER: Final = "taihang-from-height"
DEFAULT_TIMEOUT_S: Final = 45.0  # three of the node's 15 s keep-alives: silence means dropped
RETRIES_MAX: Final = 5
BACKOFF_S_FIRST: Final = 0.25
BACKOFF_S_MAX: Final = 5.0


@dataclass(frozen=True, slots=True)
class StreamItem:
    """One item of the stream: `id` is `"<height>:<seq>"`, `type` is block, tx or event."""

    id: str
    type: str
    height: int
    seq: int
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SseMessage:
    id: str
    event: str
    data: str


class SseParser:
    """The event-stream rules of the WHATWG HTML standard that a Taihang stream uses."""

    def __init__(self) -> None:
        self.last_id = ""
        self._event = ""
        self._data: list[str] = []

    def feed_line(self, line: str) -> SseMessage | None:
        """Take one line (without its end of line); a blank line completes a message."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the node's keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None  # `retry` and unknown fields are ignored, as the standard says

    def _dispatch(self) -> SseMessage | None:
        data, event = self._data, self._event or "message"
        self._data, self._event = [], ""
        if not data:
            return None
        return SseMessage(self.last_id, event, "\n".join(data))


def decode_item(message: SseMessage, source: str) -> StreamItem:
    """A `StreamItem` from an SSE message, or `ProtocolViolation` when the node broke the form."""
    height_text, _, seq_text = message.id.partition(":")
    try:
        data = json.loads(message.data)
        height, seq = int(height_text), int(seq_text)
    except ValueError:
        raise ProtocolViolation(
            f"malformed stream item {message.id!r}", peer=source, code="bad_stream"
        ) from None
    if not isinstance(data, dict):
        raise ProtocolViolation(
            f"stream item {message.id!r} is not an object", peer=source, code="bad_stream"
        )
    return StreamItem(message.id, message.event, height, seq, data)


@dataclass
class StreamResume:
    """What a (re)connection asks for, and how long to wait before the next try."""

    base_url: str
    params: dict[str, str]
    retries_max: int = RETRIES_MAX
    last_id: str = ""
    failures: int = 0
    parser: SseParser = field(default_factory=SseParser)

    def begin(self) -> tuple[dict[str, str], dict[str, str]]:
        """Query and headers of the next request; a fresh parser for its body."""
        self.parser = SseParser()
        headers = {"Accept": "text/event-stream"}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        return self.params, headers

    def on_connected(self, response: httpx.Response) -> None:
        # A 5xx raises TransientError (retried); a 4xx will not get better, so it propagates.
        raise_for_problem(response)
        start = response.headers.get(FROM_HEIGHT_HEADER)
        if start is not None and not self.last_id:
            self.params["from_height"] = start  # a live-only stream resumes where it began

    def on_line(self, line: str) -> StreamItem | None:
        message = self.parser.feed_line(line)
        if message is None:
            return None
        item = decode_item(message, self.base_url)
        self.last_id, self.failures = item.id, 0
        return item

    def compute_backoff_s(self, reason: str) -> float:
        """Seconds to wait before reconnecting; raises once `retries_max` tries in a row failed."""
        self.failures += 1
        if self.failures > self.retries_max:
            raise TransientError(
                f"event stream from {self.base_url} lost {self.failures} times in a row: {reason}"
            )
        return float(min(BACKOFF_S_MAX, BACKOFF_S_FIRST * 2 ** (self.failures - 1)))


def build_params(
    from_height: int | None, types: Iterable[str] | None, contract: str | None, event: str | None
) -> dict[str, str]:
    params = {
        "from_height": None if from_height is None else str(from_height),
        "types": None if types is None else ",".join(types),
        "contract": contract,
        "event": event,
    }
    return {k: v for k, v in params.items() if v is not None}


def iter_events(
    base_url: str,
    *,
    from_height: int | None = None,
    types: Iterable[str] | None = None,
    contract: str | None = None,
    event: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries_max: int = RETRIES_MAX,
) -> Generator[StreamItem, None, None]:
    """Items from `from_height` (default: live only), reconnecting when the stream drops.

    A generator: `close()` it (or leave the loop) to close the connection.
    """
    base = base_url.rstrip("/")
    resume = StreamResume(base, build_params(from_height, types, contract, event), retries_max)
    with httpx.Client(base_url=base, timeout=timeout_s) as http:
        while True:
            params, headers = resume.begin()
            try:
                with http.stream("GET", EVENTS_PATH, params=params, headers=headers) as response:
                    if response.status_code >= 400:
                        response.read()
                    resume.on_connected(response)
                    for line in response.iter_lines():
                        item = resume.on_line(line)
                        if item is not None:
                            yield item
                reason = "the node ended the stream"  # it is stopping; it may come back
            except (httpx.TransportError, TransientError) as exc:
                reason = str(exc) or type(exc).__name__
            time.sleep(resume.compute_backoff_s(reason))


async def aiter_events(
    base_url: str,
    *,
    from_height: int | None = None,
    types: Iterable[str] | None = None,
    contract: str | None = None,
    event: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries_max: int = RETRIES_MAX,
) -> AsyncGenerator[StreamItem, None]:
    """The asyncio form of `iter_events`, on `httpx.AsyncClient`."""
    base = base_url.rstrip("/")
    resume = StreamResume(base, build_params(from_height, types, contract, event), retries_max)
    async with httpx.AsyncClient(base_url=base, timeout=timeout_s) as http:
        while True:
            params, headers = resume.begin()
            try:
                async with http.stream(
                    "GET", EVENTS_PATH, params=params, headers=headers
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                    resume.on_connected(response)
                    async for line in response.aiter_lines():
                        item = resume.on_line(line)
                        if item is not None:
                            yield item
                reason = "the node ended the stream"
            except (httpx.TransportError, TransientError) as exc:
                reason = str(exc) or type(exc).__name__
            await asyncio.sleep(resume.compute_backoff_s(reason))
