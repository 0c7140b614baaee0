"""`init_network`: organisations with their own CAs, node homes, ports, peers and genesis."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from taihang.cli.network import (
    DEV_KEY_BALANCE,
    NETWORK_FILE,
    NODES_MAX,
    Network,
    find_free_ports,
    init_network,
    load_network,
)
from taihang.errors import ConfigurationError, InvalidCertificate
from taihang.ledger.genesis import Genesis, load_genesis_json
from taihang.node.config import NodeConfig, PeerConfig, load_config
from taihang.node.pki import verify_certificate_chain
from taihang.sdk.keys import load_key


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> Network:
    return init_network(tmp_path_factory.mktemp("four") / "net", nodes=4)


def load_configs(network: Network) -> list[NodeConfig]:
    return [load_config(entry.home / "config.toml") for entry in network.nodes]


def load_genesis(path: Path) -> Genesis:
    return load_genesis_json((path / "genesis.json").read_bytes())


def test_init_network_defaults_to_four_nodes(tmp_path: Path) -> None:
    network = init_network(tmp_path / "net")
    assert [e.name for e in network.nodes] == ["node1", "node2", "node3", "node4"]


def test_init_network_gives_each_org_its_own_ca(four: Network) -> None:
    orgs = sorted(p.name for p in (four.path / "orgs").iterdir())
    assert orgs == ["org1", "org2", "org3", "org4"]
    cas = {(four.path / "orgs" / org / "ca.pem").read_bytes() for org in orgs}
    assert len(cas) == 4
    for org in orgs:
        assert stat.S_IMODE((four.path / "orgs" / org / "ca.key").stat().st_mode) == 0o600


def test_init_network_node_certificates_chain_to_their_own_org_ca(four: Network) -> None:
    for i, entry in enumerate(four.nodes, start=1):
        assert entry.org == f"org{i}"
        cert = (entry.home / "tls.pem").read_bytes()
        verify_certificate_chain(cert, (four.path / "orgs" / entry.org / "ca.pem").read_bytes())
        other = f"org{i % 4 + 1}"
        with pytest.raises(InvalidCertificate):
            verify_certificate_chain(cert, (four.path / "orgs" / other / "ca.pem").read_bytes())


def test_init_network_configs_have_distinct_ports_and_every_other_node_as_peer(
    four: Network,
) -> None:
    configs = load_configs(four)
    ports = [c.api.port for c in configs] + [c.p2p.port for c in configs]
    assert len(set(ports)) == 8 and 0 not in ports
    by_name = {c.name: c for c in configs}
    for config in configs:
        assert config.p2p.host == "127.0.0.1"
        assert config.p2p.peers == [
            PeerConfig(name=other.name, host="127.0.0.1", port=other.p2p.port)
            for other in configs
            if other.name != config.name
        ]
    for entry in four.nodes:  # network.toml records the same ports
        assert entry.api_port == by_name[entry.name].api.port
        assert entry.p2p_port == by_name[entry.name].p2p.port


def test_init_network_genesis_lists_every_org_and_validator(four: Network) -> None:
    genesis = load_genesis(four.path)
    assert [(o.id, o.name) for o in genesis.orgs] == [
        (f"org{i}", f"Organisation {i}") for i in range(1, 5)
    ]
    for org in genesis.orgs:
        assert org.ca_cert_pem == (four.path / "orgs" / org.id / "ca.pem").read_text()
    assert len(genesis.validators) == 4
    for validator, entry in zip(genesis.validators, four.nodes, strict=True):
        assert (validator.name, validator.org, validator.weight) == (entry.name, entry.org, 1)
        node_key = load_key(entry.home / "node_key.json")
        assert validator.public_key == node_key.public_key.hex()
        assert (entry.home / "genesis.json").read_bytes() == (
            four.path / "genesis.json"
        ).read_bytes()
    admin = load_key(four.keystore.path_for("admin"))
    [member] = genesis.members
    assert (member.public_key, member.org) == (admin.public_key.hex(), "org1")
    assert member.roles == ["admin", "issuer", "member"]
    assert [(b.address, b.amount) for b in genesis.balances] == [(admin.address, DEV_KEY_BALANCE)]


def test_init_network_with_one_node_has_no_p2p(tmp_path: Path) -> None:
    network = init_network(tmp_path / "net", nodes=1)
    [entry] = network.nodes
    assert (entry.name, entry.org, entry.p2p_port) == ("node1", "org1", 0)
    [config] = load_configs(network)
    assert config.p2p.port == 0 and config.p2p.peers == []
    assert sorted(p.name for p in (network.path / "orgs").iterdir()) == ["org1"]
    genesis = load_genesis(network.path)
    assert [o.id for o in genesis.orgs] == ["org1"]
    assert [(v.name, v.org, v.weight) for v in genesis.validators] == [("node1", "org1", 1)]


@pytest.mark.parametrize("nodes", [0, -1, NODES_MAX + 1])
def test_init_network_refuses_node_counts_out_of_range(tmp_path: Path, nodes: int) -> None:
    with pytest.raises(ConfigurationError, match="between 1 and 16"):
        init_network(tmp_path / "net", nodes=nodes)
    assert not (tmp_path / "net").exists()


def test_init_network_refuses_an_existing_network(tmp_path: Path) -> None:
    init_network(tmp_path / "net", nodes=1)
    with pytest.raises(ConfigurationError, match="already exists"):
        init_network(tmp_path / "net", nodes=1)


def test_init_network_refuses_a_bad_channel_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="channel"):
        init_network(tmp_path / "net", nodes=1, channel="Not A Name!")
    assert not (tmp_path / "net").exists()


def test_load_network_reads_a_file_without_p2p_ports(tmp_path: Path) -> None:
    """network.toml written before the multi-node network: no org, no P2P port."""
    (tmp_path / NETWORK_FILE).write_text(
        'channel = "default"\ncrypto = "ed25519"\n'
        'nodes = [{ name = "node1", home = "nodes/node1", api_port = 8545 }]\n'
    )
    [entry] = load_network(tmp_path).nodes
    assert (entry.name, entry.org, entry.api_port, entry.p2p_port) == ("node1", "org1", 8545, 0)


def test_find_free_ports_are_distinct() -> None:
    ports = find_free_ports(32)
    assert len(set(ports)) == 32 and all(0 < p < 65536 for p in ports)
