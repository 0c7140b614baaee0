"""Replays every seed in `regressions.json`: each once made the simulator report a violation.

An entry marked `"open": true` is a known bug that is not fixed yet; its replay is expected to
fail (strict xfail), so the fix turns up as an unexpected pass and the mark must then go.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taihang.sim.plan import MASKABLE_KINDS
from taihang.sim.runner import SimOptions, build_replay_command, run_seed

REGRESSIONS = Path(__file__).with_name("regressions.json")
ENTRY_KEYS = {"seed", "nodes", "crypto", "found"}
OPTIONAL_KEYS = {"without", "open", "fixed", "byzantine", "mode"}


def load_regressions() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(REGRESSIONS.read_text())["seeds"]
    return entries


def build_options(entry: dict[str, Any]) -> SimOptions:
    return SimOptions(
        nodes=entry["nodes"],
        crypto=entry["crypto"],
        byzantine=entry.get("byzantine", 0),
        without=frozenset(entry.get("without", [])),
        mode=entry.get("mode", "random"),
    )


def test_regressions_file_is_well_formed() -> None:
    data = json.loads(REGRESSIONS.read_text())
    assert "to add one" in data["comment"].lower()
    keys = set()
    for entry in data["seeds"]:
        assert ENTRY_KEYS <= set(entry) <= ENTRY_KEYS | OPTIONAL_KEYS, entry
        assert isinstance(entry["seed"], int) and entry["nodes"] in (4, 7, 10, 16), entry
        assert set(entry.get("without", [])) <= set(MASKABLE_KINDS), entry
        assert entry.get("mode", "random") in ("random", "twins"), entry
        key = (
            entry["seed"],
            entry["nodes"],
            entry["crypto"],
            entry.get("byzantine", 0),
            tuple(entry.get("without", [])),
            entry.get("mode", "random"),
        )
        assert key not in keys, f"duplicate entry {entry}"
        keys.add(key)


@pytest.mark.parametrize(
    "entry", load_regressions(), ids=lambda e: f"seed{e['seed']}-n{e['nodes']}-{e['crypto']}"
)
def test_regression_seed_replays_without_violation(
    entry: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    if entry.get("open"):
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"open: {entry['found']}"))
    options = build_options(entry)
    result = run_seed(entry["seed"], options)
    replay = build_replay_command(entry["seed"], options, entry["nodes"])
    assert result.violation is None, f"{result.violation}\n  replay: {replay}"
