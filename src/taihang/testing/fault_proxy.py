"""A TCP proxy for tests that cuts, blackholes and delays the links between chosen nodes.

Theory of operation
-------------------
The proxy is told, for every ordered pair of node names (A, B), where B really listens. It
opens one listening port per ordered pair on 127.0.0.1, and the test writes node A's config so
that A dials peer B at `port(A, B)` instead of B's real port. Since the transport lets both
ends of a pair dial (the connection dialled by the lower name wins, ADR 0006), every pair
needs both routes, A→B and B→A; then every byte between nodes goes through the proxy.

Each accepted connection becomes a *relay*: the proxy dials the real target and carries two
byte *flows*, the dialler's bytes to the target and the target's bytes back. Faults belong to
flows between node names, not to connections or ports: "node2's outbound bytes" are the flows
(node2, X) for every X, whichever node dialled the connection that carries them.

Per flow (src, dst), changed at run time by the test:

- `delay(src, dst, delay_ms)`: every chunk read from src is written to dst `delay_ms` after it
  arrived. One sender per flow writes chunks in arrival order, so order is kept and throughput
  is not limited by the delay (latency, not bandwidth).
- `drop(src, dst)`: a blackhole: chunks read from src are discarded (and so is its EOF); the
  other direction still flows. TLS over TCP cannot survive lost bytes, so this is what a
  one-way partition means here: while it lasts, dst hears nothing from src on the existing
  connection (the transport at dst notices after its idle timeout, 20 s, and closes it), and
  no new connection between them can finish its TLS handshake, in either direction, because
  one direction of every handshake is lost. A relay that lost bytes is marked; `heal` resets
  it, since its TLS stream is corrupt, so the nodes redial at once rather than fail on garbage.

Per unordered pair {a, b}:

- `cut(a, b)`: a refusing partition (a firewall's REJECT): every relay between a and b is
  reset (RST both ways) and every new connection between them is accepted and reset at once,
  which the dialler sees as a failed dial. A TCP connection has no one-way cut; use `drop`.
- `heal(a, b)`: forget every fault between a and b, both ways (cut, drops and delays), and
  reset the relays that lost bytes.

Node-wide helpers: `isolate(node)` cuts every pair of node's, `heal_all()` heals everything.

Threads: the proxy runs its own event loop in a daemon thread. Every control call from the
test's thread runs a coroutine on that loop and waits for it, so when `cut` returns, the
relays are reset and the next connection is refused. All state is owned by the loop thread.

Limits: each flow reads up to `chunk_bytes` at a time and queues at most `queue_chunks_max`
chunks; a full queue stops reading from the source (back-pressure), so a relay holds at most
about `chunk_bytes * queue_chunks_max` bytes per direction. Connecting to the real target
times out after `connect_timeout_s`; an unreachable target resets the dialler's connection.

An unexpected exception inside a relay is logged, recorded in `errors` (tests assert it stays
empty) and ends only that relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
import traceback
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

logger = logging.getLogger("taihang.testing.fault_proxy")

Flow = tuple[str, str]  # (source node, destination node): one direction of bytes
Pair = tuple[str, str]  # (lower name, higher name): a link, whichever way bytes go
Address = tuple[str, int]

CHUNK_BYTES_DEFAULT: Final = 64 * 1024
QUEUE_CHUNKS_MAX_DEFAULT: Final = 256
CONNECT_TIMEOUT_S_DEFAULT: Final = 5.0
CALL_TIMEOUT_S: Final = 10.0
_T = TypeVar("_T")


@dataclass(frozen=True)
class FlowFaults:
    """What happens to the bytes of one flow (src → dst)."""

    delay_ms: int = 0
    drop: bool = False


@dataclass(frozen=True)
class FlowStats:
    """Bytes of one flow since the proxy started: written to dst, and discarded by `drop`."""

    bytes_forwarded: int = 0
    bytes_dropped: int = 0


NO_FAULTS: Final = FlowFaults()
# A queued chunk: when to deliver it (loop time) and its bytes; b"" is the source's EOF, and
# None (instead of a chunk) tells the sender that a blackholed source closed: stop quietly.
_Chunk = tuple[float, bytes]


@dataclass(eq=False)
class _Relay:
    """One proxied TCP connection: `dialler` connected to us on its way to `target`."""

    dialler: str
    target: str
    lost_bytes: bool = False  # a blackhole ate some of its bytes: its TLS stream is corrupt
    reset: bool = False  # end with RST rather than FIN
    task: asyncio.Task[None] | None = None
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


def _pair(a: str, b: str) -> Pair:
    return (a, b) if a <= b else (b, a)


class FaultProxy:
    """TCP links between named nodes, each faultable at run time; see the module docstring."""

    def __init__(
        self,
        routes: Mapping[Flow, Address],
        *,
        host: str = "127.0.0.1",
        chunk_bytes: int = CHUNK_BYTES_DEFAULT,
        queue_chunks_max: int = QUEUE_CHUNKS_MAX_DEFAULT,
        connect_timeout_s: float = CONNECT_TIMEOUT_S_DEFAULT,
    ) -> None:
        """`routes[(a, b)]` is where b really listens, for a's dials to b."""
        assert routes, "a proxy needs at least one route"
        assert all(a != b for a, b in routes), "a node does not dial itself"
        assert chunk_bytes > 0 and queue_chunks_max > 0
        self.routes = dict(routes)
        self.host = host
        self.errors: list[str] = []  # unexpected exceptions inside relays (proxy bugs)
        self._chunk_bytes = chunk_bytes
        self._queue_chunks_max = queue_chunks_max
        self._connect_timeout_s = connect_timeout_s
        self._ports: dict[Flow, int] = {}
        self._servers: list[asyncio.Server] = []
        self._faults: dict[Flow, FlowFaults] = {}
        self._cut: set[Pair] = set()
        self._relays: dict[Pair, set[_Relay]] = {}
        self._forwarded: dict[Flow, int] = {}
        self._dropped: dict[Flow, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the loop thread and listen on one port per route (ports chosen by the OS)."""
        assert self._thread is None, "start a proxy once"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="fault-proxy", daemon=True)
        self._thread.start()
        self._call(self._listen())

    def close(self) -> None:
        """Stop listening, reset every relay, stop the thread; idempotent."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CALL_TIMEOUT_S)

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what the test reads -----------------------------------------------------------------
    def port(self, dialler: str, target: str) -> int:
        """The port `dialler` must dial to reach `target` through the proxy."""
        return self._ports[(dialler, target)]

    @property
    def ports(self) -> dict[Flow, int]:
        """Every listening port, by (dialler, target)."""
        return dict(self._ports)

    def peers_of(self, node: str) -> list[str]:
        """Every node with a route to or from `node`, sorted."""
        return sorted(
            {b for a, b in self.routes if a == node} | {a for a, b in self.routes if b == node}
        )

    def get_faults(self, src: str, dst: str) -> FlowFaults:
        return self._call(self._read(lambda: self._faults.get((src, dst), NO_FAULTS)))

    def is_cut(self, a: str, b: str) -> bool:
        return self._call(self._read(lambda: _pair(a, b) in self._cut))

    def get_flow_stats(self, src: str, dst: str) -> FlowStats:
        flow = (src, dst)
        return self._call(
            self._read(lambda: FlowStats(self._forwarded.get(flow, 0), self._dropped.get(flow, 0)))
        )

    def count_connections(self, a: str, b: str) -> int:
        """Relays open between a and b, dialled by either."""
        return self._call(self._read(lambda: len(self._relays.get(_pair(a, b), ()))))

    # --- faults ------------------------------------------------------------------------------
    def cut(self, a: str, b: str) -> None:
        """Reset every connection between a and b and refuse new ones until `heal`."""
        self._validate_link(a, b)
        self._call(self._cut_pair(a, b))

    def isolate(self, node: str) -> None:
        """Cut `node` off from every peer."""
        for peer in self.peers_of(node):
            self.cut(node, peer)

    def drop(self, src: str, dst: str, *, both_ways: bool = False) -> None:
        """Blackhole the bytes from src to dst (and from dst to src if `both_ways`), on
        connections dialled by either node."""
        for flow in self._flows(src, dst, both_ways):
            self._call(self._update(flow, drop=True))

    def delay(self, src: str, dst: str, delay_ms: int, *, both_ways: bool = False) -> None:
        """Deliver each chunk from src to dst `delay_ms` after it arrives (0: no delay)."""
        assert delay_ms >= 0
        for flow in self._flows(src, dst, both_ways):
            self._call(self._update(flow, delay_ms=delay_ms))

    def heal(self, a: str, b: str) -> None:
        """Forget every fault between a and b, both ways; reset their relays that lost bytes."""
        self._validate_link(a, b)
        self._call(self._heal_pair(a, b))

    def heal_all(self) -> None:
        for a, b in sorted({_pair(a, b) for a, b in self.routes}):
            self.heal(a, b)

    # --- on the loop thread ------------------------------------------------------------------
    def _run_loop(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        assert self._loop is not None, "start the proxy first"
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(CALL_TIMEOUT_S)

    @staticmethod
    async def _read(get: Callable[[], _T]) -> _T:
        return get()

    def _validate_link(self, a: str, b: str) -> None:
        if (a, b) not in self.routes and (b, a) not in self.routes:
            raise ValueError(f"no route between {a!r} and {b!r}")

    def _flows(self, src: str, dst: str, both_ways: bool) -> list[Flow]:
        self._validate_link(src, dst)
        return [(src, dst), (dst, src)] if both_ways else [(src, dst)]

    async def _listen(self) -> None:
        for flow in sorted(self.routes):
            server = await asyncio.start_server(
                functools.partial(self._on_accept, flow), self.host, 0
            )
            self._servers.append(server)
            self._ports[flow] = int(server.sockets[0].getsockname()[1])
        logger.debug("fault_proxy_listening ports=%s", self._ports)

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        relays = [relay for relays in self._relays.values() for relay in relays]
        tasks = [relay.task for relay in relays if relay.task is not None]
        for relay in relays:
            self._end(relay)
        if tasks:
            await asyncio.wait(tasks, timeout=CALL_TIMEOUT_S)
        for server in self._servers:
            await server.wait_closed()

    async def _update(self, flow: Flow, **changes: Any) -> None:
        self._faults[flow] = dataclasses.replace(self._faults.get(flow, NO_FAULTS), **changes)

    async def _cut_pair(self, a: str, b: str) -> None:
        pair = _pair(a, b)
        self._cut.add(pair)
        for relay in list(self._relays.get(pair, ())):
            self._end(relay)

    async def _heal_pair(self, a: str, b: str) -> None:
        self._cut.discard(_pair(a, b))
        self._faults.pop((a, b), None)
        self._faults.pop((b, a), None)
        for relay in list(self._relays.get(_pair(a, b), ())):
            if relay.lost_bytes:
                self._end(relay)

    def _end(self, relay: _Relay) -> None:
        """Reset a relay from outside its task."""
        relay.reset = True
        if relay.task is not None:
            relay.task.cancel()

    # --- relays ------------------------------------------------------------------------------
    def _on_accept(
        self, flow: Flow, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # Our own task rather than a coroutine callback: asyncio 3.11 logs a cancelled
        # callback task as an error, and a cut cancels relays.
        dialler, target = flow
        relay = _Relay(dialler, target, writers=[writer])
        if _pair(dialler, target) in self._cut:
            writer.transport.abort()  # refused: the dialler sees a reset
            return
        relay.task = asyncio.get_running_loop().create_task(
            self._run_relay(relay, reader), name=f"fault-proxy-{dialler}-{target}"
        )
        self._relays.setdefault(_pair(dialler, target), set()).add(relay)

    async def _run_relay(self, relay: _Relay, client_reader: asyncio.StreamReader) -> None:
        try:
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    server_reader, server_writer = await asyncio.open_connection(
                        *self.routes[(relay.dialler, relay.target)]
                    )
            except (OSError, TimeoutError) as error:
                logger.debug("fault_proxy_target_unreachable %s: %r", relay.target, error)
                relay.reset = True
                return
            relay.writers.append(server_writer)
            client_writer = relay.writers[0]
            up = (relay.dialler, relay.target)
            down = (relay.target, relay.dialler)
            await self._serve(
                relay,
                self._carry(relay, up, client_reader, server_writer),
                self._carry(relay, down, server_reader, client_writer),
            )
        except asyncio.CancelledError:
            relay.reset = True
        except Exception as error:  # contained: a proxy bug ends this relay only
            relay.reset = True
            self.errors.append(f"{error!r}\n{traceback.format_exc()}")
            logger.exception("fault_proxy_relay_failed")
        finally:
            self._relays.get(_pair(relay.dialler, relay.target), set()).discard(relay)
            for writer in relay.writers:
                _close(writer, reset=relay.reset)

    async def _serve(
        self,
        relay: _Relay,
        up: Coroutine[Any, Any, bool],
        down: Coroutine[Any, Any, bool],
    ) -> None:
        """Run both flows until one ends the relay (or both stop quietly)."""
        loop = asyncio.get_running_loop()
        pending = {loop.create_task(up), loop.create_task(down)}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(task.result() for task in done):
                    return
        finally:
            await _cancel(pending)

    async def _carry(
        self,
        relay: _Relay,
        flow: Flow,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Carry one flow; True when the relay must end (EOF or a socket error), False when a
        blackholed source closed (its EOF is eaten: the other flow goes on)."""
        queue: asyncio.Queue[_Chunk | None] = asyncio.Queue(self._queue_chunks_max)
        loop = asyncio.get_running_loop()
        receiving = loop.create_task(self._receive(relay, flow, reader, queue))
        sending = loop.create_task(self._send(flow, writer, queue))
        try:
            done, _ = await asyncio.wait({receiving, sending}, return_when=asyncio.FIRST_COMPLETED)
            if sending in done:
                return _outcome(sending)
            if _outcome(receiving):
                return True  # the source failed: nothing more will come
            return await sending  # the source ended: let the queued chunks out first
        except OSError:
            return True
        finally:
            await _cancel({receiving, sending})

    async def _receive(
        self,
        relay: _Relay,
        flow: Flow,
        reader: asyncio.StreamReader,
        queue: asyncio.Queue[_Chunk | None],
    ) -> bool:
        """Read chunks from the source, drop them or stamp them with their delivery time."""
        loop = asyncio.get_running_loop()
        while True:
            data = await reader.read(self._chunk_bytes)
            faults = self._faults.get(flow, NO_FAULTS)
            if faults.drop:
                relay.lost_bytes = True
                self._dropped[flow] = self._dropped.get(flow, 0) + len(data)
                if not data:
                    await queue.put(None)  # the sender stops quietly
                    return False
                continue
            # Waits while the queue is full: back-pressure on the source.
            await queue.put((loop.time() + faults.delay_ms / 1000, data))
            if not data:
                return False

    async def _send(
        self, flow: Flow, writer: asyncio.StreamWriter, queue: asyncio.Queue[_Chunk | None]
    ) -> bool:
        """Write queued chunks in order, each at its delivery time; the `_carry` result."""
        loop = asyncio.get_running_loop()
        while True:
            chunk = await queue.get()
            if chunk is None:
                return False
            due_s, data = chunk
            wait_s = due_s - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            if not data:
                return True  # the source's EOF, delivered in its turn: end the relay
            writer.write(data)
            await writer.drain()
            self._forwarded[flow] = self._forwarded.get(flow, 0) + len(data)


def _outcome(task: asyncio.Task[bool]) -> bool:
    """A finished flow task's verdict: a socket error ends the relay; other errors are bugs."""
    error = task.exception()
    if error is None:
        return task.result()
    if isinstance(error, OSError):
        return True
    raise error


async def _cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait for them, retrieving their results so none is logged as lost."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def _close(writer: asyncio.StreamWriter, *, reset: bool) -> None:
    if reset:
        writer.transport.abort()
        return
    with contextlib.suppress(OSError, RuntimeError):
        writer.close()
