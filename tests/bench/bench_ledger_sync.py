"""Benchmark: ledger sync speed of a late observer, in blocks/s and transactions/s.

    .venv/bin/python tests/bench/bench_ledger_sync.py [--txs 40000] [--dir /tmp/sync-bench]

Starts a 4-organisation network (real processes, TLS, default timers) with one observer in
genesis that is not started (its catch-up threshold set to 10 blocks, so it always uses
ledger sync); runs `taihang bench --txs N` against it so blocks carry transfers; then starts
the observer and times (a) the download and commit of every block
(`ledger_sync_done` in its log: fetch in 64-block ranges from the validators, verify hash
links and tx roots, stage, commit) and (b) until it has executed them all (receipts
readable). Not a pass/fail test; pytest does not collect it (no `test_` prefix).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from cluster_support import Cluster, add_observer

from taihang.cli.network import init_network


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--txs", type=int, default=40_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/sync-bench"))
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    network = init_network(args.dir, nodes=4)
    observer = add_observer(network)
    config_path = observer.home / "config.toml"
    config = tomllib.loads(config_path.read_text())
    config["consensus"]["catchup_blocks_max"] = 10  # always ledger sync, however short the run
    config_path.write_text(tomli_w.dumps(config))
    cluster = Cluster(network)
    try:
        for name in ("node1", "node2", "node3", "node4"):
            cluster.start(name)
        cluster.wait_until(lambda: (cluster.height("node1") or 0) >= 2, timeout_s=60)
        bench = subprocess.run(
            [
                sys.executable,
                "-m",
                "taihang",
                "bench",
                "--home",
                str(args.dir),
                "--txs",
                str(args.txs),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        print("bench:", bench.stdout.strip().splitlines()[-1])
        with cluster.client("node1") as client:
            status = client.status()
        height = status.height
        txs = sum(client_block_txs(cluster, h) for h in range(1, height + 1))
        started = time.monotonic()
        cluster.start(observer.name)
        cluster.wait_until(
            lambda: "ledger_sync_done" in cluster.log_tail(observer.name), timeout_s=600
        )
        synced_s = time.monotonic() - started
        done = next(
            json.loads(line)
            for line in (observer.home / "node.log").read_text().splitlines()
            if "ledger_sync_done" in line
        )

        def executed() -> bool:
            with cluster.client(observer.name) as client:
                return client.status().executed_height >= height

        cluster.wait_until(executed, timeout_s=900)
        executed_s = time.monotonic() - started
        print(
            json.dumps(
                {
                    "machine": f"{platform.processor() or platform.machine()}, {_cpus()} CPUs",
                    "blocks": done["blocks"],
                    "txs_in_blocks": txs,
                    "sync_seconds_in_node": done["seconds"],
                    "start_to_synced_s": round(synced_s, 2),
                    "start_to_executed_s": round(executed_s, 2),
                    "sync_blocks_per_s": round(done["blocks"] / done["seconds"], 1),
                    "sync_txs_per_s": round(txs / done["seconds"], 1),
                    "executed_blocks_per_s": round(height / executed_s, 1),
                    "executed_txs_per_s": round(txs / executed_s, 1),
                }
            )
        )
    finally:
        cluster.cleanup()


def client_block_txs(cluster: Cluster, height: int) -> int:
    with cluster.client("node1") as client:
        return client.get_block(height).tx_count


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
