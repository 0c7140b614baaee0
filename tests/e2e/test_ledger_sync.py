"""Ledger sync with real processes: a validator far behind, a late observer, a lying peer.

The catch-up threshold is set low (`consensus.catchup_blocks_max`), so a node further behind
than it fetches committed blocks in ranges from several peers under a commit proof, commits
and executes them, and then takes part in consensus again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from cluster_support import Cluster, add_observer, check_agreement, init_cluster

from taihang.codec import decode
from taihang.ledger.block import Block, decode_signer_bitmap
from taihang.ledger.genesis import build_validator_set
from taihang.net import FrameKind, Transport, TransportIdentity
from taihang.node.chain import Chain
from taihang.node.config import PeerConfig
from taihang.node.home import NodeHome
from taihang.sdk.keys import load_key
from taihang.sync.messages import (
    RangeRequest,
    RangeResponse,
    Tip,
    TipRequest,
    decode_sync_message,
    encode_sync_message,
)

pytestmark = pytest.mark.e2e

THRESHOLD = 20


def fast_cluster(path: Path) -> Cluster:
    network = init_cluster(
        path,
        idle_block_interval_ms=5,
        round_timeout_base_ms=300,
        network_allowance_ms=100,
        catchup_blocks_max=THRESHOLD,
        committed_blocks_kept=16,
    )
    return Cluster(network)


def signed_after(cluster: Cluster, name: str, reader: str, above: int) -> int:
    """How many certificates above height `above` in `reader`'s stopped store `name` signed."""
    home = NodeHome(cluster.entry(reader).home)
    config = home.load_config()
    chain = Chain.open(home.data_path(config), home.load_genesis(config))
    try:
        index = chain.validators.index_of(
            load_key(cluster.entry(name).home / "node_key.json").address
        )
        count = 0
        for height in range(above + 1, chain.tip_height + 1):
            qc = decode(chain.store.find_block(height) or b"", Block).header.qc
            if index in decode_signer_bitmap(qc.signers, len(chain.validators.members)):
                count += 1
        return count
    finally:
        chain.close()


def signed_recently(cluster: Cluster, name: str, reader: str, above: int) -> bool:
    """Whether `name` signed one of the last 40 certificates above `above` that `reader` holds."""
    home = NodeHome(cluster.entry(reader).home)
    validators = build_validator_set(home.load_genesis(home.load_config()))
    index = validators.index_of(load_key(cluster.entry(name).home / "node_key.json").address)
    with cluster.client(reader) as client:
        latest = client.status().height
        for height in range(max(above + 1, latest - 40), latest + 1):
            signers = bytes.fromhex(client.get_block(height).header["qc"]["signers"])
            if index in decode_signer_bitmap(signers, len(validators.members)):
                return True
    return False


def test_validator_beyond_the_threshold_syncs_the_ledger_and_votes_again(tmp_path: Path) -> None:
    cluster = fast_cluster(tmp_path / "net")
    try:
        cluster.start_all()
        cluster.kill("node4")
        behind = cluster.height("node1") or 0
        cluster.wait_until(
            lambda: (cluster.height("node1") or 0) > behind + 5 * THRESHOLD,
            what="the others to move 100 blocks on",
        )
        cluster.start("node4")
        cluster.wait_until(
            lambda: "ledger_sync_done" in cluster.log_tail("node4"), what="node4's ledger sync"
        )
        synced_to = cluster.height("node4") or 0
        cluster.wait_until(
            lambda: (cluster.height("node4") or 0) >= synced_to + 30, what="node4 to follow"
        )
        cluster.wait_until(  # it votes once it has executed what it synced
            lambda: signed_recently(cluster, "node4", "node1", synced_to),
            what="node4's signature in a certificate after its sync",
        )
        cluster.stop_all()
        check_agreement(cluster.network)
        assert signed_after(cluster, "node4", "node1", synced_to) > 0, "node4 never voted again"
    finally:
        cluster.cleanup()


def test_late_observer_syncs_thousands_of_blocks_then_follows(tmp_path: Path) -> None:
    cluster = fast_cluster(tmp_path / "net")
    observer = add_observer(cluster.network)
    try:
        for name in ("node1", "node2", "node3", "node4"):
            cluster.start(name)
        cluster.wait_until(
            lambda: (cluster.height("node1") or 0) >= 2_000,
            timeout_s=240,
            what="2,000 blocks before the observer starts",
        )
        cluster.start(observer.name)
        target = cluster.height("node1") or 0
        cluster.wait_until(
            lambda: (cluster.height(observer.name) or 0) >= target + 20,
            timeout_s=120,
            what="the observer to sync and follow",
        )
        assert "ledger_sync_done" in cluster.log_tail(observer.name)

        def observer_executed() -> bool:
            with cluster.client(observer.name) as client:
                return client.status().executed_height >= target

        cluster.wait_until(observer_executed, timeout_s=120, what="the observer to execute")
        cluster.stop_all()
        check_agreement(cluster.network)
    finally:
        cluster.cleanup()


def test_a_peer_serving_tampered_blocks_is_dropped_and_sync_completes(tmp_path: Path) -> None:
    """node3's identity in hostile hands answers tips honestly and ranges with a changed
    block; node4, syncing from node1, node2 and it, drops it and finishes from the others."""
    cluster = fast_cluster(tmp_path / "net")
    try:
        cluster.start_all()
        cluster.kill("node4")
        behind = cluster.height("node1") or 0
        gap = 400  # seven windows of 64 blocks: every peer, the liar too, gets some
        cluster.wait_until(
            lambda: (cluster.height("node1") or 0) > behind + gap,
            what="the others to move 400 blocks on",
        )
        cluster.kill("node3")  # the chain halts: node4 is needed for a quorum again
        asyncio.run(serve_tampered_while(cluster, "node3", "node4"))
        cluster.start("node3")
        cluster.wait_until(lambda: (cluster.height("node4") or 0) > behind + gap + 10)
        tail = cluster.log_tail("node4")
        assert "sync_peer_dropped" in tail and "node3" in tail
        cluster.stop_all()
        check_agreement(cluster.network)
    finally:
        cluster.cleanup()


async def serve_tampered_while(cluster: Cluster, name: str, victim: str) -> None:
    """Be `name` on the network (its real key and certificate) until `victim` has synced."""
    entry = cluster.entry(name)
    home = NodeHome(entry.home)
    config = home.load_config()
    genesis = home.load_genesis(config)
    chain = Chain.open(home.data_path(config), genesis)
    peers = [
        PeerConfig(e.name, "127.0.0.1", e.p2p_port) for e in cluster.network.nodes if e.name != name
    ]
    # Redial every 50 ms: the liar must be connected when the victim starts planning its
    # sync, or the honest peers serve every range and there is nothing to drop.
    p2p = msgspec.structs.replace(config.p2p, peers=peers, reconnect_ms_min=50, reconnect_ms_max=50)
    transport: Transport | None = None

    def on_frame(peer: str, kind: FrameKind, body: bytes) -> None:
        if kind != FrameKind.SYNC or transport is None:
            return
        message = decode_sync_message(body)
        if isinstance(message, TipRequest):
            proof = chain.highest_qc
            reply: object = Tip(message.nonce, chain.tip_height, chain.tip_id, proof)
        elif isinstance(message, RangeRequest):
            blocks = [
                decode(chain.store.find_block(h) or b"", Block)
                for h in range(message.start, message.start + message.count)
                if h <= chain.tip_height
            ]
            if blocks:  # tamper with the top block's timestamp: its hash no longer links
                header = msgspec.structs.replace(blocks[-1].header, timestamp_ms=1)
                blocks[-1] = msgspec.structs.replace(blocks[-1], header=header)
            reply = RangeResponse(start=message.start, blocks=blocks)
        else:
            return
        transport.send(peer, FrameKind.SYNC, encode_sync_message(reply))  # type: ignore[arg-type]

    transport = Transport(TransportIdentity.load(entry.home, config, genesis), p2p, on_frame)
    await transport.start()
    try:
        cluster.start(victim)
        for _ in range(600):
            if "ledger_sync_done" in cluster.log_tail(victim):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"{victim} never finished its sync:\n{cluster.log_tail(victim)}")
    finally:
        await transport.close()
        chain.close()
