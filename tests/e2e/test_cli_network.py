"""`taihang up|status|down` as scripts use them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from e2e_support import TAIHANG, run_cli

from taihang.errors import TransientError
from taihang.sdk.client import Client

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
        assert node["peers"] == [] and node["leader"] == node["validator"]
        assert isinstance(node["round"], int) and isinstance(node["last_commit_ms"], int)
        table = run_cli("status", home=home).stdout.splitlines()
        assert table[1].split()[:2] == ["node1", "running"] and "s ago" in table[1]
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
    assert stopped["round"] is None and stopped["peers"] is None


def test_commands_without_a_network_say_so(tmp_path: Path) -> None:
    result = run_cli("status", "--json", home=tmp_path / "missing", check=False)
    assert result.returncode != 0
    assert "no network" in result.stderr


def test_up_with_demo_runs_until_interrupted(tmp_path: Path) -> None:
    """What `make up` runs: the network, a demo workload, and a clean stop on Ctrl-C."""
    home = tmp_path / "net"
    process = subprocess.Popen(
        [*TAIHANG, "up", "--home", str(home), "--demo"],  # 4 organisations, as `make up`
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if line.startswith("demo: height"):
                break
        assert any(line.startswith("demo: height") for line in lines), "".join(lines)
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            run_cli("down", home=home, check=False)
    nodes = status(home)
    assert len(nodes) == 4 and not any(node["running"] for node in nodes)
    with Client(str(nodes[0]["api"])) as client, pytest.raises(TransientError):
        client.status()


def test_four_orgs_status_and_restart_of_a_killed_node(tmp_path: Path) -> None:
    """`taihang status --json` lists every node; `up --detach` restarts one killed by PID."""
    home = tmp_path / "net"
    try:
        run_cli("up", "--detach", home=home)
        nodes = status(home)
        assert [n["name"] for n in nodes] == ["node1", "node2", "node3", "node4"]
        for node in nodes:
            assert node["running"] is True and isinstance(node["height"], int)
            assert len(node["peers"]) == 3  # type: ignore[arg-type]
        assert len({n["leader"] for n in nodes if n["leader"]}) >= 1
        victim = nodes[2]
        os.kill(int(victim["pid"]), signal.SIGKILL)  # type: ignore[call-overload]
        deadline = time.monotonic() + 10
        while status(home)[2]["running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status(home)[2]["running"] is False
        run_cli("up", "--detach", home=home)
        again = status(home)[2]
        assert again["running"] is True and again["pid"] != victim["pid"]
        assert isinstance(again["height"], int) and again["height"] >= int(victim["height"])  # type: ignore[call-overload]
    finally:
        run_cli("down", home=home, check=False)
