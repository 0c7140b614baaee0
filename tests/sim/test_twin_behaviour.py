"""The random mode's `twin` behaviour: a Byzantine validator running as two instances.

* drawn with the plan, from a side RNG, so the run's own RNG (and every seed that draws no
  twin) is as it was; `--without twin` masks it;
* a twin seed runs both instances, which sign conflicting messages, with no honest violation;
* the second instance stands on the other side of every partition from the first;
* a twin plan round-trips through a scenario file and replays; the shrinker removes a twin
  that a failure does not need and keeps one it does;
* a twin seed's trace is byte-identical across processes and hash seeds.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from io import BytesIO
from pathlib import Path

import pytest

from taihang.errors import ConfigurationError
from taihang.sim import plan as plan_module
from taihang.sim.byzantine import TWIN, TWIN_CONFLICT, TWIN_SENT
from taihang.sim.network import compute_instance_cut_links
from taihang.sim.plan import FaultPlan, Partition, generate_plan
from taihang.sim.runner import SimOptions, draw_plan, run_seed, run_seed_hashed
from taihang.sim.scenario import ScenarioFile, decode_scenario, encode_scenario, run_scenario
from taihang.sim.shrink import PLAN_REDUCTIONS, is_smaller, shrink_seed
from taihang.sim.trace import FileSink, HashSink

TWIN_SEED = 3  # --byzantine 1 draws n = 4 and node 1 with invalid_signatures, twin, withhold
OPTIONS = SimOptions(byzantine=1)
RULE_3_MUTANT = "sim_mutants:IgnoreTcHqcBinding"
RULE_3_TWIN_SEED = 17  # the mutant's first failing seed: it needs the twin (and stale_proposal)


def test_twin_is_drawn_without_advancing_the_run_rng(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = 0
    for seed in range(100):
        rng = random.Random(seed)
        plan = generate_plan(rng, nodes=7, byzantine=2, faulty_ms=8_000)
        drawn += len(plan.twinned_nodes)
        with monkeypatch.context() as patched:
            patched.setattr(plan_module, "draw_twins", lambda _rng, chosen: chosen)
            without = random.Random(seed)
            bare = generate_plan(without, nodes=7, byzantine=2, faulty_ms=8_000)
        assert rng.getstate() == without.getstate(), "the twin draw advanced the run's RNG"
        kinds = [tuple(k for k in kinds if k != TWIN) for _, kinds in plan.byzantine]
        assert kinds == [kinds for _, kinds in bare.byzantine]
    assert 10 <= drawn <= 70, f"{drawn} twins among 200 Byzantine nodes: expected about 40"


def test_without_twin_masks_it_and_keeps_the_node_byzantine() -> None:
    options = replace(OPTIONS, without=frozenset({TWIN}))
    full = draw_plan(random.Random(TWIN_SEED), OPTIONS)
    masked = draw_plan(random.Random(TWIN_SEED), options)
    assert full.twinned_nodes == (1,) and masked.twinned_nodes == ()
    assert masked.byzantine == ((1, ("invalid_signatures", "withhold")),)
    result = run_seed(TWIN_SEED, options)
    assert result.violation is None
    assert TWIN not in result.faults and result.faults["withhold"] > 0


def test_twin_seed_runs_two_instances_that_sign_conflicting_messages() -> None:
    buffer = BytesIO()
    result = run_seed(TWIN_SEED, OPTIONS, FileSink(buffer))
    assert result.violation is None, result.violation
    assert result.faults[TWIN] == 1
    assert result.faults[TWIN_SENT] > 0
    assert result.faults[TWIN_CONFLICT] > 0, "the two instances never signed different things"
    records = [json.loads(line) for line in buffer.getvalue().splitlines()]
    stepped = {record["n"] for record in records if "ev" in record}
    assert {1, 4} <= stepped, "both instances of node 1 (nodes 1 and 4) must run"
    assert len(records[-1]["end"]["heights"]) == 5


def test_second_instance_stands_across_every_partition() -> None:
    partition = Partition(0, 100, side_a=(0, 1), side_b=(2, 3), one_way=False)
    cut = compute_instance_cut_links(partition, (0, 1, 2, 3, 1), nodes=4)
    stride = 5
    assert 4 * stride + 0 in cut and 4 * stride + 1 in cut  # the twin of 1 sits with 2 and 3
    assert 4 * stride + 2 not in cut and 2 * stride + 4 not in cut
    assert compute_instance_cut_links(partition, (0, 1, 2, 3), 4) == partition.compute_cut_links(4)


def test_twin_plan_round_trips_through_a_scenario_file() -> None:
    options = replace(OPTIONS, nodes=4)
    plan = draw_plan(random.Random(TWIN_SEED), options)
    scenario = ScenarioFile(seed=TWIN_SEED, options=options, setup=plan, violation=None)
    decoded = decode_scenario(encode_scenario(scenario))
    assert decoded == scenario
    assert FaultPlan.from_json(plan.to_json()) == plan
    sink = HashSink()
    run_scenario(decoded, sink)
    assert sink.hexdigest() == run_seed_hashed(TWIN_SEED, options).trace_sha256


def test_shrinker_removes_a_twin_the_failure_does_not_need() -> None:
    plan = draw_plan(random.Random(TWIN_SEED), OPTIONS)
    count_slots, remove = PLAN_REDUCTIONS[1]  # one behaviour at a time
    candidates = [remove(plan, slot) for slot in range(count_slots(plan))]
    without_twin = [c for c in candidates if c is not None and not c.twinned_nodes]
    assert len(without_twin) == 1 and is_smaller(without_twin[0], plan)
    options = SimOptions(binding="sim_mutants:NonConsecutiveCommitBinding", byzantine=1)
    shrunk = shrink_seed(TWIN_SEED, options)  # fails with honest nodes alone
    assert isinstance(shrunk.original, FaultPlan) and isinstance(shrunk.shrunk, FaultPlan)
    assert shrunk.original.twinned_nodes == (1,) and shrunk.shrunk.twinned_nodes == ()


def test_a_failure_that_needs_the_twin_keeps_it() -> None:
    options = SimOptions(binding=RULE_3_MUTANT, byzantine=1)
    assert run_seed(RULE_3_TWIN_SEED, options).violation is not None
    masked = replace(options, without=frozenset({TWIN}))
    assert run_seed(RULE_3_TWIN_SEED, masked).violation is None


def test_twin_needs_a_jolteon_binding() -> None:
    options = replace(OPTIONS, binding="sim_toy_core:ToyBinding")
    with pytest.raises(ConfigurationError, match="--without twin"):
        run_seed(TWIN_SEED, options)
    masked = run_seed(TWIN_SEED, replace(options, without=frozenset({TWIN})))
    assert TWIN not in masked.faults


def _twin_trace(hash_seed: str, directory: Path) -> tuple[bytes, str]:
    path = directory / f"trace-{hash_seed}.jsonl"
    command = [sys.executable, "-m", "taihang.sim.cli", "--mode", "random"]
    command += ["--seed", str(TWIN_SEED), "--nodes", "4", "--byzantine", "1"]
    command += ["--trace", str(path), "--json"]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr
    return path.read_bytes(), completed.stdout


def test_twin_seed_replays_bit_for_bit_across_processes(tmp_path: Path) -> None:
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda h: _twin_trace(h, tmp_path), ("0", "4242")))
    (first, stdout), (second, _) = runs
    assert first == second, "a twin seed's trace differs between processes"
    assert json.loads(stdout.splitlines()[-1])["faults"][TWIN_SENT] > 0
