"""`init --observers`: non-voting observers in genesis, their homes, configs and roles."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taihang.cli.hosts import HostSpec
from taihang.cli.main import app
from taihang.cli.network import (
    NETWORK_FILE,
    OBSERVERS_MAX,
    Network,
    init_network,
    load_network,
)
from taihang.cli.up import format_status_table, load_or_init_network
from taihang.errors import ConfigurationError, InvalidCertificate
from taihang.ledger.genesis import Genesis, load_genesis_json
from taihang.node.config import PeerConfig, load_config
from taihang.node.pki import verify_certificate_chain
from taihang.node.safety import SAFETY_FILE
from taihang.sdk.keys import load_key


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Network:
    return init_network(tmp_path_factory.mktemp("observed") / "net", nodes=4, observers=2)


def load_genesis(path: Path) -> Genesis:
    return load_genesis_json((path / "genesis.json").read_bytes())


def test_init_network_lists_observers_after_validators(observed: Network) -> None:
    assert [(e.name, e.org, e.role) for e in observed.nodes] == [
        ("node1", "org1", "validator"),
        ("node2", "org2", "validator"),
        ("node3", "org3", "validator"),
        ("node4", "org4", "validator"),
        ("observer1", "org1", "observer"),
        ("observer2", "org2", "observer"),
    ]


def test_init_network_genesis_lists_observers_apart_from_validators(observed: Network) -> None:
    genesis = load_genesis(observed.path)
    assert [v.name for v in genesis.validators] == ["node1", "node2", "node3", "node4"]
    observers = observed.nodes[4:]
    assert len(genesis.observers) == 2
    for spec, entry in zip(genesis.observers, observers, strict=True):
        assert (spec.name, spec.org) == (entry.name, entry.org)
        assert spec.public_key == load_key(entry.home / "node_key.json").public_key.hex()
        assert (entry.home / "genesis.json").read_bytes() == (
            observed.path / "genesis.json"
        ).read_bytes()


def test_init_network_observer_home_has_key_safety_record_and_tls(observed: Network) -> None:
    for entry in observed.nodes[4:]:
        assert entry.home == observed.path / "nodes" / entry.name
        for name in ("node_key.json", SAFETY_FILE, "tls.pem", "tls.key", "config.toml"):
            assert (entry.home / name).is_file(), name
        assert stat.S_IMODE((entry.home / "tls.key").stat().st_mode) == 0o600
        assert load_key(entry.home / "node_key.json").development


def test_init_network_observer_certificates_chain_to_their_org_ca(observed: Network) -> None:
    for entry in observed.nodes[4:]:
        cert = (entry.home / "tls.pem").read_bytes()
        verify_certificate_chain(cert, (observed.path / "orgs" / entry.org / "ca.pem").read_bytes())
        with pytest.raises(InvalidCertificate):
            verify_certificate_chain(
                cert, (observed.path / "orgs" / "org4" / "ca.pem").read_bytes()
            )


def test_init_network_observer_config_dials_every_validator(observed: Network) -> None:
    validators = [load_config(e.home / "config.toml") for e in observed.nodes[:4]]
    expected = [PeerConfig(name=v.name, host="127.0.0.1", port=v.p2p.port) for v in validators]
    api_ports = {v.api.port for v in validators}
    for entry in observed.nodes[4:]:
        config = load_config(entry.home / "config.toml")
        assert config.name == entry.name and config.channel == observed.channel
        assert config.p2p.port == 0  # it dials the validators; nobody dials it
        assert config.p2p.peers == expected
        assert config.api.port == entry.api_port and config.api.port not in api_ports
        api_ports.add(config.api.port)
    for config in validators:  # validators do not list observers
        assert all(peer.name.startswith("node") for peer in config.p2p.peers)


def test_init_network_records_the_observer_role_in_the_network_file(observed: Network) -> None:
    data = tomllib.loads((observed.path / NETWORK_FILE).read_text())
    assert [n.get("role") for n in data["nodes"]] == [None] * 4 + ["observer"] * 2
    assert [e.role for e in load_network(observed.path).nodes] == ["validator"] * 4 + [
        "observer"
    ] * 2


def test_init_network_spreads_observers_over_the_orgs_in_turn(tmp_path: Path) -> None:
    network = init_network(tmp_path / "net", nodes=2, observers=3)
    assert [(e.name, e.org) for e in network.nodes[2:]] == [
        ("observer1", "org1"),
        ("observer2", "org2"),
        ("observer3", "org1"),
    ]


def test_cli_init_refuses_observers_of_a_one_node_network(tmp_path: Path) -> None:
    home = tmp_path / "net"
    args = ["init", "--nodes", "1", "--observers", "1", "--home", str(home)]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ConfigurationError)
    assert "--nodes 2 or more" in str(result.exception)
    assert not home.exists()  # refused before anything is written


@pytest.mark.parametrize("observers", [-1, OBSERVERS_MAX + 1])
def test_init_network_refuses_observer_counts_out_of_range(tmp_path: Path, observers: int) -> None:
    with pytest.raises(ConfigurationError, match="--observers must be between"):
        init_network(tmp_path / "net", nodes=4, observers=observers)
    assert not (tmp_path / "net").exists()


def test_init_network_refuses_observers_of_a_hosted_network(tmp_path: Path) -> None:
    hosts = {"node1": HostSpec("10.0.0.11"), "node2": HostSpec("10.0.0.12")}
    with pytest.raises(ConfigurationError, match="observers are local-only"):
        init_network(tmp_path / "net", nodes=2, observers=1, hosts=hosts)
    assert not (tmp_path / "net").exists()


def test_load_network_refuses_an_unknown_role(tmp_path: Path) -> None:
    (tmp_path / NETWORK_FILE).write_text(
        'channel = "default"\ncrypto = "ed25519"\n'
        '[[nodes]]\nname = "node1"\nhome = "nodes/node1"\napi_port = 8545\nrole = "leader"\n'
    )
    with pytest.raises(ConfigurationError, match="unknown role 'leader'"):
        load_network(tmp_path)


def test_status_json_has_each_node_role(observed: Network) -> None:
    result = CliRunner().invoke(app, ["status", "--json", "--home", str(observed.path)])
    assert result.exit_code == 0, result.output
    nodes = json.loads(result.output)["nodes"]
    assert [(n["name"], n["role"]) for n in nodes] == [(e.name, e.role) for e in observed.nodes]
    assert nodes[4]["p2p_port"] is None  # an observer does not listen for peers


def test_status_table_shows_roles_only_when_there_are_observers(observed: Network) -> None:
    result = CliRunner().invoke(app, ["status", "--home", str(observed.path)])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split()[:4] == ["NAME", "ROLE", "STATE", "HEIGHT"]
    assert rows[0].split()[:3] == ["node1", "validator", "stopped"]
    assert rows[5].split()[:3] == ["observer2", "observer", "stopped"]
    plain = [{**n, "role": "validator"} for n in json_nodes(observed)[:4]]
    assert format_status_table(plain, now_ms=0)[0].split()[:2] == ["NAME", "STATE"]


def json_nodes(network: Network) -> list[dict[str, object]]:
    result = CliRunner().invoke(app, ["status", "--json", "--home", str(network.path)])
    nodes: list[dict[str, object]] = json.loads(result.output)["nodes"]
    return nodes


def test_load_or_init_network_creates_observers(tmp_path: Path) -> None:
    network = load_or_init_network(tmp_path / "net", nodes=2, crypto="ed25519", observers=1)
    assert [e.role for e in network.nodes] == ["validator", "validator", "observer"]


def test_load_or_init_network_ignores_observers_of_an_existing_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init_network(tmp_path / "net", nodes=2, observers=1)
    network = load_or_init_network(tmp_path / "net", nodes=2, crypto="ed25519", observers=3)
    assert len(network.nodes) == 3
    out = capsys.readouterr().out
    assert "1 observer(s); --observers is ignored" in out and "--nodes" not in out
