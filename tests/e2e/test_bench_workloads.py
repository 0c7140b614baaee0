"""`taihang bench --workload ...` on a one-node network: every workload commits, all ok."""

from __future__ import annotations

import json

import pytest
from e2e_support import RunningNode, run_cli

from taihang.cli.bench_workloads import BENCH_STORE, BENCH_TOKEN

pytestmark = pytest.mark.e2e


def bench(node: RunningNode, workload: str, txs: int = 300) -> dict[str, object]:
    result = run_cli(
        "bench",
        "--txs",
        str(txs),
        "--accounts",
        "10",
        "--workload",
        workload,
        "--json",
        home=node.network.path,
        timeout=180,
    )
    summary: dict[str, object] = json.loads(result.stdout)
    assert summary["committed"] == summary["submitted"] == txs, summary
    assert summary["success_rate"] == 1.0, summary
    return summary


def test_contract_workloads_deploy_once_and_commit_every_call(node: RunningNode) -> None:
    bench(node, "contract-transfer")
    bench(node, "contract-transfer")  # the second run reuses the deployed, funded token
    bench(node, "storage-heavy")
    with node.client() as client:
        names = [record["name"] for record in client.query("contracts", "list", [])]
        assert names.count(BENCH_TOKEN) == 1 and names.count(BENCH_STORE) == 1
    failed = run_cli(
        "bench", "--txs", "10", "--workload", "nope", home=node.network.path, check=False
    )
    assert failed.returncode != 0 and "unknown workload" in failed.stdout + failed.stderr
