"""Multi-host `init` (`--host`, `--hosts`), the hand-over layout, and the files in deploy/."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from typer.testing import CliRunner

from taihang.cli.hosts import HostSpec, load_hosts_file, parse_host_option, read_hosts
from taihang.cli.main import app
from taihang.cli.network import (
    DEFAULT_API_PORT,
    DEFAULT_P2P_PORT,
    HANDOVER_FILE,
    NETWORK_FILE,
    Network,
    init_network,
    load_network,
)
from taihang.errors import ConfigurationError
from taihang.node.config import NodeConfig, PeerConfig, load_config
from taihang.node.pki import verify_certificate_chain

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker" / "compose.yaml"
COMPOSE_HOSTS = DEPLOY / "docker" / "hosts.toml"
UNIT_FILE = DEPLOY / "systemd" / "taihang-node@.service"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"

FOUR_HOSTS = [
    "node1=10.0.0.11",
    "node2=db2.example.org",
    "node3=10.0.0.13:7061:8555",
    "node4=10.0.0.14",
]
ADDRESSES = {"node1": "10.0.0.11", "node2": "db2.example.org", "node3": "10.0.0.13"}
ADDRESSES["node4"] = "10.0.0.14"


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Network:
    hosts = read_hosts(None, FOUR_HOSTS)
    assert hosts is not None
    return init_network(tmp_path_factory.mktemp("hosted") / "net", nodes=4, hosts=hosts)


def load_node_config(network: Network, name: str) -> NodeConfig:
    [entry] = [e for e in network.nodes if e.name == name]
    return load_config(entry.home / "config.toml")


def write_hosts(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- parsing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "name", "spec"),
    [
        ("node1=10.0.0.11", "node1", HostSpec("10.0.0.11", DEFAULT_P2P_PORT, DEFAULT_API_PORT)),
        ("node2=db2.example.org:7052", "node2", HostSpec("db2.example.org", 7052, 8545)),
        ("node3=10.0.0.13:7061:8555", "node3", HostSpec("10.0.0.13", 7061, 8555)),
        ("node4=[2001:db8::4]", "node4", HostSpec("2001:db8::4", 7051, 8545)),
        ("node4=[2001:db8::4]:7000:8000", "node4", HostSpec("2001:db8::4", 7000, 8000)),
    ],
)
def test_parse_host_option_reads_address_and_ports(text: str, name: str, spec: HostSpec) -> None:
    assert parse_host_option(text) == (name, spec)


@pytest.mark.parametrize(
    "text",
    ["node1", "node1=", "=10.0.0.1", "node1=10.0.0.1:x", "node1=a:1:2:3", "node1=[::1", "n=[::1]x"],
)
def test_parse_host_option_refuses_malformed_text(text: str) -> None:
    with pytest.raises(ConfigurationError, match="must look like"):
        parse_host_option(text)


def test_load_hosts_file_reads_node_tables_with_overrides(tmp_path: Path) -> None:
    path = write_hosts(
        tmp_path / "hosts.toml",
        '[nodes.node1]\naddress = "10.0.0.11"\n'
        '[nodes.node2]\naddress = "h2.example"\np2p_port = 9000\napi_port = 9001\n'
        'listen = "10.0.0.12"\napi_host = "0.0.0.0"\n',
    )
    assert load_hosts_file(path) == {
        "node1": HostSpec("10.0.0.11"),
        "node2": HostSpec("h2.example", 9000, 9001, listen="10.0.0.12", api_host="0.0.0.0"),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[nodes.node1\naddress = 1", "hosts file"),  # not TOML
        ('[nodes.node1]\naddress = "a"\nport = 1\n', "unknown field"),
        ("[nodes.node1]\np2p_port = 1\n", "address"),
        ('[nodes.node1]\naddress = "a"\np2p_port = "x"\n', "Expected `int`"),
        ("", "names no node"),
    ],
)
def test_load_hosts_file_refuses_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    path = write_hosts(tmp_path / "hosts.toml", text)
    with pytest.raises(ConfigurationError, match=message):
        load_hosts_file(path)


def test_read_hosts_is_none_for_a_local_network() -> None:
    assert read_hosts(None, []) is None


def test_read_hosts_refuses_a_node_given_twice(tmp_path: Path) -> None:
    path = write_hosts(tmp_path / "hosts.toml", '[nodes.node1]\naddress = "10.0.0.11"\n')
    with pytest.raises(ConfigurationError, match=r"node1.*more than once"):
        read_hosts(path, ["node1=10.0.0.12"])


def test_read_hosts_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read hosts file"):
        read_hosts(tmp_path / "absent.toml", [])


# --- configs, certificates, listening hosts --------------------------------------------------
def test_init_hosted_peers_name_the_other_nodes_addresses_and_ports(hosted: Network) -> None:
    p2p_ports = {"node1": 7051, "node2": 7051, "node3": 7061, "node4": 7051}
    for name in ADDRESSES:
        config = load_node_config(hosted, name)
        assert config.p2p.port == p2p_ports[name]
        assert config.p2p.peers == [
            PeerConfig(name=other, host=ADDRESSES[other], port=p2p_ports[other])
            for other in ADDRESSES
            if other != name
        ]


def test_init_hosted_listens_on_all_interfaces_and_binds_the_api_to_loopback(
    hosted: Network,
) -> None:
    for name in ADDRESSES:
        config = load_node_config(hosted, name)
        assert config.p2p.host == "0.0.0.0"
        assert config.api.host == "127.0.0.1"
        assert config.api.port == (8555 if name == "node3" else 8545)


def test_init_hosted_certificates_name_the_node_address(hosted: Network) -> None:
    for entry in hosted.nodes:
        pem = (entry.home / "tls.pem").read_bytes()
        org_ca = (hosted.path / "orgs" / entry.org / "ca.pem").read_bytes()
        verify_certificate_chain(pem, org_ca)
        names = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        address = ADDRESSES[entry.name]
        if address.endswith(".org"):
            assert names.value.get_values_for_type(x509.DNSName) == [address]
            assert names.value.get_values_for_type(x509.IPAddress) == []
        else:
            assert names.value.get_values_for_type(x509.IPAddress) == [
                ipaddress.ip_address(address)
            ]
            assert names.value.get_values_for_type(x509.DNSName) == []


def test_init_hosted_network_file_records_addresses(hosted: Network) -> None:
    again = load_network(hosted.path)
    assert [(e.name, e.address, e.org) for e in again.nodes] == [
        (name, address, f"org{i}") for i, (name, address) in enumerate(ADDRESSES.items(), 1)
    ]
    assert again.nodes[2].api == "http://10.0.0.13:8555"


def test_init_hosted_overrides_from_the_hosts_file_and_options(tmp_path: Path) -> None:
    hosts = {
        "node1": HostSpec("10.0.0.11", listen="10.0.0.11", api_host="10.0.0.11"),
        "node2": HostSpec("2001:db8::2"),
    }
    network = init_network(tmp_path / "net", nodes=2, hosts=hosts, api_host="0.0.0.0")
    one, two = load_node_config(network, "node1"), load_node_config(network, "node2")
    assert (one.p2p.host, one.api.host) == ("10.0.0.11", "10.0.0.11")
    assert (two.p2p.host, two.api.host) == ("::", "0.0.0.0")  # IPv6 address: listen on ::
    assert one.p2p.peers == [PeerConfig(name="node2", host="2001:db8::2", port=7051)]
    org2 = load_network(network.path / "orgs" / "org2")
    assert org2.nodes[0].api == "http://127.0.0.1:8545"  # from its own host


def test_init_hosted_one_node_runs_without_p2p(tmp_path: Path) -> None:
    network = init_network(tmp_path / "net", nodes=1, hosts={"node1": HostSpec("10.0.0.11")})
    config = load_node_config(network, "node1")
    assert (config.p2p.port, config.p2p.peers) == (0, [])


# --- the hand-over layout --------------------------------------------------------------------
def test_init_hosted_gives_each_org_one_directory_with_only_its_own_secrets(
    hosted: Network,
) -> None:
    genesis = (hosted.path / "genesis.json").read_bytes()
    assert not (hosted.path / "nodes").exists()
    for i, entry in enumerate(hosted.nodes, start=1):
        org_dir = hosted.path / "orgs" / f"org{i}"
        assert entry.home == org_dir / f"node{i}"
        homes = sorted(p.name for p in org_dir.iterdir() if (p / "config.toml").exists())
        assert homes == [f"node{i}"]
        for secret in (org_dir / "ca.key", entry.home / "tls.key", entry.home / "node_key.json"):
            assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        for name in ("config.toml", "genesis.json", "safety.json", "tls.pem"):
            assert (entry.home / name).is_file()
        assert (org_dir / "genesis.json").read_bytes() == genesis
        assert (entry.home / "genesis.json").read_bytes() == genesis
        handover = (org_dir / HANDOVER_FILE).read_text()
        assert hashlib.sha256(genesis).hexdigest() in handover
        assert "Firewall: allow TCP" in handover
        keys = sorted(p.name for p in org_dir.rglob("*.key"))
        assert keys == ["ca.key", "tls.key"]  # its own CA and node key, nobody else's


def test_init_hosted_org_network_file_lists_only_its_nodes_on_loopback(hosted: Network) -> None:
    org3 = load_network(hosted.path / "orgs" / "org3")
    [entry] = org3.nodes
    assert (entry.name, entry.api) == ("node3", "http://127.0.0.1:8555")
    assert entry.home == hosted.path / "orgs" / "org3" / "node3"


def test_init_hosted_keeps_the_development_admin_with_org1(hosted: Network) -> None:
    assert [k.name for k in hosted.keystore.list()] == ["admin"]
    assert hosted.keystore.directory == hosted.path / "orgs" / "org1" / "keys"
    assert [k.name for k in load_network(hosted.path / "orgs" / "org1").keystore.list()] == [
        "admin"
    ]


def test_init_local_network_file_is_unchanged(tmp_path: Path) -> None:
    network = init_network(tmp_path / "net", nodes=2)
    text = (network.path / NETWORK_FILE).read_text()
    assert "address" not in text and "api_host" not in text and "keys" not in text
    assert network.nodes[0].home == network.path / "nodes" / "node1"
    assert network.nodes[0].api.startswith("http://127.0.0.1:")


# --- refusals write nothing ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ({"node1": HostSpec("10.0.0.11"), "node5": HostSpec("10.0.0.15")}, "unknown node"),
        ({"node1": HostSpec("10.0.0.11")}, "no address for node2"),
        ({"node1": HostSpec("10.0.0.1"), "node2": HostSpec("10.0.0.1")}, "already taken"),
        ({"node1": HostSpec("h", 7051, 8545), "node2": HostSpec("H", 8545, 9)}, "already taken"),
        ({"node1": HostSpec("10.0.0.1", 7051, 7051), "node2": HostSpec("b")}, "already taken"),
        ({"node1": HostSpec("bad_name!"), "node2": HostSpec("b")}, "neither an IP"),
        ({"node1": HostSpec("a", 70000), "node2": HostSpec("b")}, "out of range"),
        ({"node1": HostSpec("a", listen="any"), "node2": HostSpec("b")}, "IP address"),
        ({"node1": HostSpec("a", api_host="::"), "node2": HostSpec("b")}, "IPv4"),
    ],
)
def test_init_hosted_refuses_bad_hosts_and_writes_nothing(
    tmp_path: Path, hosts: dict[str, HostSpec], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        init_network(tmp_path / "net", nodes=2, hosts=hosts)
    assert not (tmp_path / "net").exists()


def test_cli_init_with_hosts_prints_the_hand_over(tmp_path: Path) -> None:
    home = tmp_path / "net"
    result = CliRunner().invoke(app, ["init", "--home", str(home), *_host_args(FOUR_HOSTS)])
    assert result.exit_code == 0, result.output
    assert "hand over one directory to each organisation" in result.output
    assert f"{home.resolve() / 'orgs' / 'org2'}/  ->  org2 (node2 at db2.example.org)" in (
        result.output
    )
    assert len(load_network(home).nodes) == 4  # the count follows the hosts


def test_cli_init_with_a_malformed_hosts_file_writes_nothing(tmp_path: Path) -> None:
    hosts = write_hosts(tmp_path / "hosts.toml", "[nodes.node1]\nadress = '10.0.0.1'\n")
    home = tmp_path / "net"
    result = CliRunner().invoke(app, ["init", "--home", str(home), "--hosts", str(hosts)])
    assert isinstance(result.exception, ConfigurationError)
    assert "unknown field `adress`" in result.exception.message
    assert not home.exists()


def test_cli_init_refuses_listen_options_for_a_local_network(tmp_path: Path) -> None:
    home = tmp_path / "net"
    result = CliRunner().invoke(app, ["init", "--home", str(home), "--api-host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "multi-host" in result.output
    assert not home.exists()


def _host_args(hosts: list[str]) -> list[str]:
    return [arg for host in hosts for arg in ("--host", host)]


# --- deploy/: compose, systemd, Dockerfile ---------------------------------------------------
def load_compose_services(text: str) -> dict[str, dict[str, Any]]:
    """The services of compose.yaml: with PyYAML when installed, else from its simple layout."""
    try:
        import yaml
    except ImportError:
        return _parse_compose_services(text)
    services: dict[str, dict[str, Any]] = yaml.safe_load(text)["services"]
    return services


def _parse_compose_services(text: str) -> dict[str, dict[str, Any]]:
    body = text.split("\nservices:\n", 1)[1].split("\nnetworks:\n", 1)[0]
    services: dict[str, dict[str, Any]] = {}
    for block in re.split(r"\n(?=  \w[\w-]*:\n)", body.strip("\n")):
        lines = block.splitlines()
        service: dict[str, Any] = {"volumes": [], "ports": []}
        key = ""
        for line in lines[1:]:
            if match := re.fullmatch(r"    (\w+):\s*(.*)", line):
                key, value = match.groups()
                if key == "command":
                    service[key] = json.loads(value)
                elif value:
                    service[key] = value
            elif match := re.fullmatch(r"      - (.+)", line):
                service.setdefault(key, []).append(match.group(1).strip('"'))
        services[lines[0].strip().rstrip(":")] = service
    return services


def test_compose_services_mount_the_homes_init_writes_for_the_compose_hosts(
    tmp_path: Path,
) -> None:
    network_dir = tmp_path / "docker" / "network"  # deploy/docker/network, as the docs say
    hosts = read_hosts(COMPOSE_HOSTS, [])
    assert hosts is not None
    network = init_network(network_dir, nodes=len(hosts), hosts=hosts)
    services = load_compose_services(COMPOSE_FILE.read_text())
    assert sorted(services) == [e.name for e in network.nodes]
    for entry in network.nodes:
        service = services[entry.name]
        config = load_config(entry.home / "config.toml")
        [volume] = service["volumes"]
        source, target = volume.split(":")
        assert source == f"./network/{entry.home.relative_to(network.path)}"
        assert service["command"] == ["node", "start", "--home", target]
        assert service.get("hostname", entry.name) == entry.name == entry.address
        assert service["ports"] == [f"127.0.0.1:{config.api.port}:{config.api.port}"]
        assert config.api.host == "0.0.0.0"  # inside the container, published on loopback
        assert config.p2p.host == "0.0.0.0" and config.p2p.port == DEFAULT_P2P_PORT
        assert {p.host for p in config.p2p.peers} == set(services) - {entry.name}
        names = x509.load_pem_x509_certificate((entry.home / "tls.pem").read_bytes())
        san = names.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [entry.name]


def test_compose_file_uses_the_locally_built_image() -> None:
    text = COMPOSE_FILE.read_text()
    assert "image: taihang:dev" in text
    assert "docker build -f deploy/docker/Dockerfile -t taihang:dev ." in text
    assert "--hosts deploy/docker/hosts.toml" in text


def test_systemd_unit_starts_the_instance_home_with_hardening() -> None:
    lines = UNIT_FILE.read_text().splitlines()
    settings = dict(line.split("=", 1) for line in lines if re.match(r"\w+=", line))
    assert settings["ExecStart"] == (
        "/opt/taihang/venv/bin/taihang node start --home /var/lib/taihang/%i"
    )
    assert settings["User"] == "taihang" and settings["Restart"] == "on-failure"
    assert settings["ReadWritePaths"] == "/var/lib/taihang/%i"
    assert int(settings["LimitNOFILE"]) >= 4096
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict")]:
        assert settings[key] == value
    assert settings["WantedBy"] == "multi-user.target"


def test_dockerfile_builds_a_non_root_image_with_the_cli_entrypoint() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"^USER taihang:taihang$", text, re.M)
    assert 'ENTRYPOINT ["taihang"]' in text
    assert f"EXPOSE {DEFAULT_P2P_PORT} {DEFAULT_API_PORT}" in text
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[1:4] == ["*", "!pyproject.toml", "!README.md"]  # no network dir, no keys
