"""Running seeds: one seed in this process, or a campaign of seeds over worker processes.

Theory of operation: a run is a pure function of `(seed, SimOptions)` and the code. It creates
one `random.Random(seed)`, draws the fault plan from it, derives the cluster's keys from the
seed, and hands the same RNG to the engine. Nothing else is random, so `run_seed` is
reproducible bit for bit (with fake or Ed25519 signatures), which is what makes a failing seed
replayable and the trace comparable across processes. A run may be handed an explicit plan
(a scenario file's, a shrinker's candidate): the seed's plan is drawn all the same and then
set aside, so the rest of the run draws from the RNG state the seed's own run had.

A campaign (`run_seeds`) farms seeds out to worker processes (spawned, so no state leaks from
the parent), collects the results in seed order whatever order they finish in, and sums them
into a `CampaignSummary`. Bindings travel to workers by name (`module:attribute`).
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from taihang.sim.cluster import (
    DEFAULT_BINDING,
    ConsensusBinding,
    SimTiming,
    build_cluster,
    compute_healed_ms,
    get_sim_suite,
    load_binding,
)
from taihang.sim.engine import RunOutcome, Simulation
from taihang.sim.plan import FAULT_KINDS, FaultPlan, InvalidPlan, generate_plan, validate_plan
from taihang.sim.trace import HashSink, Trace, TraceSink

TRACE_FORMAT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class SimOptions:
    """Everything besides the seed that shapes a run; the trace's first line records it."""

    nodes: int | None = None  # None: drawn from the seed, n in {4, 4, 7} (twins: 4)
    mode: str = "random"  # or "twins" (twins.py)
    crypto: str = "fake"
    byzantine: int = 0
    binding: str = DEFAULT_BINDING
    timing: SimTiming = field(default_factory=SimTiming)
    without: frozenset[str] = frozenset()
    early_stop: bool = True

    def to_json(self) -> dict[str, Any]:
        mode = {} if self.mode == "random" else {"mode": self.mode}  # random traces unchanged
        return {
            **mode,
            "nodes": self.nodes,
            "crypto": self.crypto,
            "byzantine": self.byzantine,
            "binding": self.binding,
            "timing": {
                "round_timeout_base_ms": self.timing.round_timeout_base_ms,
                "idle_block_interval_ms": self.timing.idle_block_interval_ms,
                "min_block_interval_ms": self.timing.min_block_interval_ms,
                "network_allowance_ms": self.timing.network_allowance_ms,
                "max_clock_drift_ms": self.timing.max_clock_drift_ms,
                "block_request_retry_ms": self.timing.block_request_retry_ms,
                "faulty_ms": self.timing.faulty_ms,
                "healed_ms_min": self.timing.healed_ms_min,
            },
            "without": sorted(self.without),
            "early_stop": self.early_stop,
        }


@dataclass(frozen=True, slots=True)
class SeedResult:
    seed: int
    nodes: int
    violation: dict[str, Any] | None
    faults: dict[str, int]
    commits: int  # final ledger heights of the nodes that kept keys and disk, summed
    elapsed_ms: int  # simulated
    events: int
    plan: dict[str, Any]
    trace_sha256: str | None
    wall_s: float


def run_seed(
    seed: int, options: SimOptions, sink: TraceSink | None = None, plan: FaultPlan | None = None
) -> SeedResult:
    """Run one seed; `sink` receives the trace (first line: the flags, second: the plan).

    With `plan`, the run injects that plan instead of the one drawn from the seed (a scenario
    file's, or a shrinker's candidate). The seed's plan is still drawn first, with `options`,
    so every later draw (latencies, message faults, execution delays, ...) starts from the
    same RNG state as in the seed's own run; `plan` must have the drawn n.
    """
    if options.mode == "twins":
        from taihang.sim.twins import run_twins_seed

        if plan is not None:
            raise InvalidPlan("twins mode runs a scenario, not a fault plan")
        return run_twins_seed(seed, options, sink)
    started = time.perf_counter()
    rng = random.Random(seed)
    drawn = draw_plan(rng, options)
    if plan is None:
        plan = drawn
    else:
        validate_plan(plan)
        if plan.nodes != drawn.nodes:
            raise InvalidPlan(f"the plan has n = {plan.nodes}; seed {seed} drew {drawn.nodes}")
    binding = build_binding(options.binding, plan)
    cluster = build_cluster(seed, plan.nodes, get_sim_suite(options.crypto), options.timing)
    healed_ms = compute_healed_ms(
        options.timing, binding.compute_round_timeout_max_ms(options.timing)
    )
    trace = open_trace(sink, seed, options, {"plan": plan.to_json(), "healed_ms": healed_ms})
    outcome = Simulation(
        cluster=cluster,
        plan=plan,
        binding=binding,
        rng=rng,
        healed_ms=healed_ms,
        trace=trace,
        early_stop=options.early_stop,
    ).run()
    return build_seed_result(seed, plan.nodes, outcome, plan.to_json(), sink, started)


def build_binding(spec: str, plan: FaultPlan) -> ConsensusBinding:
    """The binding named `spec`; with `twin` nodes, mixed under `InstanceBinding` so that
    each second instance holds its validator's key (a mutant must subclass JolteonBinding)."""
    if not plan.twinned_nodes:
        return load_binding(spec)
    from taihang.sim.jolteon import InstanceBinding, mix_binding

    return mix_binding(spec, InstanceBinding, tuple(range(plan.nodes)) + plan.twinned_nodes)


def draw_plan(rng: random.Random, options: SimOptions) -> FaultPlan:
    """The seed's plan: the run's first draws from `rng`."""
    return generate_plan(
        rng,
        nodes=options.nodes,
        byzantine=options.byzantine,
        faulty_ms=options.timing.faulty_ms,
        without=options.without,
    )


def open_trace(
    sink: TraceSink | None, seed: int, options: SimOptions, setup: dict[str, Any]
) -> Trace | None:
    """A trace whose first line records the flags and second the generated setup."""
    if sink is None:
        return None
    trace = Trace(sink, mask=options.crypto == "sm")  # SM2 signatures are randomised
    trace.record({"flags": {"seed": seed, **options.to_json()}, "version": TRACE_FORMAT_VERSION})
    trace.record(setup)
    return trace


def build_seed_result(
    seed: int,
    nodes: int,
    outcome: RunOutcome,
    setup: dict[str, Any],
    sink: TraceSink | None,
    started: float,
) -> SeedResult:
    return SeedResult(
        seed=seed,
        nodes=nodes,
        violation=None if outcome.violation is None else outcome.violation.to_json(),
        faults=outcome.faults,
        commits=sum(p.at_end for p in outcome.progress),
        elapsed_ms=outcome.elapsed_ms,
        events=outcome.events,
        plan=setup,
        trace_sha256=sink.hexdigest() if isinstance(sink, HashSink) else None,
        wall_s=time.perf_counter() - started,
    )


def run_seed_hashed(seed: int, options: SimOptions) -> SeedResult:
    """Run one seed keeping only the SHA-256 of its trace (the determinism check)."""
    return run_seed(seed, options, HashSink())


@dataclass(slots=True)
class CampaignSummary:
    """The totals `taihang sim` prints as its last line."""

    seeds: int = 0
    violations: int = 0
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))
    commits: int = 0
    wall_s: float = 0.0
    failed: list[SeedResult] = field(default_factory=list)

    def add(self, result: SeedResult) -> None:
        self.seeds += 1
        self.commits += result.commits
        for kind, count in result.faults.items():
            self.faults[kind] = self.faults.get(kind, 0) + count
        if result.violation is not None:
            self.violations += 1
            self.failed.append(result)

    def to_json(self) -> dict[str, Any]:
        return {
            "seeds": self.seeds,
            "violations": self.violations,
            "faults": dict(sorted(self.faults.items())),
            "commits": self.commits,
            "seeds_per_s": round(self.seeds / self.wall_s, 3) if self.wall_s > 0 else None,
        }


def iter_results(seeds: list[int], options: SimOptions, jobs: int = 1) -> Iterator[SeedResult]:
    """Results in seed order; with `jobs > 1` seeds run in that many spawned processes."""
    if jobs <= 1:
        for seed in seeds:
            yield run_seed(seed, options)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(jobs) as pool:
        yield from pool.imap(_run_seed_star, [(seed, options) for seed in seeds], chunksize=1)


def _run_seed_star(arguments: tuple[int, SimOptions]) -> SeedResult:
    return run_seed(*arguments)


def run_seeds(
    seeds: list[int],
    options: SimOptions,
    *,
    jobs: int = 1,
    on_result: Callable[[SeedResult], None] | None = None,
) -> CampaignSummary:
    """Run `seeds` and sum them up; `on_result` sees each result as it arrives (progress)."""
    summary = CampaignSummary()
    started = time.perf_counter()
    for result in iter_results(seeds, options, jobs):
        summary.add(result)
        if on_result is not None:
            on_result(result)
    summary.wall_s = time.perf_counter() - started
    return summary


def build_replay_command(seed: int, options: SimOptions, nodes: int) -> str:
    """The command that replays `seed` with its trace, pinned to the n it ran with."""
    return f"{_build_seed_command(seed, options, nodes)} --trace seed-{seed}.jsonl"


def build_shrink_command(seed: int, options: SimOptions, nodes: int) -> str:
    """The command that shrinks failing `seed` to a scenario file."""
    return f"{_build_seed_command(seed, options, nodes)} --shrink seed-{seed}.scenario.json"


def _build_seed_command(seed: int, options: SimOptions, nodes: int) -> str:
    parts = [
        f"taihang sim --mode {options.mode}",
        f"--seed {seed}",
        f"--nodes {nodes}",
        f"--crypto {options.crypto}",
        f"--byzantine {options.byzantine}",
    ]
    parts += [f"--without {kind}" for kind in sorted(options.without)]
    if options.timing.faulty_ms != SimTiming().faulty_ms:
        parts.append(f"--faulty-ms {options.timing.faulty_ms}")
    if not options.early_stop:
        parts.append("--no-early-stop")
    if options.binding != DEFAULT_BINDING:
        parts.append(f"--core {options.binding}")
    return " ".join(parts)
