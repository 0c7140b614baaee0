"""One authenticated connection to a peer: its bounded outbound queue, writer and watchdog.

Theory of operation
-------------------
`Transport.send` never blocks: it appends the frame's header and body to the connection's
queue (a list of byte strings, bounded in frames by `queue_frames_max`; when full the newest
frame is refused and the caller counts it) and sets an event. One writer task per connection
wakes, takes the whole queue, joins it into one `bytes` (one TLS record stream, one syscall)
and awaits `drain()`; frames queued meanwhile go out in the next batch. Under load every write
carries many frames; idle, a frame goes out as soon as the loop runs the writer.

A watchdog timer fires every `keepalive_s`: if nothing was written for that long it queues a
KEEPALIVE frame, and if nothing was read for `idle_s` it closes the connection, so a peer that
vanished without a FIN (power loss, partition) is noticed and redialled. The watchdog is a
plain loop timer, not a task: no per-frame cost.

The connection does no decoding: the transport's reader loop owns the receive side and
updates `last_read_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import Counter
from typing import Final

from taihang.net.frames import KEEPALIVE, encode_frame
from taihang.node.logs import log

logger = logging.getLogger("taihang.net")

KEEPALIVE_FRAME: Final = encode_frame(KEEPALIVE, b"")
CLOSE_TIMEOUT_S: Final = 1.0  # a TLS close that takes longer is aborted


class Connection:
    """An adopted, authenticated connection; owned by the `Transport` that made it."""

    __slots__ = (
        "_frames_queued",
        "_idle_s",
        "_keepalive_s",
        "_loop",
        "_parts",
        "_queue_frames_max",
        "_stats",
        "_wake",
        "_watchdog",
        "abort",
        "dialler",
        "end_reason",
        "last_read_s",
        "last_write_s",
        "peer",
        "reader",
        "tasks",
        "writer",
    )

    def __init__(
        self,
        *,
        peer: str,
        dialler: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        queue_frames_max: int,
        stats: Counter[str],
        keepalive_s: float,
        idle_s: float,
    ) -> None:
        self.peer = peer
        self.dialler = dialler  # the node name that opened the TCP connection
        self.reader = reader
        self.writer = writer
        self.end_reason = ""
        self.abort = False  # close without the TLS goodbye (a peer that broke the rules)
        self.tasks: tuple[asyncio.Task[None], ...] = ()
        self._loop = asyncio.get_running_loop()
        self.last_read_s = self.last_write_s = self._loop.time()
        self._parts: list[bytes] = []
        self._frames_queued = 0
        self._queue_frames_max = queue_frames_max
        self._stats = stats
        self._keepalive_s = keepalive_s
        self._idle_s = idle_s
        self._wake = asyncio.Event()
        self._watchdog: asyncio.TimerHandle | None = None

    @property
    def frames_queued(self) -> int:
        return self._frames_queued

    def enqueue(self, header: bytes, body: bytes) -> bool:
        """Queue one frame; False when the queue is full (the frame is dropped)."""
        if self._frames_queued >= self._queue_frames_max:
            return False
        self._parts.append(header)
        if body:
            self._parts.append(body)
        self._frames_queued += 1
        self._wake.set()
        return True

    def take_over(self, old: Connection) -> None:
        """Inherit `old`'s unsent frames (it is being replaced by this connection)."""
        room = self._queue_frames_max - self._frames_queued
        if old._frames_queued <= room:
            self._parts = old._parts + self._parts
            self._frames_queued += old._frames_queued
            if self._parts:
                self._wake.set()
        else:
            self._stats["frames_dropped_queue_full"] += old._frames_queued
        old._parts, old._frames_queued = [], 0

    def drop_queue(self) -> int:
        dropped, self._parts, self._frames_queued = self._frames_queued, [], 0
        return dropped

    async def write_loop(self) -> None:
        """Coalesce and write queued frames until cancelled or the stream fails."""
        try:
            while True:
                if not self._parts:
                    self._wake.clear()
                    await self._wake.wait()
                parts, frames = self._parts, self._frames_queued
                self._parts, self._frames_queued = [], 0
                data = b"".join(parts)
                self.writer.write(data)
                self.last_write_s = self._loop.time()
                self._stats["frames_out"] += frames
                self._stats["bytes_out"] += len(data)
                self._stats["writes"] += 1
                await self.writer.drain()
        except (OSError, ssl.SSLError, RuntimeError) as error:
            # RuntimeError: asyncio's "unable to perform operation on a closed transport".
            self.end_reason = self.end_reason or f"write failed: {error!r}"
        except Exception as error:  # contained: one bad connection never stops the node
            log(
                logger, "connection_writer_failed", logging.ERROR, peer=self.peer, error=repr(error)
            )
            self.end_reason = self.end_reason or f"writer failed: {error!r}"

    def start_watchdog(self) -> None:
        self._watchdog = self._loop.call_later(self._keepalive_s, self._on_watchdog)

    def stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _on_watchdog(self) -> None:
        now = self._loop.time()
        if now - self.last_read_s > self._idle_s:
            self.end_reason = f"idle: nothing read for {self._idle_s:.1f} s"
            self.writer.transport.abort()  # the reader sees EOF; the transport cleans up
            self._watchdog = None
            return
        if now - self.last_write_s >= self._keepalive_s and not self._parts:
            self._parts.append(KEEPALIVE_FRAME)
            self._frames_queued += 1
            self._wake.set()
        self._watchdog = self._loop.call_later(self._keepalive_s, self._on_watchdog)


async def close_stream(writer: asyncio.StreamWriter, *, abort: bool = False) -> None:
    """Close a stream, politely unless `abort`; never waits more than `CLOSE_TIMEOUT_S`."""
    if abort:
        writer.transport.abort()
        return
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await writer.wait_closed()
    except (TimeoutError, OSError, ssl.SSLError):
        writer.transport.abort()
    except Exception as error:  # pragma: no cover - a loop implementation's surprise
        log(logger, "close_failed", logging.WARNING, error=repr(error))
        with contextlib.suppress(Exception):
            writer.transport.abort()
