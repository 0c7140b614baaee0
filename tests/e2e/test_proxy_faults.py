"""Four organisations' nodes whose every link goes through a fault proxy
(`taihang.testing.fault_proxy`, docs/testing.md): a node cut off, a one-way partition (brief,
and held past the transport's idle timeout), and one node's links ten times slower than the
rest's.

Every test runs under a steady transfer load and ends like `test_network_faults.py`: every
accepted transaction has a receipt, balances still sum to the issued supply, and after a clean
stop every node's store agrees with the others on every block id and execution root (no
fork) and passes `ledger verify`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_support import (
    Cluster,
    Load,
    finish,
    setup_accounts,
    wait_advanced,
    wait_caught_up,
)
from proxy_support import init_proxied_cluster

from taihang.net.transport import IDLE_TIMEOUT_MS_DEFAULT
from taihang.testing.fault_proxy import FaultProxy

pytestmark = pytest.mark.e2e

ACCOUNTS = 8
RATE = 100.0  # tx/s: a steady load, well below capacity, so faults decide the outcome
BASE_DELAY_MS = 10
SLOW_DELAY_MS = 10 * BASE_DELAY_MS
IDLE_TIMEOUT_S = IDLE_TIMEOUT_MS_DEFAULT / 1000  # a peer silent this long is disconnected


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Cluster, FaultProxy]]:
    cluster, proxy = init_proxied_cluster(tmp_path / "net")
    try:
        yield cluster, proxy
    finally:
        cluster.cleanup()
        proxy.close()
    assert proxy.errors == []


def test_a_node_cut_off_stalls_while_the_rest_commit_and_catches_up_after_heal(
    proxied: tuple[Cluster, FaultProxy],
) -> None:
    cluster, proxy = proxied
    cluster.start_all()
    senders = setup_accounts(cluster, ACCOUNTS)
    with Load(cluster, senders, RATE) as load:
        time.sleep(1)
        proxy.isolate("node4")
        time.sleep(1)  # what was in flight settles; nothing reaches node4 after the cut
        isolated_at = cluster.height("node4")
        wait_advanced(cluster, ["node1", "node2", "node3"], by=5)
        assert cluster.height("node4") == isolated_at, "a node alone cannot commit"
        assert all(proxy.count_connections("node4", p) == 0 for p in proxy.peers_of("node4"))
        proxy.heal_all()
        wait_caught_up(cluster, "node4")
        wait_advanced(cluster, cluster.names, by=2)
    finish(cluster, load, senders)


def drop_outbound(proxy: FaultProxy, name: str) -> None:
    """Blackhole every byte `name` sends; it still hears everyone."""
    for peer in proxy.peers_of(name):
        proxy.drop(name, peer)


def test_a_one_way_partition_forks_nothing_and_the_network_recovers_after_heal(
    proxied: tuple[Cluster, FaultProxy],
) -> None:
    """node2's outbound bytes are blackholed while it still hears everyone: its votes,
    proposals and gossip are lost, the other three keep a quorum, and node2 follows the chain
    from what it hears. Healed, its own transactions get through again (each of its lost
    proposals gave its transactions back to its mempool)."""
    cluster, proxy = proxied
    cluster.start_all()
    senders = setup_accounts(cluster, ACCOUNTS)
    with Load(cluster, senders, RATE) as load:
        time.sleep(1)
        drop_outbound(proxy, "node2")
        wait_advanced(cluster, cluster.names, by=3)  # node2 too: it still hears proposals
        assert all(
            proxy.get_flow_stats("node2", p).bytes_dropped > 0 for p in proxy.peers_of("node2")
        )
        proxy.heal_all()
        wait_advanced(cluster, cluster.names, by=3)
    finish(cluster, load, senders)


def test_a_one_way_partition_past_the_idle_timeout_loses_no_accepted_transaction(
    proxied: tuple[Cluster, FaultProxy],
) -> None:
    """node2's outbound bytes are blackholed long enough for its peers, which read nothing
    from it for the transport's idle timeout (20 s), to close its connections; no new one can
    finish a TLS handshake, so node2 falls behind. Healed, it redials and catches up, and
    every transaction any node accepted meanwhile commits."""
    cluster, proxy = proxied
    cluster.start_all()
    senders = setup_accounts(cluster, ACCOUNTS)
    with Load(cluster, senders, RATE) as load:
        time.sleep(1)
        drop_outbound(proxy, "node2")
        wait_advanced(cluster, cluster.names, by=5)  # node2 too, until its links idle out
        cluster.wait_until(
            lambda: (cluster.height("node1") or 0) >= (cluster.height("node2") or 0) + 5,
            timeout_s=IDLE_TIMEOUT_S + 25,
            what="node2's peers to drop it after the idle timeout",
        )
        assert "nothing read for" in (cluster.entry("node1").home / "node.log").read_text()
        proxy.heal_all()
        wait_caught_up(cluster, "node2")
        wait_advanced(cluster, cluster.names, by=2)
    finish(cluster, load, senders)


def test_one_node_ten_times_slower_keeps_commits_going_and_stays_consistent(
    proxied: tuple[Cluster, FaultProxy],
) -> None:
    """Every link delays 10 ms each way, node3's 100 ms: a round trip with node3 takes
    200 ms of a 1 s round timer. Blocks keep committing and node3 keeps up."""
    cluster, proxy = proxied
    for src, dst in proxy.routes:
        proxy.delay(src, dst, BASE_DELAY_MS)
    cluster.start_all()
    senders = setup_accounts(cluster, ACCOUNTS)
    with Load(cluster, senders, RATE) as load:
        for peer in proxy.peers_of("node3"):
            proxy.delay("node3", peer, SLOW_DELAY_MS, both_ways=True)
        wait_advanced(cluster, cluster.names, by=8)
        wait_caught_up(cluster, "node3", timeout_s=10)
    finish(cluster, load, senders)
