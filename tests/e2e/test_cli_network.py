"""`taihang up|status|down` as scripts use them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_support import run_cli

pytestmark = pytest.mark.e2e


def status(home: Path) -> list[dict[str, object]]:
    nodes: list[dict[str, object]] = json.loads(run_cli("status", "--json", home=home).stdout)[
        "nodes"
    ]
    return nodes


def test_up_status_down_cycle(tmp_path: Path) -> None:
    home = tmp_path / "net"
    try:
        run_cli("up", "--detach", "--nodes", "1", home=home)
        [node] = status(home)
        assert node["running"] is True
        assert isinstance(node["height"], int) and node["height"] >= 1
        assert str(node["api"]).startswith("http://127.0.0.1:")
        pid = node["pid"]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert str((home / "nodes" / "node1").resolve()).encode() in cmdline
        run_cli("up", "--detach", home=home)  # existing network: nothing new starts
        [again] = status(home)
        assert again["pid"] == pid
    finally:
        run_cli("down", home=home, check=False)
    [stopped] = status(home)
    assert stopped["running"] is False
    assert stopped["height"] is None and stopped["pid"] is None


def test_commands_without_a_network_say_so(tmp_path: Path) -> None:
    result = run_cli("status", "--json", home=tmp_path / "missing", check=False)
    assert result.returncode != 0
    assert "no network" in result.stderr
