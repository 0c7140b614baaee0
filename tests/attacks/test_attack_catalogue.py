"""Run the contract attack catalogue: every entry in a subprocess with a memory limit and a
watchdog, its outcome asserted (spec: shared/spec/contracts.md, "What the sandbox must hold
against").

An entry passes when its process exits 0 (nothing escaped the executor: no MemoryError at the
address-space limit, no RecursionError, no crash), finishes within `WATCHDOG_S`, stays within
`RSS_BOUND_KIB` of peak memory (the gas pays for ~80 MB at the most; the limit is 1 GiB), every
receipt stays within its gas limit, the canary transaction after the attack is `ok` (the chain
keeps committing), and the entry's expected outcome holds. Harmless entries, entries marked
`hash_seeds` and entries with a `second_env` run a second time (under another PYTHONHASHSEED,
plus the `second_env` variables) and must give the same receipts, gas and state: two nodes
in different processes must agree.

The processes run concurrently (one per core) from a module fixture; each test waits for its
own entry's result.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from catalogue import ATTACKS, FAMILIES, GAS_MAX, Attack, Result

RUNNER = Path(__file__).resolve().parent / "run_attack.py"
WATCHDOG_S = 20.0  # generous for slow CI cores: no passing entry takes 1 s on a dev machine
RSS_BOUND_KIB = 256 * 1024  # far below the runner's 1 GiB address-space limit
SEEDS = ("0", "4242")  # PYTHONHASHSEED of the first and the second run
ENTRIES_MIN = 60
VOLATILE = ("seconds", "max_rss_kib")  # the only fields allowed to differ between runs


@dataclass(frozen=True, slots=True)
class Run:
    returncode: int | None  # None: the watchdog killed it
    stdout: str
    stderr: str


def run_runner(
    attack_id: str, seed: str, timeout: float = WATCHDOG_S, extra: dict[str, str] | None = None
) -> Run:
    env = {**os.environ, "PYTHONHASHSEED": seed, **(extra or {})}
    try:
        done = subprocess.run(
            [sys.executable, str(RUNNER), attack_id],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        return Run(None, _text(exc.stdout), _text(exc.stderr))
    return Run(done.returncode, done.stdout, done.stderr)


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


class Runs:
    """Every selected entry's subprocesses, started at once on a pool of one per core."""

    def __init__(self, attacks: list[Attack]) -> None:
        self.pool = ThreadPoolExecutor(max_workers=max(os.cpu_count() or 2, 2))
        self.futures: dict[tuple[str, str], Future[Run]] = {}
        # The slowest first, so that the pool's tail is short.
        for attack in sorted(attacks, key=lambda a: a.gas_limit, reverse=True):
            self.futures[attack.id, SEEDS[0]] = self.pool.submit(run_runner, attack.id, SEEDS[0])
            if runs_twice(attack):
                extra = dict(attack.second_env)
                self.futures[attack.id, SEEDS[1]] = self.pool.submit(
                    run_runner, attack.id, SEEDS[1], WATCHDOG_S, extra
                )

    def get(self, attack_id: str, seed: str = SEEDS[0]) -> Run:
        return self.futures[attack_id, seed].result()

    def close(self) -> None:
        for future in self.futures.values():
            future.cancel()
        self.pool.shutdown(wait=True)


def runs_twice(attack: Attack) -> bool:
    return attack.hash_seeds or bool(attack.second_env) or attack.expect == "harmless"


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest) -> Iterator[Runs]:
    selected: set[str] = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        attack = callspec.params.get("attack") if callspec is not None else None
        if isinstance(attack, Attack):
            selected.add(attack.id)
    pool = Runs([attack for attack in ATTACKS if attack.id in selected])
    yield pool
    pool.close()


def _params() -> list[Any]:
    params = []
    for attack in ATTACKS:
        marks = [pytest.mark.xfail(strict=True, reason=attack.xfail)] if attack.xfail else []
        params.append(pytest.param(attack, id=attack.id, marks=marks))
    return params


def _decoded(run: Run, attack_id: str) -> dict[str, Any]:
    assert run.returncode is not None, f"{attack_id}: the watchdog fired after {WATCHDOG_S} s"
    assert run.returncode == 0, (
        f"{attack_id}: the runner died (exit {run.returncode}): a safety net tripped\n"
        + run.stderr[-3000:]
    )
    lines = run.stdout.strip().splitlines()
    assert lines, f"{attack_id}: no output\n{run.stderr[-3000:]}"
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def _stable(data: dict[str, Any]) -> dict[str, Any]:
    """`data` without the fields that may differ between runs (times, memory)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    stripped: dict[str, Any] = strip(data)
    return stripped


def _matches(attack: Attack, error: str) -> bool:
    return error == attack.message if attack.exact else attack.message in error


def check_outcome(attack: Attack, data: dict[str, Any]) -> None:
    deploys, calls = data["deploys"], data["calls"]
    for receipt in deploys:
        assert receipt["gas_used"] <= GAS_MAX, receipt
    for receipt in calls:
        assert receipt["gas_used"] <= attack.gas_limit, receipt
    for receipt in deploys[:-1]:  # the canary and the helper contracts
        assert receipt["status"] == "ok", receipt
    assert data["canary"]["status"] == "ok", f"the chain stopped committing: {data['canary']}"
    target = deploys[-1]
    if attack.expect == "rejected":
        assert target["status"] == "reverted", target
        line = str(attack.line) if attack.line else ""
        assert target["error"].startswith(f"compile error at line {line}"), target["error"]
        assert attack.message in target["error"], target["error"]
        assert not calls
        return
    assert target["status"] == "ok", target
    if attack.expect == "stopped":
        *before, last = calls
        assert all(receipt["status"] == "ok" for receipt in before), before
        assert last["status"] == attack.status, last
        assert _matches(attack, last["error"]), (attack.message, last["error"])
        if attack.status == "out_of_gas":
            assert last["gas_used"] == attack.gas_limit, last
        return
    expected = list(attack.statuses) or ["ok"] * len(calls)
    assert [receipt["status"] for receipt in calls] == expected, calls
    if attack.check is not None:
        attack.check(
            Result(
                returns=[ast.literal_eval(receipt["return"]) for receipt in calls],
                statuses=[receipt["status"] for receipt in calls],
                errors=[receipt["error"] for receipt in calls],
                events=[receipt["events"] for receipt in calls],
                signer=data["signer"],
                deployer=data["deployer"],
            )
        )


@pytest.mark.parametrize("attack", _params())
def test_attack(attack: Attack, runs: Runs) -> None:
    data = _decoded(runs.get(attack.id), attack.id)
    assert data["id"] == attack.id
    assert data["max_rss_kib"] <= RSS_BOUND_KIB, (
        f"{attack.id}: peak memory {data['max_rss_kib'] // 1024} MiB: gas underprices memory"
    )
    check_outcome(attack, data)
    if runs_twice(attack):
        again = _decoded(runs.get(attack.id, SEEDS[1]), attack.id)
        assert _stable(again) == _stable(data), (
            f"the result depends on the process (PYTHONHASHSEED, {dict(attack.second_env)})"
        )


def test_catalogue_is_large_unique_and_covers_every_family() -> None:
    assert len(ATTACKS) >= ENTRIES_MIN
    ids = [attack.id for attack in ATTACKS]
    assert len(set(ids)) == len(ids), sorted(i for i in ids if ids.count(i) > 1)
    assert all(i == i.lower() and " " not in i and "_" not in i for i in ids)
    assert {attack.family for attack in ATTACKS} == set(FAMILIES)
    for attack in ATTACKS:
        assert attack.why, attack.id
        assert attack.expect != "rejected" or not attack.calls, attack.id
        assert attack.expect != "stopped" or (attack.calls and attack.status), attack.id
        assert attack.expect != "harmless" or attack.check is not None, attack.id
    cves = {a.id.split("-")[1] + "-" + a.id.split("-")[2] for a in ATTACKS if a.id[:4] == "cve-"}
    assert len(cves) == 6, cves  # the six RestrictedPython CVEs since 2023
    seeds = {a.family for a in ATTACKS if a.hash_seeds}
    assert "nondeterminism" in seeds and "hash-collision" in seeds


def test_the_nets_are_real() -> None:
    """The harness sees a breach: a memory hog dies at the limit, a hang meets the watchdog."""
    hog = run_runner("self-test-memory", SEEDS[0])
    assert hog.returncode not in (None, 0)
    assert "MemoryError" in hog.stderr
    with pytest.raises(AssertionError, match="safety net tripped"):
        _decoded(hog, "self-test-memory")
    hang = run_runner("self-test-hang", SEEDS[0], timeout=1.0)
    assert hang.returncode is None
    with pytest.raises(AssertionError, match="watchdog"):
        _decoded(hang, "self-test-hang")
