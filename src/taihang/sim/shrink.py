"""Shrinking a failing seed: a smaller fault plan (or Twins scenario) that still fails the same way.

Theory of operation
-------------------
* **What varies.** A run is a pure function of `(seed, options, setup)`, the setup being the
  fault plan (random mode) or the Twins scenario. The shrinker keeps the seed and the options
  (n pinned to the seed's) and varies only the setup, through `run_seed(..., plan=...)` or
  `run_twins_seed(..., scenario=...)`: the seed's own setup is still drawn first and set
  aside, so each candidate's run starts its other draws (latencies, message faults, execution
  delays) from the RNG state of the seed's run. A candidate *still fails* when its run ends
  with a violation of the same kind; its detail, node and time may differ.
* **Plan reductions** (`PLAN_REDUCTIONS`), coarse to fine: make a Byzantine node honest,
  remove one behaviour, one partition, one crash; set drop, duplicate or reorder to 0; turn a
  wipe into a crash that keeps the disk, a mid-step crash into one at an event boundary; lower
  a message fault's probability to the next lower choice (the same draws then fault a subset
  of the messages, until the runs part ways); halve the faulty phase (not below the last
  fault), a down time, a partition's length; take the next lower latency bound.
* **Twins reductions** (`TWINS_REDUCTIONS`): remove a scenario round (from the last one back;
  later rounds move one consensus round down), merge a round's two smallest groups (one group
  left: no partition), give a twin-led round to an honest leader, lower the latency bound.
* **Slots.** Each reduction names *slots* of the current setup (its crashes, its rounds...) and
  builds one candidate per slot, or none where the slot is already minimal.
* **Greedy, to a fixed point.** A round of the loop first cuts a plan's faulty phase just after
  the violation (a run is the same up to the heal, so a violation found before it stays), then
  goes through the reductions in order, slot by slot. An accepted candidate becomes the setup
  and the same slot is tried again (the next item after a removal, a further halving after a
  halving); a refused one moves on to the next slot. Rounds repeat until one accepts nothing.
* **Limits and invariants.** Every candidate is asserted smaller than the setup it replaces in
  at least one dimension of `compute_size` and larger in none, so the result is never larger
  than the original and the loop ends; `runs_max` runs bound it anyway (the result is then
  the smallest setup found so far). Same seed, options, code and budget: same candidates in
  the same order, same result.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Generic, TypeVar

from taihang.errors import ConfigurationError
from taihang.sim.plan import (
    DOWN_MS_MIN,
    DROP_CHOICES,
    DUPLICATE_CHOICES,
    LATENCY_MS_MAX_CHOICES,
    PARTITION_MS_MIN,
    REORDER_CHOICES,
    Crash,
    FaultPlan,
    Partition,
)
from taihang.sim.runner import SimOptions, draw_plan, run_seed
from taihang.sim.scenario import ScenarioFile
from taihang.sim.twins import Scenario, ScenarioRound, generate_scenario, run_twins_seed

RUNS_MAX: Final = 200  # runs one shrink may make, the seed's own run included
MESSAGE_FAULTS: Final = ("drop", "duplicate", "reorder")
# The choices each message fault's probability is drawn from, lowest first.
MESSAGE_FAULT_CHOICES: Final = {
    "drop": DROP_CHOICES,
    "duplicate": DUPLICATE_CHOICES,
    "reorder": REORDER_CHOICES,
}
BASIS_POINTS: Final = 10_000  # probabilities count in 1/10,000 in `compute_plan_size`


class SeedDoesNotFail(ConfigurationError):
    """The seed runs clean with these flags: there is nothing to shrink."""

    code = "seed_does_not_fail"


Setup = FaultPlan | Scenario  # what a run injects: a random-mode plan or a Twins scenario
SetupT = TypeVar("SetupT", FaultPlan, Scenario)
Reduction = tuple[Callable[[SetupT], int], Callable[[SetupT, int], SetupT | None]]


@dataclass(frozen=True, slots=True)
class ShrinkResult:
    seed: int
    options: SimOptions  # n pinned to the seed's: pinning the drawn n redraws the same setup
    original: Setup  # the seed's own plan (random mode) or scenario (twins)
    original_violation: dict[str, Any]
    shrunk: Setup  # the smallest found that still fails with the same violation kind
    violation: dict[str, Any]  # the violation the shrunk setup's run found
    runs: int  # seed runs made, the original one included
    exhausted: bool  # the run budget ran out before a fixed point
    wall_s: float


def compute_size(setup: Setup) -> dict[str, int]:
    """How big a plan or a Twins scenario is, per dimension: the shrinker lowers these."""
    if isinstance(setup, Scenario):
        return compute_scenario_size(setup)
    return compute_plan_size(setup)


def compute_plan_size(plan: FaultPlan) -> dict[str, int]:
    return {
        "byzantine_nodes": len(plan.byzantine),
        "behaviours": sum(len(kinds) for _, kinds in plan.byzantine),
        "partitions": len(plan.partitions),
        "partition_ms": sum(p.end_ms - p.start_ms for p in plan.partitions),
        "crashes": len(plan.crashes),
        "wipes": sum(c.wipe for c in plan.crashes),
        "mid_step_crashes": sum(c.mid_step for c in plan.crashes),
        "down_ms": sum(c.down_ms for c in plan.crashes),
        "message_faults": sum(getattr(plan, kind) > 0 for kind in MESSAGE_FAULTS),
        "drop_bp": round(plan.drop * BASIS_POINTS),
        "duplicate_bp": round(plan.duplicate * BASIS_POINTS),
        "reorder_bp": round(plan.reorder * BASIS_POINTS),
        "faulty_ms": plan.faulty_ms,
        "latency_ms_max": plan.latency_ms_max,
    }


def compute_scenario_size(scenario: Scenario) -> dict[str, int]:
    return {
        "rounds": len(scenario.rounds),
        "extra_groups": sum(len(r.groups) - 1 for r in scenario.rounds),  # 0: no partition
        "twin_leader_rounds": sum(r.leader in scenario.twinned for r in scenario.rounds),
        "latency_ms_max": scenario.latency_ms_max,
    }


def is_smaller(setup: Setup, than: Setup) -> bool:
    """No dimension larger and at least one smaller."""
    size, other = compute_size(setup), compute_size(than)
    return all(size[k] <= other[k] for k in other) and size != other


def shrink_seed(seed: int, options: SimOptions, *, runs_max: int = RUNS_MAX) -> ShrinkResult:
    """Shrink failing `seed` (random or twins mode); raises `SeedDoesNotFail` if it passes."""
    if runs_max < 1:
        raise ConfigurationError("runs_max must be at least 1")
    started = time.perf_counter()
    first = run_seed(seed, options)
    if first.violation is None:
        raise SeedDoesNotFail(f"seed {seed} runs without a violation: nothing to shrink")
    options = replace(options, nodes=first.nodes)
    original: Setup
    shrinker: _Shrinker[FaultPlan] | _Shrinker[Scenario]
    if options.mode == "twins":
        original = generate_scenario(random.Random(seed), first.nodes)
        shrinker = _Shrinker(
            lambda scenario: run_twins_seed(seed, options, scenario=scenario).violation,
            TWINS_REDUCTIONS,
            original,
            first.violation,
            runs_max,
        )
    else:
        original = draw_plan(random.Random(seed), options)
        shrinker = _Shrinker(
            lambda plan: run_seed(seed, options, plan=plan).violation,
            PLAN_REDUCTIONS,
            original,
            first.violation,
            runs_max,
            cut=build_cut_after_violation,
        )
    shrinker.run()
    return ShrinkResult(
        seed=seed,
        options=options,
        original=original,
        original_violation=first.violation,
        shrunk=shrinker.setup,
        violation=shrinker.violation,
        runs=shrinker.runs,
        exhausted=shrinker.runs >= runs_max,
        wall_s=time.perf_counter() - started,
    )


class _Shrinker(Generic[SetupT]):
    """The greedy loop; owns the current setup and its violation."""

    def __init__(
        self,
        run_setup: Callable[[SetupT], dict[str, Any] | None],
        reductions: Sequence[Reduction[SetupT]],
        setup: SetupT,
        violation: dict[str, Any],
        runs_max: int,
        cut: Callable[[SetupT, dict[str, Any]], SetupT | None] | None = None,
    ) -> None:
        self.run_setup: Callable[[SetupT], dict[str, Any] | None] = run_setup
        self.reductions: Sequence[Reduction[SetupT]] = reductions
        self.cut: Callable[[SetupT, dict[str, Any]], SetupT | None] | None = cut
        self.setup: SetupT = setup
        self.violation = violation
        self.kind: str = violation["kind"]
        self.runs = 1  # the seed's own run found the violation
        self.runs_max = runs_max

    def run(self) -> None:
        while self.runs < self.runs_max:
            before = self.setup
            if self.cut is not None:
                candidate = self.cut(self.setup, self.violation)
                if candidate is not None:
                    self._try(candidate)
            for count_slots, build in self.reductions:
                self._reduce(count_slots, build)
            if self.setup == before:
                return  # a fixed point: no reduction is accepted any more

    def _reduce(
        self, count_slots: Callable[[SetupT], int], build: Callable[[SetupT, int], SetupT | None]
    ) -> None:
        slot = 0
        while slot < count_slots(self.setup) and self.runs < self.runs_max:
            candidate = build(self.setup, slot)
            if candidate is None or not self._try(candidate):
                slot += 1  # accepted: the same slot again (the next item, or a further cut)

    def _try(self, candidate: SetupT) -> bool:
        """Run `candidate`; keep it if it fails with the same violation kind."""
        assert is_smaller(candidate, self.setup), "a reduction must shrink the setup"
        if self.runs >= self.runs_max:
            return False
        self.runs += 1
        violation = self.run_setup(candidate)
        if violation is None or violation["kind"] != self.kind:
            return False
        self.setup, self.violation = candidate, violation
        return True


def build_cut_after_violation(plan: FaultPlan, violation: dict[str, Any]) -> FaultPlan | None:
    """The faulty phase cut just after a violation found before the heal: the run is the
    same up to the heal, so the violation stays."""
    elapsed_ms = violation.get("elapsed_ms")
    if isinstance(elapsed_ms, int) and elapsed_ms + 1 < plan.faulty_ms:
        return build_truncated(plan, elapsed_ms + 1)
    return None


def build_truncated(plan: FaultPlan, faulty_ms: int) -> FaultPlan:
    """The plan with its faulty phase cut to `faulty_ms`: later faults go, partitions end."""
    partitions = tuple(
        replace(p, end_ms=min(p.end_ms, faulty_ms))
        for p in plan.partitions
        if p.start_ms < faulty_ms
    )
    crashes = tuple(c for c in plan.crashes if c.at_ms < faulty_ms)
    return replace(plan, faulty_ms=faulty_ms, partitions=partitions, crashes=crashes)


# --- plan reductions: (slots of the plan, candidate for one slot or None) -------------------


def _count_byzantine(plan: FaultPlan) -> int:
    return len(plan.byzantine)


def _count_behaviours(plan: FaultPlan) -> int:
    return sum(len(kinds) for _, kinds in plan.byzantine)


def _count_partitions(plan: FaultPlan) -> int:
    return len(plan.partitions)


def _count_crashes(plan: FaultPlan) -> int:
    return len(plan.crashes)


def _count_message_faults(plan: FaultPlan) -> int:
    return len(MESSAGE_FAULTS)


def _count_one(plan: FaultPlan) -> int:
    return 1


def _remove_byzantine_node(plan: FaultPlan, slot: int) -> FaultPlan:
    """The node turns honest, so it is judged from now on."""
    return replace(plan, byzantine=plan.byzantine[:slot] + plan.byzantine[slot + 1 :])


def _remove_behaviour(plan: FaultPlan, slot: int) -> FaultPlan:
    """A node left without behaviours stays Byzantine (unjudged) but sends what its core sends."""
    entries = [(node, kind) for node, kinds in plan.byzantine for kind in kinds]
    node, kind = entries[slot]
    byzantine = tuple(
        (n, tuple(k for k in kinds if n != node or k != kind)) for n, kinds in plan.byzantine
    )
    return replace(plan, byzantine=byzantine)


def _remove_partition(plan: FaultPlan, slot: int) -> FaultPlan:
    return replace(plan, partitions=plan.partitions[:slot] + plan.partitions[slot + 1 :])


def _remove_crash(plan: FaultPlan, slot: int) -> FaultPlan:
    return replace(plan, crashes=plan.crashes[:slot] + plan.crashes[slot + 1 :])


def _clear_message_fault(plan: FaultPlan, slot: int) -> FaultPlan | None:
    kind = MESSAGE_FAULTS[slot]
    if getattr(plan, kind) == 0:
        return None
    return _set_probability(plan, kind, 0.0)


def _lower_message_fault(plan: FaultPlan, slot: int) -> FaultPlan | None:
    """The next lower non-zero probability: the run draws as before, and drops (duplicates,
    delays) a subset of the messages it did until the runs part ways."""
    kind = MESSAGE_FAULTS[slot]
    lower = [p for p in MESSAGE_FAULT_CHOICES[kind] if 0 < p < getattr(plan, kind)]
    if not lower:
        return None
    return _set_probability(plan, kind, max(lower))


def _set_probability(plan: FaultPlan, kind: str, probability: float) -> FaultPlan:
    if kind == "drop":
        return replace(plan, drop=probability)
    if kind == "duplicate":
        return replace(plan, duplicate=probability)
    assert kind == "reorder", kind
    return replace(plan, reorder=probability)


def _replace_crash(plan: FaultPlan, slot: int, crash: Crash) -> FaultPlan:
    return replace(plan, crashes=(*plan.crashes[:slot], crash, *plan.crashes[slot + 1 :]))


def _keep_disk(plan: FaultPlan, slot: int) -> FaultPlan | None:
    crash = plan.crashes[slot]
    return _replace_crash(plan, slot, replace(crash, wipe=False)) if crash.wipe else None


def _strike_at_boundary(plan: FaultPlan, slot: int) -> FaultPlan | None:
    crash = plan.crashes[slot]
    return _replace_crash(plan, slot, replace(crash, mid_step=False)) if crash.mid_step else None


def _halve_down_time(plan: FaultPlan, slot: int) -> FaultPlan | None:
    crash = plan.crashes[slot]
    if crash.down_ms <= DOWN_MS_MIN:
        return None
    return _replace_crash(plan, slot, replace(crash, down_ms=max(DOWN_MS_MIN, crash.down_ms // 2)))


def _halve_partition(plan: FaultPlan, slot: int) -> FaultPlan | None:
    partition: Partition = plan.partitions[slot]
    length_ms = partition.end_ms - partition.start_ms
    if length_ms <= PARTITION_MS_MIN:
        return None
    end_ms = partition.start_ms + max(PARTITION_MS_MIN, length_ms // 2)
    partitions = list(plan.partitions)
    partitions[slot] = replace(partition, end_ms=end_ms)
    return replace(plan, partitions=tuple(partitions))


def _halve_faulty_phase(plan: FaultPlan, slot: int) -> FaultPlan | None:
    """Not below the last fault: removing faults is the other reductions' job."""
    last_ms = max(
        [1]
        + [p.end_ms for p in plan.partitions]
        + [c.at_ms + 1 for c in plan.crashes]  # a crash strikes inside the faulty phase
    )
    faulty_ms = max(last_ms, plan.faulty_ms // 2)
    return replace(plan, faulty_ms=faulty_ms) if faulty_ms < plan.faulty_ms else None


def _lower_latency(plan: FaultPlan, slot: int) -> FaultPlan | None:
    lower = [bound for bound in LATENCY_MS_MAX_CHOICES if bound < plan.latency_ms_max]
    return replace(plan, latency_ms_max=max(lower)) if lower else None


PLAN_REDUCTIONS: Final[tuple[Reduction[FaultPlan], ...]] = (
    (_count_byzantine, _remove_byzantine_node),
    (_count_behaviours, _remove_behaviour),
    (_count_partitions, _remove_partition),
    (_count_crashes, _remove_crash),
    (_count_message_faults, _clear_message_fault),
    (_count_crashes, _keep_disk),
    (_count_crashes, _strike_at_boundary),
    (_count_message_faults, _lower_message_fault),
    (_count_one, _halve_faulty_phase),
    (_count_crashes, _halve_down_time),
    (_count_partitions, _halve_partition),
    (_count_one, _lower_latency),
)


# --- Twins scenario reductions ---------------------------------------------------------------
def _count_rounds(scenario: Scenario) -> int:
    return len(scenario.rounds)


def _count_scenario_one(scenario: Scenario) -> int:
    return 1


def _remove_round(scenario: Scenario, slot: int) -> Scenario | None:
    """From the last round back; later rounds then move one consensus round down."""
    if len(scenario.rounds) <= 1:
        return None
    index = len(scenario.rounds) - 1 - slot
    return replace(scenario, rounds=scenario.rounds[:index] + scenario.rounds[index + 1 :])


def _replace_round(scenario: Scenario, slot: int, round_: ScenarioRound) -> Scenario:
    return replace(scenario, rounds=(*scenario.rounds[:slot], round_, *scenario.rounds[slot + 1 :]))


def _merge_groups(scenario: Scenario, slot: int) -> Scenario | None:
    """The two smallest groups of a round become one; one group left: no partition."""
    round_ = scenario.rounds[slot]
    if len(round_.groups) < 2:
        return None
    first, second, *rest = sorted(round_.groups, key=lambda group: (len(group), group))
    groups = tuple(sorted([tuple(sorted(first + second)), *rest]))
    return _replace_round(scenario, slot, replace(round_, groups=groups))


def _follow_honest_leader(scenario: Scenario, slot: int) -> Scenario | None:
    """A round led by a twinned validator goes to the first validator that is not twinned."""
    round_ = scenario.rounds[slot]
    if round_.leader not in scenario.twinned:
        return None
    leader = min(v for v in range(scenario.nodes) if v not in scenario.twinned)
    return _replace_round(scenario, slot, replace(round_, leader=leader))


def _lower_scenario_latency(scenario: Scenario, slot: int) -> Scenario | None:
    lower = [bound for bound in LATENCY_MS_MAX_CHOICES if bound < scenario.latency_ms_max]
    return replace(scenario, latency_ms_max=max(lower)) if lower else None


TWINS_REDUCTIONS: Final[tuple[Reduction[Scenario], ...]] = (
    (_count_rounds, _remove_round),
    (_count_rounds, _merge_groups),
    (_count_rounds, _follow_honest_leader),
    (_count_scenario_one, _lower_scenario_latency),
)


def build_scenario(result: ShrinkResult) -> ScenarioFile:
    """The scenario file of a shrink: the shrunk plan, with the original kept for people."""
    return ScenarioFile(
        seed=result.seed,
        options=result.options,
        setup=result.shrunk,
        violation=result.violation,
        shrunk_from={
            "setup": result.original.to_json(),
            "violation": result.original_violation,
            "size": compute_size(result.original),
            "runs": result.runs,
            "exhausted": result.exhausted,
        },
    )
