"""Scenario files: one failing run, written down so that it replays without its campaign.

Theory of operation: a scenario file holds everything `run_seed` needs to repeat a run with an
explicit plan, and what that run found:

* `seed` and the flags the seed's plan is drawn with (`nodes`, pinned to the n the seed drew;
  `byzantine`, the K of the draw; `timing`, whose `faulty_ms` is the draw's), because the
  runner draws the seed's plan before it sets it aside, and the run's later draws must start
  from the same RNG state;
* in random mode `plan`, the plan the run injects instead (`FaultPlan.to_json`; its own
  `faulty_ms` and Byzantine list may be smaller than the draw's); in twins mode `scenario`,
  the Twins scenario it plays instead (`Scenario.to_json`);
* `mutation`, the consensus binding when it is not the production core (a test mutant such as
  `sim_mutants:SkipPersistBinding`, importable with `tests/sim` on `PYTHONPATH`), else null;
* `violation`, what the run found when the file was written, and `shrunk_from`, how the
  shrinker got there (the original plan, both sizes, the runs it made), for people only.

The file is JSON with a `format` name and a `version`; a reader refuses another version, an
unknown or missing key, and any plan `validate_plan` (or scenario `validate_scenario`)
refuses, with a message that names the file and the key (`InvalidScenario`). Replaying
needs the same code: a change to the core, the engine or the RNG draws changes what a seed's
run does, as it does for a replayed seed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from taihang.errors import ConfigurationError
from taihang.sim.cluster import DEFAULT_BINDING, SIM_SUITES, SimTiming
from taihang.sim.plan import FaultPlan, InvalidPlan
from taihang.sim.runner import SeedResult, SimOptions, run_seed
from taihang.sim.trace import TraceSink
from taihang.sim.twins import Scenario, run_twins_seed

SCENARIO_FORMAT: Final = "taihang-sim-scenario"
SCENARIO_VERSION: Final = 1
COMMON_KEYS: Final = frozenset(
    {
        "format",
        "version",
        "mode",
        "seed",
        "nodes",
        "crypto",
        "byzantine",
        "mutation",
        "timing",
        "early_stop",
        "violation",
    }
)
SETUP_KEY: Final = {"random": "plan", "twins": "scenario"}  # mode -> the key of its setup
OPTIONAL_KEYS: Final = frozenset({"shrunk_from"})
TIMING_KEYS: Final = frozenset(field.name for field in dataclasses.fields(SimTiming))


class InvalidScenario(ConfigurationError):
    """A scenario file that cannot be replayed as written."""

    code = "invalid_scenario"


@dataclass(frozen=True, slots=True)
class ScenarioFile:
    seed: int
    options: SimOptions  # the flags the seed's setup is drawn with, n pinned
    setup: FaultPlan | Scenario  # what the run injects instead of the drawn plan (scenario)
    violation: dict[str, Any] | None  # what the run found when the file was written
    shrunk_from: dict[str, Any] | None = None  # provenance, for people

    def to_json(self) -> dict[str, Any]:
        options = self.options
        data: dict[str, Any] = {
            "format": SCENARIO_FORMAT,
            "version": SCENARIO_VERSION,
            "mode": options.mode,
            "seed": self.seed,
            "nodes": options.nodes,
            "crypto": options.crypto,
            "byzantine": options.byzantine,
            "mutation": None if options.binding == DEFAULT_BINDING else options.binding,
            "timing": dataclasses.asdict(options.timing),
            "early_stop": options.early_stop,
            SETUP_KEY[options.mode]: self.setup.to_json(),
            "violation": self.violation,
        }
        if self.shrunk_from is not None:
            data["shrunk_from"] = self.shrunk_from
        return data


def run_scenario(scenario: ScenarioFile, sink: TraceSink | None = None) -> SeedResult:
    """Replay the scenario's run; `sink` receives its trace as for a seed."""
    setup = scenario.setup
    if isinstance(setup, Scenario):
        return run_twins_seed(scenario.seed, scenario.options, sink, scenario=setup)
    return run_seed(scenario.seed, scenario.options, sink, plan=setup)


def encode_scenario(scenario: ScenarioFile) -> str:
    """One top-level key a line, each value compact: short enough to read, easy to diff."""
    lines = [
        f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)}"
        for key, value in scenario.to_json().items()
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def save_scenario(path: Path, scenario: ScenarioFile) -> None:
    path.write_text(encode_scenario(scenario), encoding="utf-8")


def load_scenario(path: Path) -> ScenarioFile:
    """Read and check a scenario file; `InvalidScenario` names the file and what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidScenario(f"cannot read scenario file {path}: {exc}") from exc
    try:
        return decode_scenario(text)
    except InvalidScenario as exc:
        raise InvalidScenario(f"scenario file {path}: {exc.message}") from exc


def decode_scenario(text: str) -> ScenarioFile:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidScenario(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != SCENARIO_FORMAT:
        raise InvalidScenario(f'not a scenario file (no "format": "{SCENARIO_FORMAT}")')
    if data.get("version") != SCENARIO_VERSION:
        raise InvalidScenario(
            f"unknown version {data.get('version')!r}; this version of taihang reads "
            f"version {SCENARIO_VERSION}"
        )
    if data.get("mode") not in SETUP_KEY:
        raise InvalidScenario(f"mode {data.get('mode')!r}: choose from {', '.join(SETUP_KEY)}")
    setup_key = SETUP_KEY[data["mode"]]
    expected = COMMON_KEYS | {setup_key}
    unknown = sorted(set(data) - expected - OPTIONAL_KEYS)
    missing = sorted(expected - set(data))
    if unknown or missing:
        raise InvalidScenario(f"unknown keys {unknown}, missing keys {missing}")
    options = _decode_options(data)
    setup = _decode_setup(setup_key, data[setup_key])
    if setup.nodes != options.nodes:
        raise InvalidScenario(f"{setup_key}: n = {setup.nodes}, but the file pins {options.nodes}")
    violation = data["violation"]
    if violation is not None and not (isinstance(violation, dict) and "kind" in violation):
        raise InvalidScenario(f"violation: expected null or an object with a kind: {violation!r}")
    shrunk_from = data.get("shrunk_from")
    return ScenarioFile(data["seed"], options, setup, violation, shrunk_from)


def _decode_setup(key: str, value: Any) -> FaultPlan | Scenario:
    try:
        return Scenario.from_json(value) if key == "scenario" else FaultPlan.from_json(value)
    except InvalidPlan as exc:
        raise InvalidScenario(f"{key}: {exc.message}") from exc


def _decode_options(data: dict[str, Any]) -> SimOptions:
    for key in ("seed", "nodes", "byzantine"):
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidScenario(f"{key}: expected an integer >= 0, got {value!r}")
    if data["nodes"] < 4 or data["byzantine"] > (data["nodes"] - 1) // 3:
        raise InvalidScenario(f"nodes {data['nodes']}, byzantine {data['byzantine']}: need K <= f")
    if data["crypto"] not in SIM_SUITES:
        raise InvalidScenario(f"crypto {data['crypto']!r}: choose from {', '.join(SIM_SUITES)}")
    mutation = data["mutation"]
    if mutation is not None and (not isinstance(mutation, str) or ":" not in mutation):
        raise InvalidScenario(f"mutation: expected null or 'module:attribute', got {mutation!r}")
    if not isinstance(data["early_stop"], bool):
        raise InvalidScenario(f"early_stop: expected true or false, got {data['early_stop']!r}")
    return SimOptions(
        mode=data["mode"],
        nodes=data["nodes"],
        crypto=data["crypto"],
        byzantine=data["byzantine"],
        binding=mutation or DEFAULT_BINDING,
        timing=_decode_timing(data["timing"]),
        early_stop=data["early_stop"],
    )


def _decode_timing(timing: Any) -> SimTiming:
    if not isinstance(timing, dict):
        raise InvalidScenario(f"timing: expected an object, got {timing!r}")
    unknown = sorted(set(timing) - TIMING_KEYS)
    missing = sorted(TIMING_KEYS - set(timing))
    if unknown or missing:
        raise InvalidScenario(f"timing: unknown keys {unknown}, missing keys {missing}")
    for key, value in timing.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidScenario(f"timing.{key}: expected an integer >= 1, got {value!r}")
    return SimTiming(**timing)
