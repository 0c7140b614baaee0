"""Twins mode (consensus spec, "Test plan" -> `twins`): a twinned validator runs two cores with
one key and identity, under per-round partitions and leaders drawn as data from the seed.

* the scenario generator: 20 partitionings at n = 4 (the spec's count), quorum groups, 7 rounds;
* 300 seeds at n = 4 with 1 twin and 60 at n = 7 with 2 twins, in two worker processes, with
  no safety or liveness violation;
* determinism: one Twins seed in two processes with different `PYTHONHASHSEED`s writes
  byte-identical traces, which record the scenario.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from taihang.sim.runner import CampaignSummary, SimOptions, build_replay_command, run_seeds
from taihang.sim.twins import (
    SCENARIO_ROUNDS,
    compute_quorum,
    generate_scenario,
    list_partitions,
)

N4_SEEDS = 300
N7_SEEDS = 60
WORKERS = 2
HASH_SEEDS = ("0", "4242")
DETERMINISM_SEED = 7


def describe_failures(summary: CampaignSummary, options: SimOptions) -> str:
    return "\n".join(
        f"seed {r.seed}: {r.violation}\n  replay: {build_replay_command(r.seed, options, r.nodes)}"
        for r in summary.failed
    )


def test_partitionings_match_the_spec_count() -> None:
    assert len(list_partitions((0, 1, 2, 3, 0))) == 20  # 80 (leader, partition) choices


def test_scenarios_are_well_formed_data() -> None:
    for seed in range(50):
        for nodes in (4, 7):
            scenario = generate_scenario(random.Random(seed), nodes)
            assert len(scenario.twinned) == (nodes - 1) // 3
            assert len(scenario.rounds) == SCENARIO_ROUNDS
            instances = scenario.instances
            for scenario_round in scenario.rounds:
                groups = scenario_round.groups
                assert 1 <= len(groups) <= 3
                assert sorted(i for g in groups for i in g) == list(range(len(instances)))
                quorum = compute_quorum(nodes)
                assert any(len({instances[i] for i in g}) >= quorum for g in groups)
            data = scenario.to_json()
            assert json.loads(json.dumps(data)) == data
            assert generate_scenario(random.Random(seed), nodes) == scenario


def test_twins_seeds_with_one_twin_at_n4() -> None:
    options = SimOptions(nodes=4, mode="twins")
    summary = run_seeds(list(range(N4_SEEDS)), options, jobs=WORKERS)
    assert summary.violations == 0, describe_failures(summary, options)
    assert summary.seeds == N4_SEEDS
    assert summary.faults["partition_cut"] > 0 and summary.faults["twin_leader_round"] > 0
    assert summary.commits > 0


def test_twins_seeds_with_two_twins_at_n7() -> None:
    options = SimOptions(nodes=7, mode="twins")
    summary = run_seeds(list(range(N7_SEEDS)), options, jobs=WORKERS)
    assert summary.violations == 0, describe_failures(summary, options)
    assert summary.faults["twin_leader_round"] > 0


def _trace_sha256(hash_seed: str, directory: Path) -> str:
    path = directory / f"twins-{DETERMINISM_SEED}-{hash_seed}.jsonl"
    command = [sys.executable, "-m", "taihang.sim.cli", "--mode", "twins", "--nodes", "7"]
    command += ["--seed", str(DETERMINISM_SEED), "--trace", str(path), "--json"]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr
    second = json.loads(path.read_text().splitlines()[1])
    assert second["scenario"]["twinned"], "the trace records the scenario"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_twins_trace_is_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    with ThreadPoolExecutor(WORKERS) as pool:
        digests = set(pool.map(lambda hash_seed: _trace_sha256(hash_seed, tmp_path), HASH_SEEDS))
    assert len(digests) == 1, "Twins traces differ between processes"
