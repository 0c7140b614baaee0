"""The node's Prometheus metrics (`taihang_*`), exported at `GET /metrics`.

Each node owns a `CollectorRegistry` of its own rather than the process-global one, so that
tests can build several nodes and apps in one process without "duplicated timeseries" errors.

Two kinds of value, chosen by cost:
  - events the runtime already handles once per batch or block (admission rejections,
    commits, executions, API requests) update counters and histograms as they happen;
  - levels (heights, mempool size) are read from the node when a scrape asks for them
    (`watch`), so they are always current and cost nothing between scrapes.
Label values come from small closed sets (receipt statuses, rejection codes, route templates,
HTTP methods and statuses), which keeps the number of series bounded.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping
from operator import attrgetter
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from taihang import __version__

if TYPE_CHECKING:
    from taihang.node.chain import ExecutedBlock

RECEIPT_STATUSES = ("ok", "reverted", "out_of_gas", "rejected")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Buckets in seconds. Commits are one fsynced batch (milliseconds); execution runs contracts
# for up to a full block; latency spans one block interval (50 ms) to a client's 10 s wait.
COMMIT_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
EXECUTE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
API_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BLOCK_TXS_BUCKETS = (0, 1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000)

_status_of = attrgetter("status")


class NodeMetrics:
    """The metrics of one node, in its own registry."""

    def __init__(self, *, channel: str, crypto: str) -> None:
        self.registry = CollectorRegistry()
        self._define_chain_metrics()
        self._define_api_metrics()
        build_info = Gauge(
            "taihang_build_info",
            "Always 1; the labels say which software runs which channel.",
            ["version", "crypto", "channel"],
            registry=self.registry,
        )
        build_info.labels(__version__, crypto, channel).set(1)

    def _define_chain_metrics(self) -> None:
        r = self.registry
        self.chain_height = Gauge("taihang_chain_height", "Highest committed height.", registry=r)
        self.executed_height = Gauge(
            "taihang_chain_executed_height",
            "Highest executed height (receipts readable).",
            registry=r,
        )
        self.txs_committed = Counter(
            "taihang_txs_committed",
            "Transactions in executed blocks, by receipt status.",
            ["result"],
            registry=r,
        )
        for result in RECEIPT_STATUSES:  # export zeros, so rate() works from the first block
            self.txs_committed.labels(result)
        self.txs_rejected = Counter(
            "taihang_txs_rejected",
            "Transactions refused at admission (never in a block), by error code.",
            ["code"],
            registry=r,
        )
        self.mempool_txs = Gauge("taihang_mempool_txs", "Pending transactions.", registry=r)
        self.mempool_bytes = Gauge(
            "taihang_mempool_bytes", "Encoded size of the pending transactions.", registry=r
        )
        self.commit_duration = Histogram(
            "taihang_block_commit_duration_seconds",
            "Time to persist a block and its certificate (the synced commit batch).",
            buckets=COMMIT_BUCKETS_S,
            registry=r,
        )
        self.execute_duration = Histogram(
            "taihang_block_execute_duration_seconds",
            "Time to execute a block and write its ledger batch.",
            buckets=EXECUTE_BUCKETS_S,
            registry=r,
        )
        self.block_txs = Histogram(
            "taihang_block_txs", "Transactions per block.", buckets=BLOCK_TXS_BUCKETS, registry=r
        )
        self.tx_latency = Histogram(
            "taihang_tx_latency_seconds",
            "From admission to a readable receipt, for transactions submitted to this node.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )

    def _define_api_metrics(self) -> None:
        self.api_requests = Counter(
            "taihang_api_requests",
            "HTTP API requests, by route template, method and status code.",
            ["route", "method", "code"],
            registry=self.registry,
        )
        self.api_duration = Histogram(
            "taihang_api_request_duration_seconds",
            "HTTP API request time, by route template, until the response is sent.",
            ["route"],
            buckets=API_BUCKETS_S,
            registry=self.registry,
        )
        # labels() validates and locks on every call; the label sets are few, so keep them.
        self._api_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def watch(
        self,
        *,
        chain_height: Callable[[], int],
        executed_height: Callable[[], int],
        mempool_txs: Callable[[], int],
        mempool_bytes: Callable[[], int],
    ) -> None:
        """Read these levels from the node at scrape time (call them on the node's loop)."""
        self.chain_height.set_function(chain_height)
        self.executed_height.set_function(executed_height)
        self.mempool_txs.set_function(mempool_txs)
        self.mempool_bytes.set_function(mempool_bytes)

    def watch_consensus(
        self,
        *,
        round: Callable[[], int],
        peers: Callable[[], int],
        p2p_stats: Callable[[], Mapping[str, int]],
    ) -> None:
        """Consensus and transport levels of a node with peers, read at scrape time."""
        r = self.registry
        Gauge("taihang_consensus_round", "The round this node is in.", registry=r).set_function(
            round
        )
        Gauge(
            "taihang_p2p_peers_connected", "Peers with an open, authenticated link.", registry=r
        ).set_function(peers)
        r.register(_P2PStatsCollector(p2p_stats))

    def tx_rejected(self, code: str) -> None:
        self.txs_rejected.labels(code).inc()

    def mempool_size(self, size: int) -> None:
        """The pool size after an admission; a `watch`ed reader, once bound, takes over."""
        self.mempool_txs.set(size)

    def block_committed(self, height: int, txs: int, duration_s: float) -> None:
        self.commit_duration.observe(duration_s)
        self.block_txs.observe(txs)

    def block_execute_duration(self, seconds: float) -> None:
        """Called from the executor thread; prometheus_client metrics are thread-safe."""
        self.execute_duration.observe(seconds)

    def block_executed(self, executed: ExecutedBlock, latencies: list[float]) -> None:
        # Tally in C (Counter over map), then one increment per distinct status.
        for result, count in Tally(map(_status_of, executed.result.receipts)).items():
            self.txs_committed.labels(result).inc(count)
        observe = self.tx_latency.observe
        for latency_s in latencies:
            observe(latency_s)

    def api_request(self, route: str, method: str, code: int, duration_s: float) -> None:
        if method not in HTTP_METHODS:
            method = "other"  # any token is a valid method; do not let clients mint series
        key = (route, method, code)
        children = self._api_children.get(key)
        if children is None:
            children = (
                self.api_requests.labels(route, method, str(code)),
                self.api_duration.labels(route),
            )
            self._api_children[key] = children
        children[0].inc()
        children[1].observe(duration_s)


class _P2PStatsCollector(Collector):
    """The transport's counters as `taihang_p2p_events_total{event}` (a closed set of names)."""

    def __init__(self, stats: Callable[[], Mapping[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "taihang_p2p_events",
            "Transport events: frames and bytes in and out, drops, handshakes refused by "
            "reason (handshakes_refused.<reason>), charges, bans.",
            labels=["event"],
        )
        for name, value in sorted(self._stats().items()):
            family.add_metric([name], value)
        yield family
