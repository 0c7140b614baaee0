"""`taihang init|up|status` without running nodes: defaults, status fields, the status table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from taihang.cli.main import app
from taihang.cli.network import init_network
from taihang.cli.up import collect_status, format_status_table, load_or_init_network
from taihang.errors import ConfigurationError

STATUS_FIELDS = {
    "name",
    "role",
    "org",
    "api",
    "p2p_port",
    "home",
    "running",
    "pid",
    "height",
    "round",
    "leader",
    "peers",
    "last_commit_ms",
    "validator",
}
ADDRESS_1 = "a1" * 20
ADDRESS_2 = "b2" * 20


def test_cli_init_defaults_to_four_organisations(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", "--home", str(tmp_path / "net")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "net" / "orgs").iterdir()) == [
        "org1",
        "org2",
        "org3",
        "org4",
    ]


def test_cli_init_refuses_seventeen_nodes(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", "--nodes", "17", "--home", str(tmp_path / "net")])
    assert isinstance(result.exception, ConfigurationError)


def test_status_json_of_a_stopped_network_lists_every_node(tmp_path: Path) -> None:
    network = init_network(tmp_path / "net", nodes=4)
    result = CliRunner().invoke(app, ["status", "--json", "--home", str(network.path)])
    assert result.exit_code == 0, result.output
    nodes = json.loads(result.output)["nodes"]
    assert [n["name"] for n in nodes] == ["node1", "node2", "node3", "node4"]
    for node, entry in zip(nodes, network.nodes, strict=True):
        assert set(node) == STATUS_FIELDS
        assert node["running"] is False
        assert node["api"] == entry.api and node["p2p_port"] == entry.p2p_port
        for field in ("pid", "height", "round", "leader", "peers", "last_commit_ms"):
            assert node[field] is None


def test_status_table_of_a_stopped_network(tmp_path: Path) -> None:
    network = init_network(tmp_path / "net", nodes=1)
    result = CliRunner().invoke(app, ["status", "--home", str(network.path)])
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()
    assert header.split()[:3] == ["NAME", "STATE", "HEIGHT"]
    assert row.split()[:3] == ["node1", "stopped", "-"]
    assert row.endswith(network.nodes[0].api)


def node_row(name: str, **reported: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(STATUS_FIELDS)
    row.update(name=name, api=f"http://127.0.0.1:1000{name[-1]}", running=False)
    row.update(reported)
    return row


def test_format_status_table_names_the_leader_and_says_how_long_ago() -> None:
    nodes = [
        node_row(
            "node1",
            running=True,
            pid=41,
            height=12,
            round=14,
            leader=ADDRESS_2,
            peers=["node2"],
            last_commit_ms=99_600,
            validator=ADDRESS_1,
        ),
        node_row(
            "node2",
            running=True,
            pid=42,
            height=11,
            round=14,
            leader=ADDRESS_2,
            peers=[],
            last_commit_ms=40_000,
            validator=ADDRESS_2,
        ),
        node_row("node3"),
    ]
    header, first, second, third = format_status_table(nodes, now_ms=100_000)
    assert header.split() == [
        "NAME", "STATE", "HEIGHT", "ROUND", "LEADER", "PEERS", "LAST", "COMMIT", "PID", "API",
    ]  # fmt: skip
    assert first.split() == [
        "node1", "running", "12", "14", "node2", "node2", "0.4", "s", "ago", "41",
        "http://127.0.0.1:10001",
    ]  # fmt: skip
    assert second.split()[4:9] == ["node2", "none", "60", "s", "ago"]
    assert third.split() == ["node3", "stopped", *["-"] * 6, "http://127.0.0.1:10003"]
    assert first.index("node2") == header.index("LEADER")  # columns line up


def test_format_status_table_shortens_an_unknown_leader_address() -> None:
    nodes = [node_row("node1", running=True, height=3, round=3, leader=ADDRESS_2, peers=[])]
    _, row = format_status_table(nodes, now_ms=0)
    assert f"{ADDRESS_2[:10]}..." in row.split()
    assert "never" in row.split()  # it answered, but has not committed since it started


def test_load_or_init_network_creates_four_nodes_by_default(tmp_path: Path) -> None:
    network = load_or_init_network(tmp_path / "net", nodes=None, crypto="ed25519")
    assert len(network.nodes) == 4


def test_load_or_init_network_keeps_an_existing_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init_network(tmp_path / "net", nodes=1)
    network = load_or_init_network(tmp_path / "net", nodes=4, crypto="sm")
    assert len(network.nodes) == 1 and network.crypto == "ed25519"
    out = capsys.readouterr().out
    assert "--nodes is ignored" in out and "--crypto is ignored" in out


def test_collect_status_of_a_stopped_network(tmp_path: Path) -> None:
    init_network(tmp_path / "net", nodes=2)
    nodes = collect_status(tmp_path / "net")
    assert [(n["name"], n["org"], n["running"], n["height"]) for n in nodes] == [
        ("node1", "org1", False, None),
        ("node2", "org2", False, None),
    ]
