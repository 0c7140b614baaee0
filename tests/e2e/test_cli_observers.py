"""`taihang up --observers`: a non-voting observer starts with the validators and follows them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_support import run_cli

pytestmark = pytest.mark.e2e

FOLLOW_TIMEOUT_S = 15.0


def status(home: Path) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = json.loads(run_cli("status", "--json", home=home).stdout)["nodes"]
    return nodes


def test_up_starts_an_observer_that_follows_the_validators(tmp_path: Path) -> None:
    home = tmp_path / "net"
    try:
        run_cli("up", "--detach", "--observers", "1", home=home)
        nodes = status(home)
        assert [(n["name"], n["role"], n["running"]) for n in nodes] == [
            *((f"node{i}", "validator", True) for i in range(1, 5)),
            ("observer1", "observer", True),
        ]
        target = max(n["height"] for n in nodes if n["role"] == "validator")
        deadline = time.monotonic() + FOLLOW_TIMEOUT_S
        observer: dict[str, Any] = nodes[4]
        while (observer["height"] or 0) < target and time.monotonic() < deadline:
            time.sleep(0.2)
            observer = status(home)[4]
        assert observer["height"] >= target, observer
        assert observer["p2p_port"] is None  # it dials the validators; nobody dials it
    finally:
        run_cli("down", home=home, check=False)
    assert not any(n["running"] for n in status(home))
