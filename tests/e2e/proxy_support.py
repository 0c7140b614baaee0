"""A multi-node cluster whose node-to-node links all go through a `FaultProxy`.

`init_proxied_cluster` makes a network with `cluster_support.init_cluster`, starts a proxy with
one route per ordered pair of nodes (A dialling B goes to the proxy's port for (A, B), which
forwards to B's real P2P port), and rewrites every node's `[p2p].peers` to those ports. Both
ends of a pair may dial (ADR 0006), so both directions are routed. The API ports and the
nodes' own listening ports are untouched: a test talks to each node directly.

The rewritten configs also lower `reconnect_ms_max`, so that a healed link is redialled within
about a second rather than five; the higher-named node of a pair waits that long before it
dials (the one-connection rule), and a test waits for every heal.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import tomli_w
from cluster_support import Cluster, init_cluster

from taihang.cli.network import Network
from taihang.testing.fault_proxy import FaultProxy

RECONNECT_MS_MAX = 1_000
PORT_TRIES = 5


def init_proxied_cluster(
    path: Path,
    nodes: int = 4,
    *,
    reconnect_ms_max: int = RECONNECT_MS_MAX,
    **timing: int,
) -> tuple[Cluster, FaultProxy]:
    """A cluster (not started) and its running proxy; the caller closes both."""
    network = init_cluster(path, nodes, **timing)
    proxy = start_proxy(network)
    try:
        for entry in network.nodes:
            route_peers_through(entry.home / "config.toml", entry.name, proxy, reconnect_ms_max)
    except BaseException:
        proxy.close()
        raise
    return Cluster(network), proxy


def start_proxy(network: Network) -> FaultProxy:
    """A proxy with a route for every ordered pair of nodes, on ports no node will take."""
    routes = {
        (a.name, b.name): ("127.0.0.1", b.p2p_port)
        for a in network.nodes
        for b in network.nodes
        if a.name != b.name
    }
    # `init` chose the nodes' ports but nothing holds them until the nodes start, so the OS
    # may hand one of them to a proxy listener: try again with fresh ports.
    taken = {e.api_port for e in network.nodes} | {e.p2p_port for e in network.nodes}
    for _ in range(PORT_TRIES):
        proxy = FaultProxy(routes)
        proxy.start()
        if taken.isdisjoint(proxy.ports.values()):
            return proxy
        proxy.close()
    raise AssertionError("the proxy kept getting the nodes' ports")


def route_peers_through(
    config_path: Path, name: str, proxy: FaultProxy, reconnect_ms_max: int
) -> None:
    """Point node `name`'s peers at the proxy's ports for (name, peer)."""
    config = tomllib.loads(config_path.read_text())
    p2p = config["p2p"]
    for peer in p2p["peers"]:
        peer["host"] = proxy.host
        peer["port"] = proxy.port(name, peer["name"])
    p2p["reconnect_ms_max"] = reconnect_ms_max
    config_path.write_text(tomli_w.dumps(config))
