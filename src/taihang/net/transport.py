"""The node-to-node transport: mutual TLS 1.3 connections carrying length-prefixed frames.

Theory of operation
-------------------
A `Transport` listens on `P2PConfig.host:port` (unless the port is 0) and dials every peer in
`P2PConfig.peers`. Every connection, in either direction, goes through the same steps:

1. TLS 1.3 with mutual authentication against the genesis CAs (`trust.build_ssl_context`).
   The event loop does a listener's TLS handshake and would drop a failure silently, so the
   server context reports it (`build_ssl_context(on_tls_failure=...)`) to be counted and
   logged with OpenSSL's reason. (`start_tls` on an accepted stream is not an option: it
   hangs when the client's hello was read before the upgrade, always under uvloop.)
2. `trust.authenticate_certificate`: the certificate is a registered node, issued by the CA of
   its own org. Not ourselves; the peer we dialled if we dialled; not banned.
3. Hello both ways (each side writes its hello before reading the other's, so both see a
   mismatch and log it): same protocol version, same genesis hash, the name of the certificate.
4. Adoption under the one-connection rule (docs/adr/0006-transport.md): between nodes X and
   Y the connection dialled by min(X, Y) is preferred; a new connection replaces the current
   one if it is preferred and the current is not, or if both were dialled by the same node
   (the newer wins: that node restarted). Otherwise the new one is closed. Both ends apply the
   same rule, so they keep the same connection. The higher-named node dials a lower-named peer
   only after `reconnect_ms_max` without a connection, so a pair rarely races at all.

Any refusal raises `trust.PeerRefused`; it is logged (`peer_refused`, with the reason) and
counted (`handshakes_refused.<reason>`), and the connection is closed.

An adopted connection runs two tasks: a reader that reads chunks of up to `READ_CHUNK_BYTES`,
splits them into frames with `frames.FrameDecoder` and calls `on_frame` for each payload frame,
and the connection's writer (see `connection.py`). A frame above `frame_bytes_max` closes the
connection and charges the peer; an unknown kind is charged and dropped. Every exception of a
connection is contained there: it is logged and the connection closed; the node never sees it.

`charge(peer, reason)` counts bad messages. At `charges_max` the peer is disconnected and
banned for `ban_ms`: we neither dial it nor accept it until then, and its count starts again.

Dialling uses exponential back-off with jitter between `reconnect_ms_min` and
`reconnect_ms_max`; a connection that ends is redialled. Everything runs on one event loop
(asyncio or uvloop); callbacks are called on it.

`stats` (a `Counter`) holds: frames_in, bytes_in, frames_out, bytes_out, writes,
frames_dropped_not_connected, frames_dropped_queue_full, frames_dropped_oversized,
frames_unknown_kind, frames_oversized_in, handshakes_ok, handshakes_refused,
handshakes_refused.<reason>, dial_failures, connections_replaced, connections_duplicate,
charges, peers_banned, callback_errors. Bytes count whole frames (headers included) as they
go through the socket, before TLS; frames_out and bytes include keepalives.

`on_peer(name, True)` is called when a peer gets its connection and `on_peer(name, False)`
when it loses it; a replacement under the one-connection rule calls neither, and `close`
calls neither.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import traceback
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, Final

import msgspec

from taihang.constants import PROTOCOL_VERSION
from taihang.net import trust
from taihang.net.connection import Connection, close_stream
from taihang.net.frames import (
    HEADER,
    HEADER_BYTES,
    HELLO,
    HELLO_BYTES_MAX,
    KEEPALIVE,
    PAYLOAD_KINDS,
    FrameDecoder,
    FrameKind,
    FrameTooLarge,
    Hello,
    decode_hello,
    encode_hello,
)
from taihang.net.trust import PeerRefused, PeerRegistry, TransportIdentity
from taihang.node.config import P2PConfig, PeerConfig
from taihang.node.logs import log

logger = logging.getLogger("taihang.net")

READ_CHUNK_BYTES: Final = 256 * 1024
BAN_MS_DEFAULT: Final = 60_000
KEEPALIVE_MS_DEFAULT: Final = 2_000
IDLE_TIMEOUT_MS_DEFAULT: Final = 20_000

FrameHandler = Callable[[str, FrameKind, bytes], None]
PeerHandler = Callable[[str, bool], None]


class Transport:
    """Mutual-TLS connections to the channel's other nodes; see the module docstring."""

    def __init__(
        self,
        identity: TransportIdentity,
        config: P2PConfig,
        on_frame: FrameHandler,
        on_peer: PeerHandler | None = None,
        *,
        ban_ms: int = BAN_MS_DEFAULT,
        keepalive_ms: int = KEEPALIVE_MS_DEFAULT,
        idle_timeout_ms: int = IDLE_TIMEOUT_MS_DEFAULT,
    ) -> None:
        assert 0 < keepalive_ms < idle_timeout_ms, "a peer must get keepalives before idling out"
        self.identity = identity
        self.config = config
        self.stats: Counter[str] = Counter()
        self._on_frame = on_frame
        self._on_peer = on_peer
        self._ban_s = ban_ms / 1000
        self._keepalive_s = keepalive_ms / 1000
        self._idle_s = idle_timeout_ms / 1000
        self._handshake_s = config.handshake_timeout_ms / 1000
        self._registry = PeerRegistry.build(identity.genesis)
        self._hello_frame = encode_hello(
            Hello(PROTOCOL_VERSION, identity.genesis_hash, identity.name)
        )
        self._server_context = trust.build_ssl_context(
            identity, server_side=True, on_tls_failure=self._on_tls_failure
        )
        self._client_context = trust.build_ssl_context(identity, server_side=False)
        self._connections: dict[str, Connection] = {}
        self._charges: dict[str, int] = {}
        self._banned_until: dict[str, float] = {}
        self._disconnected: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen (when `config.port` is not 0) and start dialling `config.peers`."""
        assert self._server is None and not self._closed, "start a transport once"
        if self.config.port != 0:
            self._server = await asyncio.start_server(
                self._on_inbound,
                self.config.host,
                self.config.port,
                limit=READ_CHUNK_BYTES,
                ssl=self._server_context,
                ssl_handshake_timeout=self._handshake_s,
            )
        for peer in self.config.peers:
            self._spawn(self._dial_loop(peer), f"taihang-net-dial-{peer.name}")
        log(logger, "transport_started", name=self.identity.name, port=self.listen_port)

    async def close(self) -> None:
        """Stop listening and dialling, close every connection; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._connections.clear()
        log(logger, "transport_closed", name=self.identity.name)

    @property
    def listen_port(self) -> int | None:
        """The port we listen on (the real one when the OS chose it), or None."""
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    # --- the node's API ----------------------------------------------------------------------
    def send(self, peer: str, kind: FrameKind, body: bytes) -> bool:
        """Queue a frame for `peer` without blocking; False (counted) when it cannot be queued."""
        connection = self._connections.get(peer)
        if connection is None:
            self.stats["frames_dropped_not_connected"] += 1
            return False
        if not self._is_sendable(kind, body):
            return False
        if not connection.enqueue(HEADER.pack(len(body), kind), body):
            self.stats["frames_dropped_queue_full"] += 1
            return False
        return True

    def broadcast(self, kind: FrameKind, body: bytes) -> None:
        """Queue a frame for every connected peer (one shared header and body)."""
        if not self._connections or not self._is_sendable(kind, body):
            return
        header = HEADER.pack(len(body), kind)
        for connection in self._connections.values():
            if not connection.enqueue(header, body):
                self.stats["frames_dropped_queue_full"] += 1

    def charge(self, peer: str, reason: str) -> None:
        """Count a bad message from `peer`; at `charges_max` disconnect and ban it."""
        if peer not in self._registry.names:
            return  # only genesis nodes are ever charged: keeps the table bounded
        self.stats["charges"] += 1
        count = self._charges.get(peer, 0) + 1
        log(logger, "peer_charged", logging.WARNING, peer=peer, reason=reason, charges=count)
        if count < self.config.charges_max:
            self._charges[peer] = count
            return
        self._charges.pop(peer, None)
        self._banned_until[peer] = asyncio.get_running_loop().time() + self._ban_s
        self.stats["peers_banned"] += 1
        log(logger, "peer_banned", logging.WARNING, peer=peer, reason=reason, ban_s=self._ban_s)
        connection = self._connections.get(peer)
        if connection is not None:
            self._end(connection, f"banned after {count} charges, last: {reason}", abort=True)

    def connected_peers(self) -> list[str]:
        return sorted(self._connections)

    def queued_frames(self, peer: str) -> int:
        """Frames waiting to be written to `peer` (0 when not connected)."""
        connection = self._connections.get(peer)
        return connection.frames_queued if connection is not None else 0

    def is_banned(self, peer: str) -> bool:
        until = self._banned_until.get(peer)
        if until is None:
            return False
        if asyncio.get_running_loop().time() < until:
            return True
        del self._banned_until[peer]
        return False

    def _is_sendable(self, kind: FrameKind, body: bytes) -> bool:
        assert kind in PAYLOAD_KINDS, f"not a payload frame kind: {kind!r}"
        if len(body) <= self.config.frame_bytes_max:
            return True
        self.stats["frames_dropped_oversized"] += 1
        log(logger, "frame_too_large_to_send", logging.ERROR, kind=int(kind), bytes=len(body))
        return False

    # --- connecting --------------------------------------------------------------------------
    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _peer_gone(self, peer: str) -> asyncio.Event:
        """Set while `peer` has no adopted connection."""
        event = self._disconnected.get(peer)
        if event is None:
            event = self._disconnected[peer] = asyncio.Event()
            if peer not in self._connections:
                event.set()
        return event

    async def _dial_loop(self, peer: PeerConfig) -> None:
        """Keep one connection to `peer`: dial with back-off while there is none."""
        delay_min_s = self.config.reconnect_ms_min / 1000
        delay_max_s = self.config.reconnect_ms_max / 1000
        delay_s = delay_min_s
        preferred = self.identity.name < peer.name
        loop = asyncio.get_running_loop()
        while True:
            await self._peer_gone(peer.name).wait()
            if not preferred:  # give the preferred dialler its chance first
                await asyncio.sleep(delay_max_s)
            if self.is_banned(peer.name):
                await asyncio.sleep(self._banned_until[peer.name] - loop.time())
                continue
            if peer.name in self._connections:
                continue
            started_s = loop.time()
            adopted = await self._dial_once(peer)
            if adopted and loop.time() - started_s >= delay_max_s:
                delay_s = delay_min_s  # a session that lasted: start the back-off again
            await asyncio.sleep(delay_s * (0.5 + random.random() / 2))
            delay_s = min(delay_s * 2, delay_max_s)

    async def _dial_once(self, peer: PeerConfig) -> bool:
        """One dial; True when the connection was adopted (and has ended since)."""
        try:
            async with asyncio.timeout(self._handshake_s):
                reader, writer = await asyncio.open_connection(
                    peer.host,
                    peer.port,
                    ssl=self._client_context,
                    limit=READ_CHUNK_BYTES,
                    ssl_handshake_timeout=self._handshake_s,
                )
        except ssl.SSLError as error:
            self._refused(PeerRefused(trust.REASON_TLS, str(error)), peer.name, "dial")
            return False
        except (OSError, TimeoutError) as error:
            self.stats["dial_failures"] += 1
            log(logger, "dial_failed", logging.DEBUG, peer=peer.name, error=repr(error))
            return False
        return await self._run(reader, writer, expected=peer.name)

    def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Our own task, not asyncio's callback task: `close` cancels it, and asyncio 3.11 logs
        # a cancelled callback task as an error.
        if self._closed:
            writer.transport.abort()
            return
        self._spawn(self._accept(reader, writer), "taihang-net-accept")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._run(reader, writer, expected=None)

    def _on_tls_failure(self, error: ssl.SSLError) -> None:
        """A listener's TLS handshake failed (see `trust.build_ssl_context`'s `on_tls_failure`)."""
        self._refused(PeerRefused(trust.REASON_TLS, str(error)), None, "inbound")

    async def _run(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, expected: str | None
    ) -> bool:
        """Authenticate, adopt and serve one TLS connection; True if it was adopted."""
        address = str(writer.get_extra_info("peername"))
        try:
            peer = await self._handshake(reader, writer, expected)
        except PeerRefused as refusal:
            self._refused(refusal, expected, address)
            await close_stream(writer, abort=True)
            return False
        except Exception as error:  # contained: a handshake bug must not stop the dialler
            log(logger, "handshake_failed", logging.ERROR, address=address, error=repr(error))
            await close_stream(writer, abort=True)
            return False
        dialler = self.identity.name if expected is not None else peer
        connection = Connection(
            peer=peer,
            dialler=dialler,
            reader=reader,
            writer=writer,
            queue_frames_max=self.config.peer_queue_frames_max,
            stats=self.stats,
            keepalive_s=self._keepalive_s,
            idle_s=self._idle_s,
        )
        if not self._adopt(connection):
            await close_stream(writer)
            return False
        await self._serve(connection)
        return True

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, expected: str | None
    ) -> str:
        """Steps 2 and 3 of the module docstring; the peer's name, or raise `PeerRefused`."""
        ssl_object = writer.get_extra_info("ssl_object")
        cert_der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not cert_der:
            raise PeerRefused(trust.REASON_TLS, "the peer presented no certificate")
        peer = trust.authenticate_certificate(cert_der, self._registry)
        if peer == self.identity.name:
            raise PeerRefused(trust.REASON_SELF, "connected to ourselves")
        if expected is not None and peer != expected:
            raise PeerRefused(trust.REASON_UNEXPECTED_PEER, f"dialled {expected}, found {peer}")
        if self.is_banned(peer):
            raise PeerRefused(trust.REASON_BANNED, f"{peer} is banned for bad messages")
        writer.write(self._hello_frame)
        hello = await self._read_hello(reader, peer)
        if hello.protocol_version != PROTOCOL_VERSION:
            raise PeerRefused(
                trust.REASON_PROTOCOL_VERSION,
                f"{peer} speaks protocol {hello.protocol_version}, we speak {PROTOCOL_VERSION}",
            )
        if hello.genesis_hash != self.identity.genesis_hash:
            raise PeerRefused(
                trust.REASON_GENESIS_HASH,
                f"{peer} follows genesis {hello.genesis_hash.hex()}, "
                f"we follow {self.identity.genesis_hash.hex()}",
            )
        if hello.name != peer:
            raise PeerRefused(
                trust.REASON_NAME_MISMATCH, f"hello says {hello.name!r}, certificate says {peer!r}"
            )
        return peer

    async def _read_hello(self, reader: asyncio.StreamReader, peer: str) -> Hello:
        try:
            async with asyncio.timeout(self._handshake_s):
                length, kind = HEADER.unpack(await reader.readexactly(HEADER_BYTES))
                if kind != HELLO or length > HELLO_BYTES_MAX:
                    raise PeerRefused(
                        trust.REASON_MALFORMED_HELLO,
                        f"{peer} sent kind {kind} ({length} bytes) instead of a hello",
                    )
                body = await reader.readexactly(length)
        except TimeoutError:
            raise PeerRefused(trust.REASON_TIMEOUT, f"no hello from {peer}") from None
        except asyncio.IncompleteReadError:
            raise PeerRefused(trust.REASON_CLOSED, f"{peer} closed before its hello") from None
        except OSError as error:  # in TLS 1.3 a client learns here that its certificate failed
            raise PeerRefused(trust.REASON_TLS, f"{peer}: {error}") from None
        try:
            return decode_hello(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise PeerRefused(trust.REASON_MALFORMED_HELLO, f"{peer}: {error}") from None

    def _refused(self, refusal: PeerRefused, peer: str | None, address: str) -> None:
        self.stats["handshakes_refused"] += 1
        self.stats[f"handshakes_refused.{refusal.reason}"] += 1
        log(
            logger,
            "peer_refused",
            logging.WARNING,
            reason=refusal.reason,
            detail=refusal.message,
            peer=peer,
            address=address,
        )

    # --- adopted connections -----------------------------------------------------------------
    def _adopt(self, connection: Connection) -> bool:
        """Apply the one-connection rule; True if `connection` is now the peer's connection."""
        if self._closed:
            return False
        peer = connection.peer
        current = self._connections.get(peer)
        self.stats["handshakes_ok"] += 1
        if current is None:
            self._connections[peer] = connection
            self._peer_gone(peer).clear()
            log(logger, "peer_connected", peer=peer, dialler=connection.dialler)
            self._notify_peer(peer, True)
            return True
        preferred = min(self.identity.name, peer)
        if current.dialler == preferred and connection.dialler != preferred:
            self.stats["connections_duplicate"] += 1
            log(logger, "duplicate_connection_closed", logging.DEBUG, peer=peer)
            return False
        connection.take_over(current)
        self._connections[peer] = connection
        self._end(current, "replaced by a newer or preferred connection")
        self.stats["connections_replaced"] += 1
        return True

    async def _serve(self, connection: Connection) -> None:
        loop = asyncio.get_running_loop()
        tasks = (
            loop.create_task(self._read_loop(connection)),
            loop.create_task(connection.write_loop()),
        )
        connection.tasks = tasks
        connection.start_watchdog()
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            connection.stop_watchdog()
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            self._release(connection)
            await close_stream(connection.writer, abort=connection.abort)

    def _end(self, connection: Connection, reason: str, *, abort: bool = False) -> None:
        """Close an adopted connection from outside its tasks (replaced, banned)."""
        connection.end_reason = connection.end_reason or reason
        connection.abort = connection.abort or abort
        for task in connection.tasks:
            task.cancel()

    def _release(self, connection: Connection) -> None:
        peer = connection.peer
        if self._connections.get(peer) is not connection:
            return  # replaced: the peer is still connected through the new one
        del self._connections[peer]
        dropped = connection.drop_queue()
        self.stats["frames_dropped_not_connected"] += dropped
        self._peer_gone(peer).set()
        log(
            logger,
            "peer_disconnected",
            peer=peer,
            reason=connection.end_reason or "closed",
            frames_dropped=dropped,
        )
        if not self._closed:
            self._notify_peer(peer, False)

    def _notify_peer(self, peer: str, connected: bool) -> None:
        if self._on_peer is None:
            return
        try:
            self._on_peer(peer, connected)
        except Exception as error:
            self.stats["callback_errors"] += 1
            log(logger, "on_peer_failed", logging.ERROR, peer=peer, error=repr(error))

    async def _read_loop(self, connection: Connection) -> None:
        """Read chunks, split them into frames, hand payload frames to the node."""
        try:
            await self._read_frames(connection)
        except FrameTooLarge as error:
            self.stats["frames_oversized_in"] += 1
            connection.end_reason = f"frame too large: {error.message}"
            connection.abort = True
            self.charge(connection.peer, connection.end_reason)
        except (OSError, ssl.SSLError) as error:
            connection.end_reason = connection.end_reason or f"read failed: {error!r}"
        except Exception as error:  # contained: one bad connection never stops the node
            connection.end_reason = f"reader failed: {error!r}"
            log(logger, "connection_reader_failed", logging.ERROR, peer=connection.peer,
                error=repr(error), traceback=traceback.format_exc())  # fmt: skip

    async def _read_frames(self, connection: Connection) -> None:
        decoder = FrameDecoder(self.config.frame_bytes_max)
        read = connection.reader.read
        loop = asyncio.get_running_loop()
        stats = self.stats
        peer = connection.peer
        while True:
            data = await read(READ_CHUNK_BYTES)
            if not data:
                connection.end_reason = connection.end_reason or "closed by peer"
                return
            connection.last_read_s = loop.time()
            stats["bytes_in"] += len(data)
            for kind, body in decoder.feed(data):
                self._deliver(peer, kind, body)
                if self._connections.get(peer) is not connection:
                    return  # banned or replaced while delivering: read no further

    def _deliver(self, peer: str, kind: int, body: bytes) -> None:
        payload_kind = PAYLOAD_KINDS.get(kind)
        if payload_kind is None:
            if kind != KEEPALIVE:
                self.stats["frames_unknown_kind"] += 1
                self.charge(peer, f"unknown frame kind {kind}")
            return
        self.stats["frames_in"] += 1
        try:
            self._on_frame(peer, payload_kind, body)
        except Exception as error:  # the node's bug, not the peer's: log it, keep the peer
            self.stats["callback_errors"] += 1
            log(logger, "on_frame_failed", logging.ERROR, peer=peer, kind=kind,
                error=repr(error), traceback=traceback.format_exc())  # fmt: skip
