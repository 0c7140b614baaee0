"""Contracts are deterministic across processes: the same blocks give the same roots, receipts
and gas under different `PYTHONHASHSEED`s (spec: contracts.md, Determinism).

`determinism_run.py` executes a fixed, contract-heavy scenario on a real state tree and prints
every block's state root and every receipt's canonical bytes; this test runs it in separate
processes with different hash seeds and compares the output byte for byte, then checks the
scenario really exercised what it claims to (so a broken scenario cannot pass by printing the
same nothing three times).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import determinism_run

SCRIPT = Path(determinism_run.__file__).resolve()
HASH_SEEDS = ("0", "1", "4242")


@cache
def outputs() -> dict[str, str]:
    """The script's stdout for each hash seed (run concurrently)."""
    processes = {
        seed: subprocess.Popen(
            [sys.executable, str(SCRIPT)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in HASH_SEEDS
    }
    results: dict[str, str] = {}
    for seed, process in processes.items():
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, f"PYTHONHASHSEED={seed}: {stderr}"
        results[seed] = stdout
    return results


def receipts(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for block in result["blocks"] for r in block["receipts"]]


def test_hash_seeds_give_identical_roots_receipts_and_gas() -> None:
    runs = outputs()
    first = runs[HASH_SEEDS[0]]
    for seed in HASH_SEEDS[1:]:
        if runs[seed] != first:
            a, b = json.loads(first), json.loads(runs[seed])
            diffs = [
                (x["height"], x["state_root"], y["state_root"])
                for x, y in zip(a["blocks"], b["blocks"], strict=True)
                if x != y
            ]
            raise AssertionError(f"PYTHONHASHSEED={seed} differs from 0; blocks: {diffs[:3]}")


def test_the_scenario_is_not_trivial() -> None:
    result = json.loads(outputs()[HASH_SEEDS[0]])
    blocks = result["blocks"]
    all_receipts = receipts(result)
    statuses = Counter(r["status"] for r in all_receipts)
    assert len(blocks) >= 10
    assert statuses["ok"] >= 60, statuses
    assert statuses["reverted"] >= 20, statuses
    assert statuses["out_of_gas"] >= 3, statuses
    assert statuses["rejected"] >= 10, statuses
    # Every rejection is one the scenario meant: no sender's nonces drifted out of step.
    rejected = [r["error"] for r in all_receipts if r["status"] == "rejected"]
    intended = ("is not a member", "nonce 0 is", "expired", "for channel")
    futures = [e for e in rejected if not any(text in e for text in intended)]
    assert len(futures) == 8, futures  # one nonce from the future per mixed block, one more
    # Errors are normalised: class names and limit names, never CPython's message text.
    errors = {r["error"] for r in all_receipts if r["status"] == "reverted"}
    for name in ("KeyError", "IndexError", "ZeroDivisionError", "TypeError", "ValueError",
                 "AttributeError", "NameError", "ForbiddenOperation", "InvalidValue"):  # fmt: skip
        assert f"contract error: {name}" in errors, name
    for limit in ("string bytes", "sequence items", "int bits", "call depth", "nesting depth"):
        assert f"limit exceeded: {limit}" in errors, limit
    assert {"custom failure 7", "n must exceed 10", "insufficient balance"} <= errors
    assert "router gave up after paying 5" in errors  # a callee's writes revert with the caller
    assert any(e.startswith("compile error at line 2") for e in errors)
    assert all(r["gas_used"] > 0 for r in all_receipts if r["status"] != "rejected")
    # The state moves, and only when something was written.
    roots = [result["genesis_root"]] + [b["state_root"] for b in blocks]
    assert len(set(roots)) >= len(blocks) - 1
    for before, block in zip(roots, blocks, strict=False):
        assert (block["state_root"] == before) == (block["writes"] == 0), block["height"]
    queries = dict(result["queries"])
    assert sum(queries["balances"]) == 1_000_000  # the token's supply is conserved
    assert dict(queries["router_info"])["calls"] >= 4
    assert queries["fails_dirty"] is None  # reverted writes never land


def test_in_process_runs_match_the_subprocesses() -> None:
    """Compiled contracts and recycled runtimes are cached per process: a second run in the
    same process (warm caches) must print exactly what a fresh process prints."""
    expected = outputs()[HASH_SEEDS[0]]
    first = determinism_run.render(determinism_run.run_scenario())
    second = determinism_run.render(determinism_run.run_scenario())
    assert first + "\n" == expected
    assert second == first
