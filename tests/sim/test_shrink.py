"""Shrinking failing seeds to scenario files, and replaying them (`shrink.py`, `scenario.py`).

A mutant of the real core (`sim_mutants.IgnoreTcHqcBinding`, the vote rule without rule 3's
second clause) makes seeds fail with `--byzantine 1`; the first failing seed in the CI budget
is shrunk once per module (about 2 s: since the `twin` behaviour that seed is 17, whose
failure needs its twin instance) and the result checked: never larger, smaller
where it can be, the same violation kind, the same result twice, and the same failure when the
scenario file is replayed through the CLI, in this process and in a fresh one.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from taihang.sim.cli import register
from taihang.sim.plan import Crash, FaultPlan, InvalidPlan
from taihang.sim.runner import SimOptions, draw_plan, run_seed, run_seed_hashed
from taihang.sim.scenario import (
    InvalidScenario,
    ScenarioFile,
    decode_scenario,
    encode_scenario,
    load_scenario,
    save_scenario,
)
from taihang.sim.shrink import (
    SeedDoesNotFail,
    ShrinkResult,
    build_scenario,
    compute_size,
    shrink_seed,
)
from taihang.sim.trace import HashSink
from taihang.sim.twins import Scenario, generate_scenario, run_twins_seed

MUTANT = "sim_mutants:IgnoreTcHqcBinding"
OPTIONS = SimOptions(binding=MUTANT, byzantine=1)
SEED_BUDGET = 300  # the layer-1 budget, as in test_sim_mutants
FAULT_COUNT_KEYS = ("byzantine_nodes", "behaviours", "partitions", "crashes", "message_faults")
TESTS_SIM = Path(__file__).resolve().parent


def find_failing_seed(options: SimOptions) -> int:
    for seed in range(SEED_BUDGET):
        if run_seed(seed, options).violation is not None:
            return seed
    raise AssertionError(f"{options.binding} fails no seed in {SEED_BUDGET}")


@pytest.fixture(scope="module")
def shrunk() -> ShrinkResult:
    return shrink_seed(find_failing_seed(OPTIONS), OPTIONS)


def _cli_app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    return app


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(_cli_app(), ["sim", *args])


# --- explicit plans ---------------------------------------------------------------------------
def test_fault_plan_from_json_reads_what_to_json_wrote() -> None:
    for seed in range(20):
        for byzantine in (0, 1):
            options = SimOptions(byzantine=byzantine)
            plan = draw_plan(random.Random(seed), options)
            assert FaultPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_run_seed_with_the_drawn_plan_replays_the_seed_bit_for_bit() -> None:
    for seed, options in ((3, SimOptions()), (5, SimOptions(byzantine=1))):
        plan = FaultPlan.from_json(draw_plan(random.Random(seed), options).to_json())
        explicit = run_seed(seed, options, HashSink(), plan=plan).trace_sha256
        assert explicit is not None and explicit == run_seed_hashed(seed, options).trace_sha256


def test_run_seed_refuses_a_plan_the_engine_cannot_run() -> None:
    plan = draw_plan(random.Random(2), SimOptions(nodes=4))
    late = Crash(node=0, at_ms=plan.faulty_ms, down_ms=10, mid_step=False, wipe=False)
    with pytest.raises(InvalidPlan, match="crash"):
        run_seed(2, SimOptions(nodes=4), plan=replace(plan, crashes=(late,)))
    with pytest.raises(InvalidPlan, match="n = 4"):
        run_seed(2, SimOptions(nodes=7), plan=plan)


# --- shrinking --------------------------------------------------------------------------------
def test_shrink_seed_keeps_the_violation_kind_and_only_shrinks_the_plan(
    shrunk: ShrinkResult,
) -> None:
    before, after = compute_size(shrunk.original), compute_size(shrunk.shrunk)
    assert all(after[key] <= before[key] for key in before), (before, after)
    assert any(after[key] < before[key] for key in before), (before, after)
    assert sum(after[k] for k in FAULT_COUNT_KEYS) < sum(before[k] for k in FAULT_COUNT_KEYS)
    assert shrunk.violation["kind"] == shrunk.original_violation["kind"]
    assert not shrunk.exhausted and shrunk.runs > 1
    assert isinstance(shrunk.shrunk, FaultPlan)
    again = run_seed(shrunk.seed, shrunk.options, plan=shrunk.shrunk).violation
    assert again == shrunk.violation


def test_shrink_seed_is_deterministic(shrunk: ShrinkResult) -> None:
    again = shrink_seed(shrunk.seed, OPTIONS)
    assert (again.shrunk, again.runs, again.violation) == (
        shrunk.shrunk,
        shrunk.runs,
        shrunk.violation,
    )


def test_shrink_seed_stops_at_its_run_budget(shrunk: ShrinkResult) -> None:
    bounded = shrink_seed(shrunk.seed, OPTIONS, runs_max=3)
    assert bounded.runs == 3 and bounded.exhausted
    assert bounded.violation["kind"] == shrunk.violation["kind"]


def test_shrink_seed_refuses_a_passing_seed() -> None:
    with pytest.raises(SeedDoesNotFail, match="nothing to shrink"):
        shrink_seed(0, SimOptions(nodes=4))


# --- scenario files and the CLI ---------------------------------------------------------------
def test_cli_shrinks_to_a_scenario_that_fails_the_same_way_on_replay(
    shrunk: ShrinkResult, tmp_path: Path
) -> None:
    path = tmp_path / "scenario.json"
    args = ["--seed", str(shrunk.seed), "--byzantine", "1", "--core", MUTANT]
    result = _invoke(*args, "--shrink", str(path), "--json")
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["violation"] == shrunk.violation["kind"] and line["runs"] == shrunk.runs
    scenario = load_scenario(path)
    assert scenario.setup == shrunk.shrunk and scenario.options.binding == MUTANT
    replayed = _invoke("--scenario", str(path), "--json")
    assert replayed.exit_code == 1, replayed.output
    assert f"seed {shrunk.seed} FAILED: {shrunk.violation['kind']}" in replayed.stderr
    assert f"replay: taihang sim --scenario {path}" in replayed.stderr
    assert "note:" not in replayed.stderr
    assert json.loads(replayed.stdout.strip().splitlines()[-1])["violations"] == 1


def test_scenario_replays_in_a_fresh_process(shrunk: ShrinkResult, tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    save_scenario(path, build_scenario(shrunk))
    command = [sys.executable, "-m", "taihang.sim.cli", "--scenario", str(path), "--json"]
    python_path = os.pathsep.join(filter(None, [str(TESTS_SIM), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1, completed.stderr
    assert f"FAILED: {shrunk.violation['kind']}" in completed.stderr


def test_scenario_file_round_trips(shrunk: ShrinkResult) -> None:
    scenario = build_scenario(shrunk)
    decoded = decode_scenario(encode_scenario(scenario))
    assert decoded == ScenarioFile(
        scenario.seed,
        replace(scenario.options, without=frozenset()),
        scenario.setup,
        scenario.violation,
        scenario.shrunk_from,
    )


def _edit_version(data: dict[str, Any]) -> None:
    data["version"] = 2


def _edit_format(data: dict[str, Any]) -> None:
    del data["format"]


def _edit_missing_plan(data: dict[str, Any]) -> None:
    del data["plan"]


def _edit_late_crash(data: dict[str, Any]) -> None:
    data["plan"]["crashes"] = [[0, data["plan"]["faulty_ms"], 10, False, False]]


def _edit_behaviour(data: dict[str, Any]) -> None:
    data["plan"]["byzantine"] = [[1, ["teleport"]]]


def _edit_mutation(data: dict[str, Any]) -> None:
    data["mutation"] = "no_such_module:Binding"


def _edit_seed(data: dict[str, Any]) -> None:
    data["seed"] = "eighteen"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_edit_version, "unknown version 2; this version of taihang reads version 1"),
        (_edit_format, "not a scenario file"),
        (_edit_missing_plan, "missing keys ['plan']"),
        (_edit_late_crash, "plan: crash"),
        (_edit_behaviour, "unknown behaviours ['teleport']"),
        (_edit_mutation, "does not load"),
        (_edit_seed, "seed: expected an integer"),
    ],
)
def test_cli_refuses_a_malformed_scenario_file_with_a_clear_error(
    shrunk: ShrinkResult, tmp_path: Path, edit: Any, message: str
) -> None:
    data = build_scenario(shrunk).to_json()
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    result = _invoke("--scenario", str(path))
    assert result.exit_code == 2, result.output
    assert "error: " in result.stderr and message in result.stderr, result.stderr


def test_load_scenario_refuses_what_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(InvalidScenario, match=r"broken.json: not JSON"):
        load_scenario(path)
    with pytest.raises(InvalidScenario, match="cannot read"):
        load_scenario(tmp_path / "missing.json")


def test_cli_scenario_and_shrink_refuse_conflicting_flags(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    result = _invoke("--scenario", str(path), "--seed", "3", "--nodes", "4")
    assert result.exit_code == 2 and "not from --seed, --nodes" in result.stderr
    result = _invoke("--seeds", "3", "--shrink", str(path))
    assert result.exit_code == 2 and "--shrink needs --seed S" in result.stderr
    result = _invoke("--seed", "0", "--nodes", "4", "--shrink", str(path))
    assert result.exit_code == 2 and "nothing to shrink" in result.stderr
    assert not path.exists()


# --- Twins ------------------------------------------------------------------------------------
TWINS_MUTANT = "sim_mutants:NonConsecutiveCommitBinding"  # caught at once by the 2-chain check


def test_twins_seed_shrinks_to_fewer_rounds_and_replays_from_its_file(tmp_path: Path) -> None:
    options = SimOptions(mode="twins", nodes=4, binding=TWINS_MUTANT)
    seed = find_failing_seed(options)
    result = shrink_seed(seed, options)
    assert isinstance(result.original, Scenario) and isinstance(result.shrunk, Scenario)
    before, after = compute_size(result.original), compute_size(result.shrunk)
    assert all(after[key] <= before[key] for key in before), (before, after)
    assert after["rounds"] < before["rounds"], (before, after)
    assert result.violation["kind"] == result.original_violation["kind"]
    path = tmp_path / "twins.json"
    save_scenario(path, build_scenario(result))
    assert '"scenario": {' in path.read_text() and load_scenario(path).setup == result.shrunk
    replayed = _invoke("--scenario", str(path), "--json")
    assert replayed.exit_code == 1, replayed.output
    assert f"FAILED: {result.violation['kind']}" in replayed.stderr


def test_twins_seed_with_the_drawn_scenario_replays_bit_for_bit() -> None:
    options = SimOptions(mode="twins", nodes=4)
    scenario = Scenario.from_json(generate_scenario(random.Random(7), 4).to_json())
    explicit = run_twins_seed(7, options, HashSink(), scenario=scenario).trace_sha256
    assert explicit is not None and explicit == run_seed_hashed(7, options).trace_sha256


def test_twins_scenario_whose_groups_lose_an_instance_is_refused() -> None:
    data = generate_scenario(random.Random(7), 4).to_json()
    data["rounds"][0]["groups"] = [[0, 1, 2]]
    with pytest.raises(InvalidPlan, match="round 1: groups must split the instances"):
        Scenario.from_json(data)


def test_cli_default_run_budget_is_the_shrinkers() -> None:
    from taihang.sim.cli import SHRINK_RUNS_MAX
    from taihang.sim.shrink import RUNS_MAX

    assert SHRINK_RUNS_MAX == RUNS_MAX  # repeated in the CLI so `taihang --help` stays light
