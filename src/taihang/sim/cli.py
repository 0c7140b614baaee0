"""`taihang sim`: run simulator seeds from the command line (call `register(app)` to add it).

Four uses:

* a campaign, `taihang sim --mode random --seeds N [--first-seed S] [--nodes N] [--crypto C]
  [--jobs J] [--json]`, runs seeds S..S+N-1, reports progress on stderr and ends stdout with
  one JSON line `{"seeds", "violations", "faults", "commits", "seeds_per_s"}`;
* a replay, `taihang sim --mode random --seed S [--nodes N] --trace FILE`, runs one seed and
  writes its event trace (JSON lines; the first records the flags);
* a shrink, `taihang sim --seed S [flags of the failing run] --shrink FILE [--shrink-runs R]`,
  reduces a failing seed's fault plan (or, with `--mode twins`, its Twins scenario) while it
  fails the same way (`shrink.py`), writes the scenario file and ends stdout with one JSON
  line; it exits 0 once the file is written;
* a scenario replay, `taihang sim --scenario FILE [--trace T] [--json]`, runs the file's seed
  with the file's flags and plan or Twins scenario (`scenario.py`) and reports as a one-seed
  run.

Any violation makes the command exit with status 1 after printing, for each failing seed, the
violation, the generated fault plan, the git commit and the commands that replay and shrink
it. Usage errors, a malformed scenario file among them, exit with status 2. Heavy imports
happen inside the command so that `taihang --help` stays fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from taihang.sim.runner import CampaignSummary, SeedResult, SimOptions
    from taihang.sim.scenario import ScenarioFile

MODES = ("random", "twins")
CRYPTO_CHOICES = ("fake", "ed25519", "sm")
PROGRESS_INTERVAL_S = 2.0
SHRINK_RUNS_MAX = 200  # shrink.RUNS_MAX, repeated so that `taihang --help` imports nothing
# Flags that shape a run: a scenario file carries its own, so `--scenario` takes none of them.
RUN_FLAGS = {
    "mode": "--mode",
    "seeds": "--seeds",
    "first_seed": "--first-seed",
    "seed": "--seed",
    "nodes": "--nodes",
    "byzantine": "--byzantine",
    "crypto": "--crypto",
    "jobs": "--jobs",
    "without": "--without",
    "faulty_ms": "--faulty-ms",
    "no_early_stop": "--no-early-stop",
    "core": "--core",
    "shrink": "--shrink",
    "shrink_runs": "--shrink-runs",
}


def register(app: typer.Typer) -> None:
    """Add the `sim` command to the `taihang` app."""
    app.command("sim")(sim)


def sim(
    ctx: typer.Context,
    mode: Annotated[str, typer.Option(help="Fault model: random or twins.")] = "random",
    seeds: Annotated[int | None, typer.Option(min=1, help="Run this many seeds.")] = None,
    first_seed: Annotated[int, typer.Option(min=0, help="The first seed of --seeds.")] = 0,
    seed: Annotated[int | None, typer.Option(min=0, help="Run (replay) one seed.")] = None,
    nodes: Annotated[
        int | None, typer.Option(min=1, help="Validators (default: from the seed, 4 or 7).")
    ] = None,
    byzantine: Annotated[int, typer.Option(min=0, help="Byzantine validators, at most f.")] = 0,
    crypto: Annotated[str, typer.Option(help="Signatures: fake, ed25519 or sm.")] = "fake",
    trace: Annotated[
        Path | None, typer.Option(help="With --seed: write the event trace (JSON lines).")
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Worker processes for --seeds.")] = 1,
    without: Annotated[
        list[str] | None,
        typer.Option(help="Switch a fault kind off (repeat); the rest of the plan stays."),
    ] = None,
    faulty_ms: Annotated[
        int, typer.Option(min=1, help="Length of the faulty phase (simulated ms).")
    ] = 8_000,
    no_early_stop: Annotated[
        bool, typer.Option("--no-early-stop", help="Run the whole healed phase.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON line.")] = False,
    core: Annotated[
        str | None, typer.Option(hidden=True, help="Consensus binding, module:attribute.")
    ] = None,
    shrink: Annotated[
        Path | None,
        typer.Option(help="With --seed: shrink the failing seed's plan, write a scenario file."),
    ] = None,
    shrink_runs: Annotated[
        int, typer.Option(min=1, help="With --shrink: the most seed runs it may make.")
    ] = SHRINK_RUNS_MAX,
    scenario: Annotated[
        Path | None,
        typer.Option(help="Replay a scenario file (it carries its own seed, flags and plan)."),
    ] = None,
) -> None:
    """Simulate a cluster of real consensus cores under seeded network and crash faults."""
    if scenario is not None:
        _validate_no_run_flags(ctx)
        _replay_scenario(scenario, trace, as_json)
        return
    _validate_flags(mode, seeds, seed, trace, byzantine, crypto, nodes)
    _validate_shrink_flags(ctx, shrink, seed, trace)
    options = _build_options(
        mode, nodes, byzantine, crypto, without, faulty_ms, no_early_stop=no_early_stop, core=core
    )
    from taihang.errors import ConfigurationError

    try:
        if shrink is not None:
            assert seed is not None
            _shrink(seed, options, shrink, shrink_runs, as_json)
            return
        if seed is not None:
            summary = _run_one(seed, options, trace)
        else:
            assert seeds is not None
            summary = _run_campaign(list(range(first_seed, first_seed + seeds)), options, jobs)
    except ConfigurationError as exc:  # flags the run cannot use (e.g. a binding for twins)
        _fail(exc.message)
    _finish(summary, options, as_json)


def _build_options(
    mode: str,
    nodes: int | None,
    byzantine: int,
    crypto: str,
    without: list[str] | None,
    faulty_ms: int,
    *,
    no_early_stop: bool,
    core: str | None,
) -> SimOptions:
    from dataclasses import replace

    from taihang.sim.runner import SimOptions

    options = SimOptions(nodes=nodes, crypto=crypto, byzantine=byzantine, mode=mode)
    options = replace(
        options,
        timing=replace(options.timing, faulty_ms=faulty_ms),
        without=frozenset(_split(without)),
        early_stop=not no_early_stop,
        binding=core or options.binding,
    )
    _validate_without(options)
    return options


def _validate_flags(
    mode: str,
    seeds: int | None,
    seed: int | None,
    trace: Path | None,
    byzantine: int,
    crypto: str,
    nodes: int | None,
) -> None:
    if mode not in MODES:
        _fail(f"unknown mode {mode!r}; this version simulates: {', '.join(MODES)}")
    fault_tolerance = ((nodes or 4) - 1) // 3  # without --nodes, n may be drawn as 4
    if byzantine > fault_tolerance:
        _fail(
            f"--byzantine {byzantine} exceeds f = {fault_tolerance}"
            + ("" if nodes else " (n may be 4; pin --nodes 7 for 2)")
        )
    if (seeds is None) == (seed is None):
        _fail("give either --seeds N (a campaign) or --seed S (one seed)")
    if trace is not None and seed is None:
        _fail("--trace needs --seed: a trace records one run")
    if crypto not in CRYPTO_CHOICES:
        _fail(f"unknown crypto {crypto!r}; choose from {', '.join(CRYPTO_CHOICES)}")
    if nodes is not None and nodes < 4:
        _fail("--nodes must be at least 4 (n = 3f + 1 with f >= 1)")
    if mode == "twins" and (nodes not in (None, 4, 7) or byzantine):
        _fail("--mode twins runs --nodes 4 (1 twin) or 7 (2 twins), without --byzantine")


def _find_given(ctx: typer.Context, names: dict[str, str]) -> list[str]:
    """The flags among `names` given on the command line (or by the environment)."""
    sources = {name: ctx.get_parameter_source(name) for name in names}
    # By name: typer may ship its own copy of click's `ParameterSource`.
    return [flag for name, flag in names.items() if _is_given(sources[name])]


def _is_given(source: object) -> bool:
    return source is not None and getattr(source, "name", "DEFAULT") != "DEFAULT"


def _validate_no_run_flags(ctx: typer.Context) -> None:
    given = _find_given(ctx, RUN_FLAGS)
    if given:
        _fail(
            f"--scenario takes its seed and flags from the file, not from {', '.join(given)}; "
            "give only --trace and --json with it"
        )


def _validate_shrink_flags(
    ctx: typer.Context, shrink: Path | None, seed: int | None, trace: Path | None
) -> None:
    if shrink is None:
        if _find_given(ctx, {"shrink_runs": "--shrink-runs"}):
            _fail("--shrink-runs needs --shrink FILE")
        return
    if seed is None:
        _fail("--shrink needs --seed S, the failing seed (not --seeds)")
    if trace is not None:
        _fail("--shrink writes a scenario file; trace it with --scenario FILE --trace T")


def _validate_without(options: SimOptions) -> None:
    from taihang.sim.plan import MASKABLE_KINDS

    unknown = sorted(options.without - set(MASKABLE_KINDS))
    if unknown:
        _fail(f"unknown fault kinds {unknown}; known: {', '.join(MASKABLE_KINDS)}")


def _split(values: list[str] | None) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _run_one(
    seed: int, options: SimOptions, trace: Path | None, replaying: ScenarioFile | None = None
) -> CampaignSummary:
    """Run one seed, or replay a scenario file's run; either may write a trace."""
    from taihang.sim.runner import CampaignSummary, run_seed
    from taihang.sim.scenario import run_scenario
    from taihang.sim.trace import FileSink, TraceSink

    def run(sink: TraceSink | None) -> SeedResult:
        return run_seed(seed, options, sink) if replaying is None else run_scenario(replaying, sink)

    started = time.perf_counter()
    if trace is None:
        result = run(None)
    else:
        with trace.open("wb") as file:
            result = run(FileSink(file))
    summary = CampaignSummary()
    summary.add(result)
    summary.wall_s = time.perf_counter() - started
    _report_progress(result, 1, 1)
    return summary


def _run_campaign(seeds: list[int], options: SimOptions, jobs: int) -> CampaignSummary:
    from taihang.sim.runner import run_seeds

    done = 0
    last_report = time.perf_counter()

    def on_result(result: SeedResult) -> None:
        nonlocal done, last_report
        done += 1
        now = time.perf_counter()
        if result.violation is not None or now - last_report >= PROGRESS_INTERVAL_S:
            last_report = now
            _report_progress(result, done, len(seeds))

    return run_seeds(seeds, options, jobs=jobs, on_result=on_result)


def _report_progress(result: SeedResult, done: int, total: int) -> None:
    status = "ok" if result.violation is None else f"VIOLATION {result.violation['kind']}"
    typer.echo(
        f"[{done}/{total}] seed {result.seed} n={result.nodes}: {status} "
        f"({result.elapsed_ms} ms simulated, {result.events} events, {result.wall_s:.2f} s)",
        err=True,
    )


def _finish(
    summary: CampaignSummary, options: SimOptions, as_json: bool, replay: str | None = None
) -> None:
    """Report the failures and the summary; `replay` replaces the seed's replay command."""
    from taihang.sim.runner import build_replay_command, build_shrink_command

    for failed in summary.failed:
        assert failed.violation is not None
        lines = [
            f"seed {failed.seed} FAILED: {failed.violation['kind']}: {failed.violation['detail']}",
            f"  at {failed.violation['elapsed_ms']} ms simulated, node {failed.violation['node']}",
            f"  plan: {json.dumps(failed.plan, sort_keys=True)}",
            f"  code: git {_find_git_commit()}",
            f"  replay: {replay or build_replay_command(failed.seed, options, failed.nodes)}",
        ]
        if replay is None:
            lines.append(f"  shrink: {build_shrink_command(failed.seed, options, failed.nodes)}")
        typer.echo("\n".join(lines), err=True)
    result = summary.to_json()
    if not as_json:
        typer.echo(_describe_summary(result))
    typer.echo(json.dumps(result, sort_keys=True))
    if summary.violations:
        raise typer.Exit(1)


def _replay_scenario(path: Path, trace: Path | None, as_json: bool) -> None:
    from taihang.sim.scenario import InvalidScenario, load_scenario

    try:
        scenario = load_scenario(path)
    except InvalidScenario as exc:
        _fail(exc.message)
    _validate_binding(scenario.options.binding)
    from taihang.errors import ConfigurationError

    try:
        summary = _run_one(scenario.seed, scenario.options, trace, scenario)
    except ConfigurationError as exc:  # e.g. a twins scenario naming a binding twins cannot use
        _fail(f"scenario file {path}: {exc.message}")
    recorded = None if scenario.violation is None else scenario.violation["kind"]
    violation = summary.failed[0].violation if summary.failed else None
    found = None if violation is None else violation["kind"]
    if found != recorded:
        typer.echo(
            f"note: {path} recorded {recorded or 'no violation'}, this run found "
            f"{found or 'none'}: the code changed since the file was written",
            err=True,
        )
    _finish(summary, scenario.options, as_json, replay=f"taihang sim --scenario {path}")


def _validate_binding(binding: str) -> None:
    from taihang.sim.cluster import load_binding

    try:
        load_binding(binding)
    except (ImportError, AttributeError, ValueError) as exc:
        _fail(
            f"the scenario runs the binding {binding!r}, which does not load ({exc}); "
            "a test mutant loads with tests/sim on PYTHONPATH"
        )


def _shrink(seed: int, options: SimOptions, path: Path, runs_max: int, as_json: bool) -> None:
    from dataclasses import replace

    from taihang.sim.scenario import save_scenario
    from taihang.sim.shrink import SeedDoesNotFail, build_scenario, compute_size, shrink_seed

    typer.echo(f"shrinking seed {seed}, at most {runs_max} runs", err=True)
    try:
        result = shrink_seed(seed, options, runs_max=runs_max)
    except SeedDoesNotFail as exc:
        _fail(f"{exc.message} (check the flags: they must be the failing run's)")
    scenario = build_scenario(result)
    provenance = {**(scenario.shrunk_from or {}), "code": f"git {_find_git_commit()}"}
    try:
        save_scenario(path, replace(scenario, shrunk_from=provenance))
    except OSError as exc:
        _fail(f"cannot write the scenario file: {exc}")
    before, after = compute_size(result.original), compute_size(result.shrunk)
    line = {
        "seed": seed,
        "violation": result.violation["kind"],
        "runs": result.runs,
        "exhausted": result.exhausted,
        "original_size": before,
        "size": after,
        "scenario": str(path),
    }
    if not as_json:
        changed = [
            f"{key} {before[key]} -> {after[key]}" for key in before if before[key] != after[key]
        ]
        budget = "; the run budget ran out" if result.exhausted else ""
        typer.echo(
            f"seed {seed} still fails with {result.violation['kind']} after {result.runs} runs "
            f"({result.wall_s:.1f} s){budget}\n"
            f"plan: {', '.join(changed) or 'no reduction kept the failure'}\n"
            f"scenario written to {path}; replay: taihang sim --scenario {path}"
        )
    typer.echo(json.dumps(line, sort_keys=True))


def _describe_summary(result: dict[str, Any]) -> str:
    faults = ", ".join(f"{kind} {count}" for kind, count in result["faults"].items() if count)
    return (
        f"{result['seeds']} seeds, {result['violations']} with a violation, "
        f"{result['commits']} blocks committed, {result['seeds_per_s']} seeds/s\n"
        f"faults injected: {faults or 'none'}"
    )


def _find_git_commit() -> str:
    """The checkout's commit, for the failure report; "unknown" outside a git checkout."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return completed.stdout.strip() or "unknown"


def _group() -> None:
    """Taihang's deterministic cluster simulator."""


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def main() -> None:
    """Run `sim` as a stand-alone command (`python -m taihang.sim.cli`), before it is wired."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.callback()(_group)  # keeps `sim` a subcommand, as it is under `taihang`
    register(app)
    app(prog_name="taihang", args=["sim", *sys.argv[1:]])


if __name__ == "__main__":
    main()
