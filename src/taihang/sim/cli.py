"""`taihang sim`: run simulator seeds from the command line (call `register(app)` to add it).

Two uses:

* a campaign, `taihang sim --mode random --seeds N [--first-seed S] [--nodes N] [--crypto C]
  [--jobs J] [--json]`, runs seeds S..S+N-1, reports progress on stderr and ends stdout with
  one JSON line `{"seeds", "violations", "faults", "commits", "seeds_per_s"}`;
* a replay, `taihang sim --mode random --seed S [--nodes N] --trace FILE`, runs one seed and
  writes its event trace (JSON lines; the first records the flags).

Any violation makes the command exit with status 1 after printing, for each failing seed, the
violation, the generated fault plan, the git commit and the command that replays it. Heavy
imports happen inside the command so that `taihang --help` stays fast.
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

MODES = ("random", "twins")
CRYPTO_CHOICES = ("fake", "ed25519", "sm")
PROGRESS_INTERVAL_S = 2.0


def register(app: typer.Typer) -> None:
    """Add the `sim` command to the `taihang` app."""
    app.command("sim")(sim)


def sim(
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
) -> None:
    """Simulate a cluster of real consensus cores under seeded network and crash faults."""
    _validate_flags(mode, seeds, seed, trace, byzantine, crypto, nodes)
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
    if seed is not None:
        summary = _run_one(seed, options, trace)
    else:
        assert seeds is not None
        summary = _run_campaign(list(range(first_seed, first_seed + seeds)), options, jobs)
    _finish(summary, options, as_json)


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


def _validate_without(options: SimOptions) -> None:
    from taihang.sim.plan import MASKABLE_KINDS

    unknown = sorted(options.without - set(MASKABLE_KINDS))
    if unknown:
        _fail(f"unknown fault kinds {unknown}; known: {', '.join(MASKABLE_KINDS)}")


def _split(values: list[str] | None) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _run_one(seed: int, options: SimOptions, trace: Path | None) -> CampaignSummary:
    from taihang.sim.runner import CampaignSummary, run_seed
    from taihang.sim.trace import FileSink

    started = time.perf_counter()
    if trace is None:
        result = run_seed(seed, options)
    else:
        with trace.open("wb") as file:
            result = run_seed(seed, options, FileSink(file))
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


def _finish(summary: CampaignSummary, options: SimOptions, as_json: bool) -> None:
    from taihang.sim.runner import build_replay_command

    for failed in summary.failed:
        assert failed.violation is not None
        typer.echo(
            "\n".join(
                [
                    f"seed {failed.seed} FAILED: {failed.violation['kind']}: "
                    f"{failed.violation['detail']}",
                    f"  at {failed.violation['elapsed_ms']} ms simulated, node "
                    f"{failed.violation['node']}",
                    f"  plan: {json.dumps(failed.plan, sort_keys=True)}",
                    f"  code: git {_find_git_commit()}",
                    f"  replay: {build_replay_command(failed.seed, options, failed.nodes)}",
                ]
            ),
            err=True,
        )
    result = summary.to_json()
    if not as_json:
        typer.echo(_describe_summary(result))
    typer.echo(json.dumps(result, sort_keys=True))
    if summary.violations:
        raise typer.Exit(1)


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
