"""Byzantine validators in the simulator (consensus spec, "Byzantine behaviours").

* 150 seeds at n = 4 with one Byzantine node and 150 at n = 7 with two, fake signatures, in two
  worker processes: no violation among the honest nodes;
* each behaviour really fires: its fault counter is non-zero over those seeds (for `twin`:
  instances added, messages they sent, rounds in which they signed conflicting messages);
* the plan: Byzantine nodes stay within f together with the wiped ones, and are drawn last, so
  the honest part of a seed's plan does not change;
* a Byzantine seed replays bit for bit, in two processes with different hash seeds.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from taihang.sim.byzantine import BEHAVIOURS, REJECTED, TWIN, TWIN_CONFLICT, TWIN_SENT
from taihang.sim.plan import generate_plan
from taihang.sim.runner import (
    CampaignSummary,
    SimOptions,
    build_replay_command,
    run_seeds,
)

SEEDS = 150  # with both campaigns: the 300 Byzantine seeds of the test plan
WORKERS = 2
CAMPAIGNS = ((4, 1, 500_000), (7, 2, 600_000))  # (n, Byzantine nodes, first seed)


def describe_failures(summary: CampaignSummary, options: SimOptions) -> str:
    return "\n".join(
        f"seed {r.seed}: {r.violation}\n  replay: {build_replay_command(r.seed, options, r.nodes)}"
        for r in summary.failed
    )


@pytest.fixture(scope="module")
def summaries() -> list[CampaignSummary]:
    results = []
    for nodes, byzantine, first in CAMPAIGNS:
        options = SimOptions(nodes=nodes, byzantine=byzantine)
        summary = run_seeds(list(range(first, first + SEEDS)), options, jobs=WORKERS)
        assert summary.violations == 0, describe_failures(summary, options)
        results.append(summary)
    return results


def test_byzantine_seeds_have_no_violation(summaries: list[CampaignSummary]) -> None:
    for summary in summaries:
        assert summary.seeds == SEEDS
        assert summary.violations == 0
        assert summary.commits > 0


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_each_behaviour_fires(summaries: list[CampaignSummary], behaviour: str) -> None:
    total = sum(summary.faults.get(behaviour, 0) for summary in summaries)
    assert total > 0, f"no {behaviour} fault injected: the Byzantine wrapper is broken"


def test_twin_instances_send_and_sign_conflicting_messages(
    summaries: list[CampaignSummary],
) -> None:
    assert sum(summary.faults.get(TWIN_SENT, 0) for summary in summaries) > 0
    assert sum(summary.faults.get(TWIN_CONFLICT, 0) for summary in summaries) > 0


def test_honest_receivers_drop_invalid_messages(summaries: list[CampaignSummary]) -> None:
    assert sum(summary.faults.get(REJECTED, 0) for summary in summaries) > 0


def test_byzantine_plan_stays_within_f_and_leaves_the_rest_unchanged() -> None:
    for seed in range(200):
        honest = generate_plan(random.Random(seed), nodes=7, byzantine=0, faulty_ms=8_000)
        plan = generate_plan(random.Random(seed), nodes=7, byzantine=2, faulty_ms=8_000)
        assert len(plan.byzantine) == 2
        assert not plan.byzantine_nodes & set(plan.wiped_nodes)
        assert len(plan.byzantine_nodes) + len(plan.wiped_nodes) <= 2
        for _, kinds in plan.byzantine:
            wrapper = [k for k in kinds if k != TWIN]  # one or two, and maybe a twin instance
            assert 1 <= len(wrapper) <= 2 and set(kinds) <= set(BEHAVIOURS)
        # Drawn before the wipe budget (the only draw Byzantine nodes change): the same.
        assert plan.partitions == honest.partitions
        assert [c for c in plan.crashes if not c.wipe] == [c for c in honest.crashes if not c.wipe]
        assert "byzantine" not in honest.to_json()


def test_without_masks_a_behaviour_and_keeps_the_byzantine_nodes() -> None:
    for seed in range(50):
        full = generate_plan(random.Random(seed), nodes=7, byzantine=2, faulty_ms=8_000)
        masked = generate_plan(
            random.Random(seed),
            nodes=7,
            byzantine=2,
            faulty_ms=8_000,
            without=frozenset({"equivocate", "withhold"}),
        )
        assert masked.byzantine_nodes == full.byzantine_nodes
        for (_, kinds), (_, all_kinds) in zip(masked.byzantine, full.byzantine, strict=True):
            assert kinds == tuple(k for k in all_kinds if k not in ("equivocate", "withhold"))


def test_too_many_byzantine_nodes_are_refused() -> None:
    with pytest.raises(ValueError, match="exceed f"):
        generate_plan(random.Random(0), nodes=4, byzantine=2, faulty_ms=8_000)


def _byzantine_trace(seed: int, hash_seed: str, directory: Path) -> tuple[bytes, str]:
    path = directory / f"trace-{seed}-{hash_seed}.jsonl"
    command = [sys.executable, "-m", "taihang.sim.cli", "--mode", "random", "--seed", str(seed)]
    command += ["--nodes", "7", "--byzantine", "2", "--trace", str(path), "--json"]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr
    return path.read_bytes(), completed.stdout


def test_byzantine_seed_replays_bit_for_bit_across_processes(tmp_path: Path) -> None:
    with ThreadPoolExecutor(WORKERS) as pool:
        runs = list(pool.map(lambda h: _byzantine_trace(600_001, h, tmp_path), ("0", "4242")))
    (first, stdout), (second, _) = runs
    assert first == second, "a Byzantine seed's trace differs between processes"
    plan = json.loads(first.splitlines()[1])["plan"]
    assert len(plan["byzantine"]) == 2
    assert any(json.loads(stdout.splitlines()[-1])["faults"].get(k) for k in BEHAVIOURS)


def test_cli_refuses_more_byzantine_nodes_than_f() -> None:
    command = [sys.executable, "-m", "taihang.sim.cli", "--mode", "random", "--seed", "1"]
    command += ["--nodes", "4", "--byzantine", "2"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert "exceeds f = 1" in completed.stderr
