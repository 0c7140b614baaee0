"""Four organisations' nodes as real processes over mutual TLS: load, kill -9, pause, outage.

Each test ends the same way: every accepted transaction has a receipt, balances still sum
to the issued supply, and after a clean stop every node's store agrees with the others on
every block id and execution root, and passes `ledger verify`.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from cluster_support import (
    Cluster,
    Load,
    check_agreement,
    finish,
    init_cluster,
    setup_accounts,
    wait_advanced,
)

from taihang.codec import decode, encode
from taihang.consensus.messages import Vote, encode_message
from taihang.ledger.block import Block, build_vote_data
from taihang.ledger.genesis import Genesis
from taihang.net import FrameKind, Transport, TransportIdentity
from taihang.node.chain import Chain
from taihang.node.config import NodeConfig, PeerConfig
from taihang.node.home import NodeHome
from taihang.node.pki import build_org_ca, issue_node_certificate
from taihang.sdk.keys import load_key
from taihang.sdk.tx import build_signed_tx

pytestmark = pytest.mark.e2e

ACCOUNTS = 8
RATE = 100.0  # tx/s: a steady load, well below capacity, so faults decide the outcome


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(init_cluster(tmp_path / "net"))
    running.start_all()
    yield running
    running.cleanup()


def test_four_nodes_commit_under_steady_load(cluster: Cluster) -> None:
    senders = setup_accounts(cluster, ACCOUNTS)
    with Load(cluster, senders, RATE) as load:
        time.sleep(6)
    heights = cluster.heights()
    assert all(h is not None and h > 5 for h in heights.values()), heights

    def node2_sees_all_peers() -> bool:
        with cluster.client("node2") as client:
            return sorted(client.status().peers) == ["node1", "node3", "node4"]

    cluster.wait_until(node2_sees_all_peers, timeout_s=15, what="node2 connected to all")
    metrics = httpx.get(cluster.entry("node2").api + "/metrics", timeout=5).text
    assert "taihang_p2p_peers_connected 3.0" in metrics
    assert 'taihang_p2p_events_total{event="frames_in"}' in metrics
    assert "taihang_consensus_round " in metrics
    finish(cluster, load, senders)


def test_kill9_validator_keeps_network_committing_and_it_catches_up(cluster: Cluster) -> None:
    senders = setup_accounts(cluster, ACCOUNTS)
    with Load(cluster, senders, RATE) as load:
        time.sleep(2)
        cluster.kill("node2")
        wait_advanced(cluster, ["node1", "node3", "node4"], by=5)
        cluster.start("node2")
        target = max(h or 0 for h in cluster.heights().values())
        cluster.wait_until(
            lambda: (cluster.height("node2") or 0) >= target, what="node2 to catch up"
        )
        time.sleep(2)
    finish(cluster, load, senders)


def test_paused_validator_catches_up_after_sigcont(cluster: Cluster) -> None:
    senders = setup_accounts(cluster, ACCOUNTS)
    with Load(cluster, senders, RATE) as load:
        cluster.signal("node3", signal.SIGSTOP)
        paused_at = time.monotonic()
        wait_advanced(cluster, ["node1", "node2", "node4"], by=5)
        time.sleep(max(0.0, 10 - (time.monotonic() - paused_at)))
        cluster.signal("node3", signal.SIGCONT)
        target = max(h or 0 for h in cluster.heights().values())
        cluster.wait_until(
            lambda: (cluster.height("node3") or 0) >= target, what="node3 to catch up"
        )
        time.sleep(2)
    finish(cluster, load, senders)


def test_two_of_four_down_stops_commits_and_restart_resumes(cluster: Cluster) -> None:
    senders = setup_accounts(cluster, ACCOUNTS)
    with Load(cluster, senders, RATE) as load:
        time.sleep(1)
        cluster.kill("node1")
        cluster.kill("node2")
        time.sleep(3)  # whatever was in flight settles
        stalled = {n: cluster.height(n) for n in ("node3", "node4")}
        time.sleep(5)
        assert {n: cluster.height(n) for n in ("node3", "node4")} == stalled, "no quorum left"
        cluster.start("node1")
        cluster.start("node2")
        wait_advanced(cluster, cluster.names, by=3)
        time.sleep(1)
    finish(cluster, load, senders)


def test_a_node_certificate_from_an_unknown_ca_cannot_connect(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A rogue CA issues a certificate for a genesis node's name; node1 refuses the TLS link."""
    rogue_key, rogue_cert = build_org_ca("org2")
    key_pem, cert_pem = issue_node_certificate(
        rogue_key, rogue_cert, node_name="node2", org_id="org2", hosts=["127.0.0.1"]
    )
    (tmp_path / "rogue.key").write_bytes(key_pem)
    (tmp_path / "rogue.pem").write_bytes(cert_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(tmp_path / "rogue.pem", tmp_path / "rogue.key")
    port = cluster.entry("node1").p2p_port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw) as tls:
                tls.settimeout(5)
                data = tls.recv(1024)  # TLS 1.3: the server's verdict arrives after the handshake
        except (ssl.SSLError, ConnectionResetError):
            data = b""
    assert data == b"", "node1 must not talk to a node whose CA is not in genesis"
    cluster.wait_until(
        lambda: "peer_refused" in cluster.log_tail("node1"), timeout_s=10, what="the refusal log"
    )
    assert "node2" in cluster.log_tail("node1") or "certificate" in cluster.log_tail("node1")
    with cluster.client("node1") as client:
        assert sorted(client.status().peers) == ["node2", "node3", "node4"]


def test_validator_further_behind_than_memory_catches_up_from_peers_stores(
    tmp_path: Path,
) -> None:
    """Peers keep `committed_blocks_kept` committed blocks in memory (16 here, 256 by
    default), so catching up 80 blocks needs the older ones served from their ledger stores."""
    network = init_cluster(
        tmp_path / "net",
        idle_block_interval_ms=20,
        round_timeout_base_ms=300,  # node4's turns as leader time out while it is down
        network_allowance_ms=100,
        committed_blocks_kept=16,
    )
    cluster = Cluster(network)
    try:
        cluster.start_all()
        cluster.kill("node4")
        behind = max(h or 0 for h in cluster.heights().values())
        cluster.wait_until(
            lambda: (cluster.height("node1") or 0) >= behind + 80,
            timeout_s=120,
            what="80 blocks without node4",
        )
        cluster.start("node4")
        target = cluster.height("node1") or 0
        cluster.wait_until(
            lambda: (cluster.height("node4") or 0) >= target,
            timeout_s=90,
            what="node4 to catch up 80 blocks",
        )
        cluster.stop_all()
        assert check_agreement(cluster.network) >= target
    finally:
        cluster.cleanup()


def test_garbage_from_an_authenticated_peer_is_charged_and_the_network_goes_on(
    cluster: Cluster,
) -> None:
    """node4's key material in hostile hands: node1 drops, counts and charges every bad frame
    (undecodable consensus bytes, a vote with a forged signature, malformed gossip, a gossiped
    transaction with a bad signature) and keeps committing with node2 and node3."""
    cluster.kill("node4")
    entry = cluster.entry("node4")
    home = NodeHome(entry.home)
    config = home.load_config()
    genesis = home.load_genesis(config)
    chain = Chain.open(home.data_path(config), genesis)
    try:
        header = decode(chain.store.find_block(1) or b"", Block).header
        author = load_key(entry.home / "node_key.json").address
        vote = Vote(
            vote_data=build_vote_data(chain.suite, header), author=author, signature=bytes(64)
        )
    finally:
        chain.close()
    forged_tx = bytearray(
        build_signed_tx(
            seed=bytes(32),
            suite_name="ed25519",
            channel=genesis.channel,
            nonce=0,
            contract="kv",
            method="put",
            args=["k", "v"],
            expires_at_height=10**6,
        )
    )
    forged_tx[-1] ^= 1
    frames = [
        (FrameKind.CONSENSUS, b"\xc1 not msgpack"),
        (FrameKind.CONSENSUS, encode_message(vote)),
        (FrameKind.TXS, b"\x93\x01\x02"),
        (FrameKind.TXS, encode([bytes(forged_tx)])),
    ]
    before = cluster.height("node1") or 0
    asyncio.run(send_as(entry.name, entry.home, config, genesis, "node1", cluster, frames))
    cluster.wait_until(
        lambda: cluster.log_tail("node1").count('"peer_charged"') >= len(frames),
        timeout_s=15,
        what="node1 to charge node4 for each bad frame",
    )
    tail = cluster.log_tail("node1")
    assert "undecodable consensus message" in tail and "invalid Vote" in tail
    assert "bad transaction gossip" in tail and "bad signature" in tail
    assert (cluster.height("node1") or 0) >= before  # still answering
    wait_advanced(cluster, ["node1", "node2", "node3"], by=3)


async def send_as(
    name: str,
    home: Path,
    config: NodeConfig,
    genesis: Genesis,
    to: str,
    cluster: Cluster,
    frames: list[tuple[FrameKind, bytes]],
) -> None:
    target = cluster.entry(to)
    p2p = msgspec.structs.replace(
        config.p2p,
        port=0,
        peers=[PeerConfig(name=to, host="127.0.0.1", port=target.p2p_port)],
        reconnect_ms_max=200,
    )
    transport = Transport(TransportIdentity.load(home, config, genesis), p2p, lambda *_: None)
    await transport.start()
    try:
        for _ in range(100):
            if to in transport.connected_peers():
                break
            await asyncio.sleep(0.1)
        assert to in transport.connected_peers(), "the hostile peer never got connected"
        for kind, body in frames:
            assert transport.send(to, kind, body)
        await asyncio.sleep(1.0)  # let the writer flush before closing
    finally:
        await transport.close()
