"""The transport over real TLS on 127.0.0.1: connecting, refusing, framing, charging, limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from net_support import (
    Node,
    Pki,
    Runner,
    build_genesis,
    connect_raw,
    forge_certificate,
    free_port,
    make_node,
    p2p_config,
    wait_until,
)

from taihang.constants import PROTOCOL_VERSION
from taihang.net import FrameKind, Transport
from taihang.net.frames import HEADER, Hello, encode_frame
from taihang.node.pki import build_org_ca, issue_node_certificate


@contextlib.asynccontextmanager
async def started(*nodes: Node) -> AsyncIterator[None]:
    try:
        for node in nodes:
            await node.transport.start()
        yield
    finally:
        for node in nodes:
            await node.transport.close()


def mesh(pki: Pki, names: list[str], **overrides: Any) -> list[Node]:
    """Nodes that each list every other as a peer (both sides dial)."""
    ports = {name: free_port() for name in names}
    return [
        make_node(
            pki.identity(name),
            p2p_config(ports[name], {p: port for p, port in ports.items() if p != name}),
            **overrides,
        )
        for name in names
    ]


def refusals(node: Node, reason: str) -> int:
    return node.transport.stats[f"handshakes_refused.{reason}"]


def refusal_logged(caplog: pytest.LogCaptureFixture, reason: str) -> bool:
    return any(
        record.getMessage() == "peer_refused" and record.fields["reason"] == reason  # type: ignore[attr-defined]
        for record in caplog.records
    )


@pytest.mark.parametrize("run", ["asyncio", "uvloop"], indirect=True)
def test_transport_four_nodes_connect_and_exchange_frames_both_ways(pki: Pki, run: Runner) -> None:
    nodes = mesh(pki, ["n1", "n2", "n3", "n4"])

    async def body() -> None:
        async with started(*nodes):
            await wait_until(lambda: all(len(n.transport.connected_peers()) == 3 for n in nodes))
            for node in nodes:
                others = sorted(n.name for n in nodes if n is not node)
                assert node.transport.connected_peers() == others
                node.transport.broadcast(FrameKind.CONSENSUS, f"from {node.name}".encode())
                for other in others:
                    assert node.transport.send(
                        other, FrameKind.TXS, f"{node.name}>{other}".encode()
                    )
            await wait_until(lambda: all(len(n.frames) == 6 for n in nodes))
            for node in nodes:
                others = sorted(n.name for n in nodes if n is not node)
                got = sorted(node.frames)
                assert got == sorted(
                    [(o, FrameKind.CONSENSUS, f"from {o}".encode()) for o in others]
                    + [(o, FrameKind.TXS, f"{o}>{node.name}".encode()) for o in others]
                )
                # One connection per pair, the one dialled by the lower name, on both ends.
                for other in others:
                    connection = node.transport._connections[other]
                    assert connection.dialler == min(node.name, other)
                last_event = {peer: up for peer, up in node.peer_events}
                assert last_event == dict.fromkeys(others, True)

    run(body)


def test_transport_connects_an_observer_when_only_one_side_dials(pki: Pki, run: Runner) -> None:
    port = free_port()
    listener = make_node(pki.identity("n1"), p2p_config(port))
    dialler = make_node(pki.identity("o1"), p2p_config(0, {"n1": port}))

    async def body() -> None:
        async with started(listener, dialler):
            await wait_until(lambda: listener.transport.connected_peers() == ["o1"])
            await wait_until(lambda: dialler.transport.connected_peers() == ["n1"])
            assert listener.peer_events == [("o1", True)]

    run(body)


@pytest.mark.parametrize("run", ["asyncio", "uvloop"], indirect=True)
def test_transport_refuses_a_certificate_from_an_unknown_ca(
    pki: Pki, run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    rogue_ca = build_org_ca("org1")  # same org id, another key: not the CA in genesis
    key_pem, cert_pem = issue_node_certificate(
        *rogue_ca, node_name="n2", org_id="org1", hosts=["127.0.0.1"]
    )
    port = free_port()
    server = make_node(pki.identity("n1"), p2p_config(port))
    intruder = make_node(pki.raw_identity("n2", key_pem, cert_pem), p2p_config(0, {"n1": port}))

    async def body() -> None:
        async with started(server, intruder):
            await wait_until(lambda: refusals(server, "tls") >= 1)
            assert server.transport.connected_peers() == []
            assert intruder.transport.connected_peers() == []

    with caplog.at_level(logging.WARNING, logger="taihang.net"):
        run(body)
    assert refusal_logged(caplog, "tls")


@pytest.mark.parametrize("run", ["asyncio", "uvloop"], indirect=True)
def test_transport_refuses_a_certificate_claiming_another_org(
    pki: Pki, run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    # org1's genuine CA signs a certificate that says O=org2, CN=n3: OpenSSL accepts the chain,
    # the explicit check of the claimed org's CA must not.
    key_pem, cert_pem = forge_certificate(*pki.cas["org1"], org="org2", name="n3")
    port = free_port()
    server = make_node(pki.identity("n1"), p2p_config(port))
    intruder = make_node(pki.raw_identity("n3", key_pem, cert_pem), p2p_config(0, {"n1": port}))

    async def body() -> None:
        async with started(server, intruder):
            await wait_until(lambda: refusals(server, "wrong_ca") >= 1)
            assert server.transport.connected_peers() == []

    with caplog.at_level(logging.WARNING, logger="taihang.net"):
        run(body)
    assert refusal_logged(caplog, "wrong_ca")


def test_transport_refuses_a_node_not_in_genesis(
    pki: Pki, run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    key_pem, cert_pem = issue_node_certificate(
        *pki.cas["org1"], node_name="stranger", org_id="org1", hosts=["127.0.0.1"]
    )
    port = free_port()
    server = make_node(pki.identity("n1"), p2p_config(port))
    intruder = make_node(
        pki.raw_identity("stranger", key_pem, cert_pem), p2p_config(0, {"n1": port})
    )

    async def body() -> None:
        async with started(server, intruder):
            await wait_until(lambda: refusals(server, "unknown_node") >= 1)
            assert server.transport.connected_peers() == []

    with caplog.at_level(logging.WARNING, logger="taihang.net"):
        run(body)
    assert refusal_logged(caplog, "unknown_node")


def test_transport_refuses_a_peer_of_another_genesis_on_both_ends(
    pki: Pki, run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    other_genesis = build_genesis(pki.cas, timestamp_ms=1_800_000_000_000)
    port = free_port()
    server = make_node(pki.identity("n1"), p2p_config(port))
    stranger = make_node(pki.identity("n2", other_genesis), p2p_config(0, {"n1": port}))

    async def body() -> None:
        async with started(server, stranger):
            await wait_until(
                lambda: (
                    refusals(server, "genesis_hash") >= 1
                    and refusals(stranger, "genesis_hash") >= 1
                )
            )
            assert server.transport.connected_peers() == []
            assert stranger.transport.connected_peers() == []

    with caplog.at_level(logging.WARNING, logger="taihang.net"):
        run(body)
    assert refusal_logged(caplog, "genesis_hash")


def test_transport_refuses_a_peer_that_is_not_the_one_dialled(pki: Pki, run: Runner) -> None:
    port = free_port()
    server = make_node(pki.identity("n2"), p2p_config(port))
    dialler = make_node(pki.identity("n1"), p2p_config(0, {"n3": port}))  # n3 is configured there

    async def body() -> None:
        async with started(server, dialler):
            await wait_until(lambda: refusals(dialler, "unexpected_peer") >= 1)
            assert dialler.transport.connected_peers() == []

    run(body)


@pytest.mark.parametrize("run", ["asyncio", "uvloop"], indirect=True)
def test_transport_closes_and_charges_on_an_oversized_frame(pki: Pki, run: Runner) -> None:
    port = free_port()
    server = make_node(pki.identity("n1"), p2p_config(port, frame_bytes_max=1024))

    async def body() -> None:
        async with started(server):
            reader, writer = await connect_raw(pki.identity("n2"), port)
            await wait_until(lambda: server.transport.connected_peers() == ["n2"])
            writer.write(HEADER.pack(1025, FrameKind.CONSENSUS) + b"x" * 100)
            await wait_until(lambda: server.transport.connected_peers() == [])
            assert await reader.read() == b""  # the server hung up
            assert server.transport.stats["frames_oversized_in"] == 1
            assert server.transport.stats["charges"] == 1
            assert server.peer_events == [("n2", True), ("n2", False)]
            writer.close()

    run(body)


def test_transport_charges_and_drops_an_unknown_frame_kind(pki: Pki, run: Runner) -> None:
    port = free_port()
    server = make_node(pki.identity("n1"), p2p_config(port))

    async def body() -> None:
        async with started(server):
            _, writer = await connect_raw(pki.identity("n2"), port)
            writer.write(encode_frame(99, b"?") + encode_frame(FrameKind.TXS, b"ok"))
            await wait_until(lambda: len(server.frames) == 1)
            assert server.frames == [("n2", FrameKind.TXS, b"ok")]
            assert server.transport.stats["frames_unknown_kind"] == 1
            assert server.transport.stats["charges"] == 1
            assert server.transport.connected_peers() == ["n2"]  # one charge is not a ban
            writer.close()

    run(body)


def test_transport_charge_threshold_disconnects_and_bans(pki: Pki, run: Runner) -> None:
    n1, n2 = mesh(pki, ["n1", "n2"], ban_ms=300)
    n1.transport.config.charges_max = 3

    async def body() -> None:
        async with started(n1, n2):
            await wait_until(lambda: n1.transport.connected_peers() == ["n2"])
            n1.transport.charge("n2", "bad vote")
            n1.transport.charge("n2", "bad vote")
            assert n1.transport.connected_peers() == ["n2"]
            n1.transport.charge("n2", "bad vote")
            assert n1.transport.is_banned("n2")
            await wait_until(lambda: n1.transport.connected_peers() == [])
            assert n1.transport.stats["peers_banned"] == 1
            await asyncio.sleep(0.15)  # n2 keeps dialling; n1 refuses while the ban lasts
            assert n1.transport.connected_peers() == []
            await wait_until(lambda: n1.transport.connected_peers() == ["n2"])  # ban over
            assert not n1.transport.is_banned("n2")

    run(body)


@pytest.mark.parametrize("run", ["asyncio", "uvloop"], indirect=True)
def test_transport_reconnects_after_the_peer_restarts(pki: Pki, run: Runner) -> None:
    n1, n2 = mesh(pki, ["n1", "n2"])

    async def body() -> None:
        async with started(n1):
            await n2.transport.start()
            await wait_until(lambda: n1.transport.connected_peers() == ["n2"])
            await n2.transport.close()
            await wait_until(lambda: n1.transport.connected_peers() == [])
            again = make_node(pki.identity("n2"), n2.transport.config)
            async with started(again):
                await wait_until(lambda: n1.transport.connected_peers() == ["n2"])
                await wait_until(lambda: again.transport.connected_peers() == ["n1"])
                assert n1.transport.send("n2", FrameKind.CONSENSUS, b"welcome back")
                await wait_until(
                    lambda: again.frames == [("n1", FrameKind.CONSENSUS, b"welcome back")]
                )
                assert n1.peer_events == [("n2", True), ("n2", False), ("n2", True)]

    run(body)


def test_transport_queue_bound_drops_the_newest_frames(pki: Pki, run: Runner) -> None:
    n1, n2 = mesh(
        pki,
        ["n1", "n2"],
    )
    n1.transport.config.peer_queue_frames_max = 10

    async def body() -> None:
        async with started(n1, n2):
            await wait_until(lambda: n1.transport.connected_peers() == ["n2"])
            # No await between sends: the writer cannot run, so the queue fills up.
            accepted = [n1.transport.send("n2", FrameKind.TXS, bytes([i])) for i in range(15)]
            assert accepted == [True] * 10 + [False] * 5
            assert n1.transport.stats["frames_dropped_queue_full"] == 5
            await wait_until(lambda: len(n2.frames) == 10)
            assert [body for _, _, body in n2.frames] == [bytes([i]) for i in range(10)]

    run(body)


@pytest.mark.parametrize("run", ["asyncio", "uvloop"], indirect=True)
def test_transport_delivers_many_small_frames_in_order(pki: Pki, run: Runner) -> None:
    n1, n2 = mesh(pki, ["n1", "n2"])
    count = 20_000

    async def body() -> None:
        async with started(n1, n2):
            await wait_until(lambda: n1.transport.connected_peers() == ["n2"])
            for i in range(count):
                assert n1.transport.send("n2", FrameKind.CONSENSUS, i.to_bytes(4, "big"))
                if i % 1000 == 999:
                    await asyncio.sleep(0)  # let the writer coalesce a batch
            await wait_until(lambda: len(n2.frames) == count)
            assert [int.from_bytes(b, "big") for _, _, b in n2.frames] == list(range(count))
            stats = n1.transport.stats
            assert stats["writes"] < count / 10  # coalesced: many frames per write

    run(body)


def test_transport_send_reports_peers_that_are_not_connected(pki: Pki, run: Runner) -> None:
    node = make_node(pki.identity("n1"), p2p_config(0))

    async def body() -> None:
        async with started(node):
            assert node.transport.send("n2", FrameKind.TXS, b"x") is False
            assert node.transport.stats["frames_dropped_not_connected"] == 1
            node.transport.broadcast(FrameKind.TXS, b"x")  # nobody there: nothing happens
            await node.transport.close()
            await node.transport.close()  # idempotent

    run(body)


def test_transport_disconnects_a_silent_peer(pki: Pki, run: Runner) -> None:
    port = free_port()
    server = make_node(pki.identity("n1"), p2p_config(port), keepalive_ms=50, idle_timeout_ms=200)

    async def body() -> None:
        async with started(server):
            _, writer = await connect_raw(pki.identity("n2"), port)
            await wait_until(lambda: server.transport.connected_peers() == ["n2"])
            # We never answer: the server's keepalives arrive, then it gives up on us.
            await wait_until(lambda: server.transport.connected_peers() == [], timeout_s=2)
            writer.close()

    run(body)


def test_transport_keepalives_hold_an_idle_connection(pki: Pki, run: Runner) -> None:
    n1, n2 = mesh(pki, ["n1", "n2"], keepalive_ms=30, idle_timeout_ms=150)

    async def body() -> None:
        async with started(n1, n2):
            await wait_until(lambda: n1.transport.connected_peers() == ["n2"])
            await asyncio.sleep(0.5)
            assert n1.peer_events == [("n2", True)]
            assert n1.frames == []  # keepalives never reach the node

    run(body)


def test_transport_contains_a_failing_frame_handler(pki: Pki, run: Runner) -> None:
    port = free_port()

    def explode(peer: str, kind: FrameKind, body: bytes) -> None:
        raise ValueError("node bug")

    server = Transport(pki.identity("n1"), p2p_config(port), explode)
    client = make_node(pki.identity("n2"), p2p_config(0, {"n1": port}))

    async def body() -> None:
        await server.start()
        try:
            async with started(client):
                await wait_until(lambda: client.transport.connected_peers() == ["n1"])
                client.transport.send("n1", FrameKind.TXS, b"a")
                client.transport.send("n1", FrameKind.TXS, b"b")
                await wait_until(lambda: server.stats["callback_errors"] == 2)
                assert server.connected_peers() == ["n2"]
        finally:
            await server.close()

    run(body)


@pytest.mark.parametrize(
    ("version", "name", "reason"),
    [(PROTOCOL_VERSION + 1, "n2", "protocol_version"), (PROTOCOL_VERSION, "n3", "name_mismatch")],
)
def test_transport_refuses_a_bad_hello(
    pki: Pki, run: Runner, version: int, name: str, reason: str
) -> None:
    port = free_port()
    server = make_node(pki.identity("n1"), p2p_config(port))
    identity = pki.identity("n2")

    async def body() -> None:
        async with started(server):
            reader, writer = await connect_raw(
                identity, port, Hello(version, identity.genesis_hash, name)
            )
            assert await reader.read() == b""  # refused: the server hangs up
            assert refusals(server, reason) == 1
            assert server.transport.connected_peers() == []
            writer.close()

    run(body)


def test_transport_newer_connection_from_the_same_dialler_replaces_the_old(
    pki: Pki, run: Runner
) -> None:
    port = free_port()
    server = make_node(pki.identity("n2"), p2p_config(port))

    async def body() -> None:
        async with started(server):
            old_reader, old_writer = await connect_raw(pki.identity("n1"), port)
            await wait_until(lambda: server.transport.connected_peers() == ["n1"])
            _, new_writer = await connect_raw(pki.identity("n1"), port)  # n1 restarted
            await wait_until(lambda: server.transport.stats["connections_replaced"] == 1)
            assert await old_reader.read() == b""
            new_writer.write(encode_frame(FrameKind.TXS, b"on the new one"))
            await wait_until(lambda: server.frames == [("n1", FrameKind.TXS, b"on the new one")])
            assert server.peer_events == [("n1", True)]  # no flap for the node
            old_writer.close()
            new_writer.close()

    run(body)


def test_transport_keeps_the_connection_dialled_by_the_lower_name(pki: Pki, run: Runner) -> None:
    n1_port, n2_port = free_port(), free_port()
    n1 = make_node(pki.identity("n1"), p2p_config(n1_port, {"n2": n2_port}))
    n2 = make_node(pki.identity("n2"), p2p_config(n2_port))

    async def body() -> None:
        async with started(n1, n2):
            await wait_until(lambda: n2.transport.connected_peers() == ["n1"])
            await wait_until(lambda: n1.transport.connected_peers() == ["n2"])
            # A second connection dialled by n2 (the higher name) loses to n1's: closed.
            reader, writer = await connect_raw(pki.identity("n2"), n1_port)
            assert await reader.read() == b""
            assert n1.transport.stats["connections_duplicate"] == 1
            assert n2.transport.send("n1", FrameKind.TXS, b"still here")
            await wait_until(lambda: n1.frames == [("n2", FrameKind.TXS, b"still here")])
            assert n1.peer_events == [("n2", True)]
            writer.close()

    run(body)
