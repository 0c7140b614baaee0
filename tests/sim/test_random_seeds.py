"""Layer 1 of the consensus test plan: the real Jolteon core under seeded random faults.

* 300 random-fault seeds (n from the seed: 4, 4 or 7) with fake signatures, in two worker
  processes so both CI cores work;
* 20 seeds with real Ed25519 signatures, to catch encoding and signature bugs fake crypto hides;
* determinism: 5 seeds, each run in two fresh processes with different `PYTHONHASHSEED`s
  through the `sim` command, must write byte-identical traces.

A failure message lists, per failing seed, the violation and the command that replays it
(docs/simulator.md says how to shrink it); add the seed to `regressions.json`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from taihang.sim.runner import CampaignSummary, SimOptions, build_replay_command, run_seeds

RANDOM_SEEDS = 300
ED25519_SEEDS = 20
ED25519_FIRST_SEED = 100_000  # other seeds than the fake-crypto run, for more coverage
DETERMINISM_SEEDS = (0, 1, 2, 3, 4)
WORKERS = 2  # the CI machine's cores
HASH_SEEDS = ("0", "4242")


def describe_failures(summary: CampaignSummary, options: SimOptions) -> str:
    return "\n".join(
        f"seed {r.seed}: {r.violation}\n  replay: {build_replay_command(r.seed, options, r.nodes)}"
        for r in summary.failed
    )


def test_random_fault_seeds_with_fake_signatures() -> None:
    options = SimOptions(crypto="fake")
    summary = run_seeds(list(range(RANDOM_SEEDS)), options, jobs=WORKERS)
    assert summary.violations == 0, describe_failures(summary, options)
    assert summary.seeds == RANDOM_SEEDS
    for kind in ("drop", "duplicate", "reorder", "partition", "one_way_partition", "crash"):
        assert summary.faults[kind] > 0, f"no {kind} fault injected: the generator is broken"
    assert summary.faults["wipe"] > 0 and summary.faults["crash_mid_step"] > 0


def test_random_fault_seeds_with_ed25519_signatures() -> None:
    options = SimOptions(crypto="ed25519")
    seeds = list(range(ED25519_FIRST_SEED, ED25519_FIRST_SEED + ED25519_SEEDS))
    summary = run_seeds(seeds, options, jobs=WORKERS)
    assert summary.violations == 0, describe_failures(summary, options)
    assert summary.commits > 0


def _trace_sha256(seed: int, crypto: str, hash_seed: str, directory: Path) -> str:
    path = directory / f"trace-{seed}-{crypto}-{hash_seed}.jsonl"
    command = [sys.executable, "-m", "taihang.sim.cli", "--mode", "random", "--seed", str(seed)]
    command += ["--crypto", crypto, "--trace", str(path), "--json"]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_traces_are_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    runs = [
        (seed, "ed25519" if seed % 2 else "fake", hash_seed)
        for seed in DETERMINISM_SEEDS
        for hash_seed in HASH_SEEDS
    ]
    with ThreadPoolExecutor(WORKERS) as pool:
        digests = list(pool.map(lambda run: _trace_sha256(run[0], run[1], run[2], tmp_path), runs))
    by_seed: dict[int, set[str]] = {}
    for (seed, _, _), digest in zip(runs, digests, strict=True):
        by_seed.setdefault(seed, set()).add(digest)
    differing = sorted(seed for seed, found in by_seed.items() if len(found) != 1)
    assert not differing, f"traces differ between processes for seeds {differing}"
