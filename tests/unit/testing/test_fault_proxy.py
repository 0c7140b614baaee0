"""The fault proxy (`taihang.testing.fault_proxy`) between plain TCP sockets.

The test holds both ends of every proxied connection as blocking sockets: it dials the proxy
as node "a" (or "b") and accepts, on the listener that plays the target, the connection the
proxy made. Latency checks compare ratios and lower bounds (a sleep never ends early), never
upper bounds on a noisy machine.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest

from taihang.testing.fault_proxy import FaultProxy, FlowFaults, FlowStats

TIMEOUT_S = 5.0
QUIET_S = 0.3  # how long "nothing arrives" is watched for


class Ends:
    """Sockets a test opened; all closed at teardown."""

    def __init__(self, listener: socket.socket, proxy: FaultProxy) -> None:
        self.listener = listener
        self.proxy = proxy
        self.opened: list[socket.socket] = []

    def dial(self, dialler: str = "a", target: str = "b") -> socket.socket:
        """Connect to the proxy's port for (dialler, target), without waiting for the target."""
        client = socket.create_connection(("127.0.0.1", self.proxy.port(dialler, target)))
        client.settimeout(TIMEOUT_S)
        self.opened.append(client)
        return client

    def accept(self, timeout_s: float = TIMEOUT_S) -> socket.socket:
        self.listener.settimeout(timeout_s)
        server, _ = self.listener.accept()
        server.settimeout(TIMEOUT_S)
        self.opened.append(server)
        return server

    def connect(self, dialler: str = "a", target: str = "b") -> tuple[socket.socket, socket.socket]:
        """A proxied connection: (the dialler's socket, the target's accepted socket)."""
        client = self.dial(dialler, target)
        return client, self.accept()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


@pytest.fixture
def proxy(listener: socket.socket) -> Iterator[FaultProxy]:
    # Both "a" and "b" listen at the same socket: the test plays whichever is dialled.
    target = ("127.0.0.1", listener.getsockname()[1])
    with FaultProxy({("a", "b"): target, ("b", "a"): target}) as running:
        yield running
        assert running.errors == []


@pytest.fixture
def ends(listener: socket.socket, proxy: FaultProxy) -> Iterator[Ends]:
    opened = Ends(listener, proxy)
    yield opened
    for sock in opened.opened:
        sock.close()


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, f"closed after {len(data)} of {count} bytes"
        data += chunk
    return bytes(data)


def is_closed(sock: socket.socket) -> bool:
    """Whether the peer closed or reset the connection (waits up to the socket's timeout)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def receives_nothing(sock: socket.socket) -> bool:
    sock.settimeout(QUIET_S)
    try:
        data = sock.recv(1)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(TIMEOUT_S)
    raise AssertionError(f"expected silence, got {data!r}")


class EchoServer:
    """A plain TCP echo server in a thread: sends back whatever it reads."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return  # closed before anyone connected
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        self.server.close()
        self._thread.join(TIMEOUT_S)


@pytest.fixture
def echo() -> Iterator[tuple[FaultProxy, socket.socket]]:
    """A proxy from "a" to an echo server "b", and a's connection to it."""
    server = EchoServer()
    with FaultProxy({("a", "b"): ("127.0.0.1", server.port)}) as running:
        client = socket.create_connection(("127.0.0.1", running.port("a", "b")))
        client.settimeout(TIMEOUT_S)
        with client:
            yield running, client
        assert running.errors == []
    server.close()


def round_trip_s(client: socket.socket, message: bytes = b"ping") -> float:
    started = time.perf_counter()
    client.sendall(message)
    assert recv_exactly(client, len(message)) == message
    return time.perf_counter() - started


# --- forwarding ------------------------------------------------------------------------------
def test_proxy_forwards_both_ways_and_counts_bytes(ends: Ends, proxy: FaultProxy) -> None:
    client, server = ends.connect("a", "b")
    payload = bytes(range(256)) * 8192  # 2 MiB: many chunks, any split
    client.sendall(b"ping" + payload)
    assert recv_exactly(server, 4 + len(payload)) == b"ping" + payload
    server.sendall(b"pong")
    assert recv_exactly(client, 4) == b"pong"
    assert proxy.get_flow_stats("a", "b") == FlowStats(bytes_forwarded=4 + len(payload))
    assert proxy.get_flow_stats("b", "a") == FlowStats(bytes_forwarded=4)
    assert proxy.count_connections("a", "b") == 1


def test_proxy_routes_each_dial_direction_through_its_own_port(
    ends: Ends, proxy: FaultProxy
) -> None:
    assert proxy.port("a", "b") != proxy.port("b", "a")
    client, server = ends.connect("b", "a")  # b dials a: b's bytes are the flow (b, a)
    client.sendall(b"from b")
    assert recv_exactly(server, 6) == b"from b"
    assert proxy.get_flow_stats("b", "a").bytes_forwarded == 6
    assert proxy.get_flow_stats("a", "b").bytes_forwarded == 0


def test_proxy_forwards_eof_and_closes_the_relay(ends: Ends, proxy: FaultProxy) -> None:
    client, server = ends.connect()
    client.sendall(b"bye")
    client.shutdown(socket.SHUT_WR)
    assert recv_exactly(server, 3) == b"bye"
    assert is_closed(server)
    deadline = time.monotonic() + TIMEOUT_S
    while proxy.count_connections("a", "b") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.count_connections("a", "b") == 0


def test_unreachable_target_resets_the_dialler(listener: socket.socket) -> None:
    with socket.create_server(("127.0.0.1", 0)) as gone:
        port = gone.getsockname()[1]  # closed at the end of this block: nothing listens
    with FaultProxy({("a", "b"): ("127.0.0.1", port)}) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port("a", "b"))) as client:
            client.settimeout(TIMEOUT_S)
            assert is_closed(client)
        assert proxy.errors == []


def test_close_stops_listening_and_is_idempotent(listener: socket.socket) -> None:
    proxy = FaultProxy({("a", "b"): ("127.0.0.1", listener.getsockname()[1])})
    proxy.start()
    port = proxy.port("a", "b")
    proxy.close()
    proxy.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S).close()


# --- delay -----------------------------------------------------------------------------------
def test_delay_adds_latency_both_ways(echo: tuple[FaultProxy, socket.socket]) -> None:
    proxy, client = echo
    baseline_s = statistics.median(round_trip_s(client) for _ in range(20))
    proxy.delay("a", "b", 50, both_ways=True)
    assert proxy.get_faults("b", "a") == FlowFaults(delay_ms=50)
    delayed_s = statistics.median(round_trip_s(client) for _ in range(5))
    assert delayed_s >= 0.099  # two 50 ms sleeps per round trip, never shorter
    assert delayed_s >= 5 * baseline_s, (baseline_s, delayed_s)
    proxy.delay("b", "a", 0)  # one way only now: a's bytes still wait 50 ms
    one_way_s = statistics.median(round_trip_s(client) for _ in range(5))
    assert one_way_s >= 0.049
    proxy.heal("a", "b")
    assert proxy.get_faults("a", "b") == FlowFaults()
    healed_s = statistics.median(round_trip_s(client) for _ in range(5))
    assert healed_s * 5 <= delayed_s, (healed_s, delayed_s)


def test_delay_keeps_order_and_does_not_serialise_chunks(
    echo: tuple[FaultProxy, socket.socket],
) -> None:
    """Chunks sent 5 ms apart under a 100 ms delay overlap in flight: the whole burst takes
    about one delay, not one delay per chunk."""
    proxy, client = echo
    proxy.delay("a", "b", 100)
    messages = [b"%05d;" % i for i in range(40)]
    started = time.perf_counter()
    for message in messages:
        client.sendall(message)
        time.sleep(0.005)
    expected = b"".join(messages)
    assert recv_exactly(client, len(expected)) == expected  # in order, nothing lost
    elapsed_s = time.perf_counter() - started
    assert elapsed_s >= 0.099
    assert elapsed_s < 0.5 * len(messages) * 0.1, elapsed_s  # far from 40 delays in a row


# --- cut -------------------------------------------------------------------------------------
def test_cut_resets_connections_and_refuses_new_ones_until_heal(
    ends: Ends, proxy: FaultProxy
) -> None:
    client, server = ends.connect("a", "b")
    other_client, other_server = ends.connect("b", "a")
    proxy.cut("a", "b")
    assert proxy.is_cut("b", "a")
    assert is_closed(client) and is_closed(server)
    assert is_closed(other_client) and is_closed(other_server)  # both dial directions
    assert proxy.count_connections("a", "b") == 0
    refused = ends.dial("a", "b")
    assert is_closed(refused)  # accepted by the proxy, then reset at once
    with pytest.raises(TimeoutError):
        ends.accept(timeout_s=QUIET_S)  # the proxy never dialled the target
    proxy.heal("a", "b")
    client, server = ends.connect("a", "b")
    client.sendall(b"again")
    assert recv_exactly(server, 5) == b"again"


def test_isolate_cuts_every_link_of_one_node_only(listener: socket.socket) -> None:
    target = ("127.0.0.1", listener.getsockname()[1])
    names = ["a", "b", "c"]
    routes = {(x, y): target for x in names for y in names if x != y}
    with FaultProxy(routes) as proxy:
        assert proxy.peers_of("a") == ["b", "c"]
        proxy.isolate("a")
        assert proxy.is_cut("a", "b") and proxy.is_cut("c", "a")
        assert not proxy.is_cut("b", "c")
        proxy.heal_all()
        assert not any(proxy.is_cut(x, y) for x, y in routes)


# --- drop (one-way blackhole) ----------------------------------------------------------------
def test_drop_blackholes_one_direction_only(ends: Ends, proxy: FaultProxy) -> None:
    client, server = ends.connect("a", "b")
    proxy.drop("a", "b")
    assert proxy.get_faults("a", "b") == FlowFaults(drop=True)
    assert proxy.get_faults("b", "a") == FlowFaults()
    client.sendall(b"lost")
    assert receives_nothing(server)
    server.sendall(b"still heard")
    assert recv_exactly(client, 11) == b"still heard"
    assert proxy.get_flow_stats("a", "b") == FlowStats(bytes_forwarded=0, bytes_dropped=4)


def test_drop_also_applies_to_connections_the_other_node_dialled(
    ends: Ends, proxy: FaultProxy
) -> None:
    client, server = ends.connect("b", "a")  # b dialled; a is the accepting end
    proxy.drop("a", "b")  # a's bytes travel back down b's connection
    server.sendall(b"lost")
    assert receives_nothing(client)
    client.sendall(b"heard")
    assert recv_exactly(server, 5) == b"heard"


def test_drop_eats_the_eof_and_new_connections_get_nothing_through(
    ends: Ends, proxy: FaultProxy
) -> None:
    client, server = ends.connect("a", "b")
    proxy.drop("a", "b")
    client.shutdown(socket.SHUT_WR)
    assert receives_nothing(server)  # no EOF either: a blackhole says nothing
    server.sendall(b"x")
    assert recv_exactly(client, 1) == b"x"
    late_client, late_server = ends.connect("a", "b")  # TCP connects; its bytes vanish
    late_client.sendall(b"hello")
    assert receives_nothing(late_server)


def test_heal_resets_relays_that_lost_bytes_and_new_ones_flow(
    ends: Ends, proxy: FaultProxy
) -> None:
    lossy_client, lossy_server = ends.connect("a", "b")
    clean_client, clean_server = ends.connect("b", "a")
    proxy.drop("a", "b", both_ways=True)
    lossy_client.sendall(b"lost")
    assert receives_nothing(lossy_server)
    proxy.heal("a", "b")
    assert is_closed(lossy_client) and is_closed(lossy_server)  # its stream has a hole
    clean_client.sendall(b"intact")  # lost nothing: kept
    assert recv_exactly(clean_server, 6) == b"intact"
    client, server = ends.connect("a", "b")
    client.sendall(b"healed")
    assert recv_exactly(server, 6) == b"healed"


def test_faults_on_a_link_without_a_route_are_an_error(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="no route"):
        proxy.cut("a", "nobody")
    with pytest.raises(ValueError, match="no route"):
        proxy.delay("nobody", "b", 10)
