"""Counters the node keeps for `status` (Prometheus export comes with the metrics issue)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taihang.node.chain import ExecutedBlock


class NodeMetrics:
    def __init__(self) -> None:
        self.rejected: Counter[str] = Counter()
        self.committed_results: Counter[str] = Counter()
        self.blocks_committed = 0
        self.last_commit_duration_s = 0.0
        self.mempool_txs = 0
        self.latency_samples: list[float] = []

    def tx_rejected(self, code: str) -> None:
        self.rejected[code] += 1

    def mempool_size(self, size: int) -> None:
        self.mempool_txs = size

    def block_committed(self, height: int, txs: int, duration_s: float) -> None:
        self.blocks_committed += 1
        self.last_commit_duration_s = duration_s

    def block_executed(self, executed: ExecutedBlock, latencies: list[float]) -> None:
        for receipt in executed.result.receipts:
            self.committed_results[receipt.status] += 1
        self.latency_samples = (self.latency_samples + latencies)[-10_000:]
