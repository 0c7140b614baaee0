"""Benchmark: consensus core CPU per committed block per node, with real Ed25519 signatures.

    .venv/bin/python tests/bench/bench_consensus_core.py [--nodes 4 16 50] [--seconds 5]

Runs n `ConsensusCore`s in the in-memory cluster of the unit tests (fixed 5 ms one-way
delay, 20 transactions of 100 bytes per block) and times, on each node, with thread CPU time:

* core: `handle()` itself, including signing (votes, timeouts, proposals) and hashing;
* verify: the verifier stage (`MessageVerifier.verify`) on every message the node receives,
  i.e. signature checks of proposals, votes, timeouts and certificates (QC/TC cache on).

Both are divided by the blocks the node committed. With n <= 20 votes are broadcast (every
node verifies every vote); above, they go to the next leader only. Not a pass/fail test;
pytest does not collect it (no `test_` prefix).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "consensus"))

from consensus_support import ED25519, Cluster, make_config

from taihang.consensus.events import Event


class TimedCluster(Cluster):
    """The test cluster, charging each node's `handle` and verifier time to that node."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.core_ns = [0] * self.n
        self.verify_ns = [0] * self.n
        self.messages = [0] * self.n

    def _step(self, index: int, event: Event) -> list[Any]:
        node = self.nodes[index]
        assert node.core is not None
        start = time.thread_time_ns()
        actions = node.core.handle(event)
        self.core_ns[index] += time.thread_time_ns() - start
        node.steps.append(actions)
        for action in actions:
            self._carry_out(index, action)
        return actions

    def _deliver(self, index: int, sender: int, message: Any) -> None:
        start = time.thread_time_ns()
        self.verifiers[index].verify(message)
        self.verify_ns[index] += time.thread_time_ns() - start
        self.messages[index] += 1
        from taihang.consensus.events import MessageReceived

        self._step(index, MessageReceived(self.now_ms, self.keys.addresses[sender], message))


def run(nodes: int, seconds: float) -> dict[str, float]:
    config = make_config(
        round_timeout_base_ms=1_000, min_block_interval_ms=10, idle_block_interval_ms=50
    )
    cluster = TimedCluster(nodes, suite=ED25519, config=config, txs_per_block=20, txs_waiting=10**9)
    for node in cluster.nodes:  # 100-byte synthetic transactions
        assert node.payload is not None
        node.payload.name = node.payload.name.ljust(90, "x")
    cluster.start()
    cluster.run_for(int(seconds * 1000))
    cluster.check_agreement()
    blocks = [max(h, 1) for h in cluster.committed_heights()]
    core_ms = sum(ns / 1e6 / b for ns, b in zip(cluster.core_ns, blocks, strict=True)) / nodes
    verify_ms = sum(ns / 1e6 / b for ns, b in zip(cluster.verify_ns, blocks, strict=True)) / nodes
    messages = sum(m / b for m, b in zip(cluster.messages, blocks, strict=True)) / nodes
    return {
        "nodes": nodes,
        "blocks": min(blocks),
        "core_ms": core_ms,
        "verify_ms": verify_ms,
        "messages": messages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[4, 16, 50])
    parser.add_argument("--seconds", type=float, default=5.0, help="simulated time per run")
    args = parser.parse_args()
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on {platform.machine()}"
    )
    print("nodes  blocks  core ms/block  verify ms/block  total ms/block  msgs recv/block")
    for nodes in args.nodes:
        r = run(nodes, args.seconds)
        total = r["core_ms"] + r["verify_ms"]
        print(
            f"{r['nodes']:5d}  {r['blocks']:6d}  {r['core_ms']:13.3f}  {r['verify_ms']:15.3f}"
            f"  {total:14.3f}  {r['messages']:15.1f}"
        )


if __name__ == "__main__":
    main()
