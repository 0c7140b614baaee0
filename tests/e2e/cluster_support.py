"""Helpers for multi-node end-to-end tests: real node processes, a load thread, agreement checks.

A `Cluster` starts every node of a `taihang init` network as its own process (real TLS between
them, real disks, real signatures), and can kill, pause, resume and restart them. `Load`
submits transfers among registered accounts to whichever nodes answer, at a steady rate.
`check_agreement` opens every stopped node's store and compares block ids and execution roots
height by height; `check_supply` reads every account's balance from each node.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from e2e_support import TAIHANG, Sender, admin_sender

from taihang.cli.network import Network, NodeEntry, init_network
from taihang.codec import decode
from taihang.crypto import get_suite
from taihang.errors import TaihangError
from taihang.ledger.block import Block, compute_block_id
from taihang.node.chain import Chain
from taihang.node.home import NodeHome
from taihang.node.verify_ledger import verify_node_ledger
from taihang.sdk.client import Client

FUNDING = 1_000_000


def init_cluster(
    path: Path,
    nodes: int = 4,
    *,
    idle_block_interval_ms: int = 300,
    round_timeout_base_ms: int = 1_000,
    **consensus: int,
) -> Network:
    """A network whose round timer suits a test: a dead leader costs ~2 s, not 5."""
    import tomllib

    import tomli_w

    network = init_network(path, nodes=nodes)
    for entry in network.nodes:
        config_path = entry.home / "config.toml"
        config = tomllib.loads(config_path.read_text())
        config.setdefault("consensus", {}).update({"network_allowance_ms": 300, **consensus})
        config["consensus"]["round_timeout_base_ms"] = round_timeout_base_ms
        config["block"]["idle_block_interval_ms"] = idle_block_interval_ms
        config["block"]["min_block_interval_ms"] = min(50, idle_block_interval_ms)
        config_path.write_text(tomli_w.dumps(config))
    return network


@dataclass
class Cluster:
    network: Network
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def entry(self, name: str) -> NodeEntry:
        return next(e for e in self.network.nodes if e.name == name)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.network.nodes]

    def start(self, name: str) -> None:
        entry = self.entry(name)
        log = open(entry.home / "node.log", "ab")  # noqa: SIM115 - handed to the child
        self.processes[name] = subprocess.Popen(
            [*TAIHANG, "node", "start", "--home", str(entry.home)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    def start_all(self) -> None:
        for name in self.names:
            self.start(name)
        self.wait_until(lambda: all(h is not None and h >= 2 for h in self.heights().values()))

    def signal(self, name: str, sig: int) -> None:
        os.kill(self.processes[name].pid, sig)

    def kill(self, name: str) -> None:
        self.signal(name, signal.SIGKILL)
        self.processes[name].wait(10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            code = process.wait(30)
            assert code == 0, f"{name} exited with {code}: {self.log_tail(name)}"

    def cleanup(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGKILL)
                process.wait(10)

    def client(self, name: str, timeout_s: float = 2.0) -> Client:
        return Client(self.entry(name).api, timeout_s=timeout_s)

    def height(self, name: str) -> int | None:
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return None
        try:
            with self.client(name, timeout_s=1.0) as client:
                return client.status().height
        except TaihangError:
            return None

    def heights(self) -> dict[str, int | None]:
        return {name: self.height(name) for name in self.names}

    def wait_until(
        self, condition: Callable[[], bool], timeout_s: float = 60, what: str = ""
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        tails = "\n".join(f"--- {n}\n{self.log_tail(n)}" for n in self.names)
        raise AssertionError(
            f"timed out waiting for {what or condition}: {self.heights()}\n{tails}"
        )

    def log_tail(self, name: str) -> str:
        return (self.entry(name).home / "node.log").read_text(errors="replace")[-2500:]


def setup_accounts(cluster: Cluster, count: int) -> list[Sender]:
    """Register and fund `count` accounts through node1; return their senders."""
    network = cluster.network
    suite = get_suite(network.crypto)
    with cluster.client("node1", timeout_s=10) as client:
        admin = admin_sender(network, client)
        senders = [Sender(network, suite.tagged_hash(b"e2e", bytes([i]))) for i in range(count)]
        txs = [admin.tx("members", "add", [s.public_key, ["member"]]) for s in senders]
        txs += [admin.tx("asset", "issue", [s.address, FUNDING]) for s in senders]
        for start in range(0, len(txs), 40):  # stay under the per-sender nonce gap
            results = client.submit_batch(txs[start : start + 40])
            assert all(r.ok for r in results), results
            receipt = client.wait_for_receipt(str(results[-1].id), timeout_s=30).receipt
            assert receipt is not None and receipt.status == "ok", receipt
    return senders


Call = tuple[str, str, list[object]]  # (contract, method, args)


def asset_transfer(sender: Sender, to: Sender, index: int) -> Call:
    return ("asset", "transfer", [to.address, 1])


class Load:
    """Calls at about `rate` tx/s, each batch from the next sender to the next node that
    answers; `call(sender, recipient, index)` says what each transaction does (by default a
    transfer of 1). `refused` records what a node turned away, with its reason."""

    def __init__(
        self,
        cluster: Cluster,
        senders: list[Sender],
        rate: float,
        *,
        call: Callable[[Sender, Sender, int], Call] = asset_transfer,
        batch: int = 10,
    ) -> None:
        self.cluster = cluster
        self.senders = senders
        self.rate = rate
        self.call = call
        self.batch = batch
        self.accepted: list[str] = []
        self.refused: list[str] = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        batch = self.batch
        names = self.cluster.names
        turn = 0
        while not self._stop.is_set():
            started = time.monotonic()
            count = len(self.senders)
            sender = self.senders[turn % count]
            # Never the sender, and a different one each cycle, so balances really move.
            to = self.senders[(turn + 1 + (turn // count) % max(count - 1, 1)) % count]
            txs = [sender.tx(*self.call(sender, to, turn * batch + i)) for i in range(batch)]
            if not self._submit(names[turn % len(names)], txs):
                sender.nonce -= batch  # nothing admitted: reuse the nonces
            turn += 1
            time.sleep(max(0.0, batch / self.rate - (time.monotonic() - started)))

    def _submit(self, name: str, txs: list[bytes]) -> bool:
        if self.cluster.height(name) is None:
            return False
        try:
            with self.cluster.client(name) as client:
                results = client.submit_batch(txs)
        except TaihangError:
            return False
        self.accepted.extend(r.id for r in results if r.id is not None)
        self.refused.extend(f"{name}: {r.error}" for r in results if not r.ok)
        return all(r.ok for r in results)


def wait_all_receipts(cluster: Cluster, name: str, tx_ids: list[str]) -> None:
    """Every accepted transaction gets a receipt on node `name`."""
    with cluster.client(name, timeout_s=30) as client:
        for tx_id in tx_ids:
            status = client.wait_for_receipt(tx_id, timeout_s=60)
            assert status.receipt is not None, f"{tx_id} never committed on {name}"


def check_supply(cluster: Cluster, senders: list[Sender], name: str) -> None:
    """Balances of the admin and every account sum to the issued supply."""
    with cluster.client(name, timeout_s=10) as client:
        admin = admin_sender(cluster.network, client)
        supply = client.query("asset", "supply")
        total = sum(client.query("asset", "balance", [s.address]) for s in [admin, *senders])
    assert total == supply, f"{name}: balances sum to {total}, supply is {supply}"


def wait_advanced(cluster: Cluster, names: list[str], by: int, timeout_s: float = 30) -> None:
    """Wait until each of `names` is at least `by` blocks above where it is now."""
    start = {n: cluster.height(n) or 0 for n in names}
    cluster.wait_until(
        lambda: all((cluster.height(n) or 0) >= start[n] + by for n in names),
        timeout_s=timeout_s,
        what=f"{names} to commit {by} more blocks",
    )


def wait_caught_up(cluster: Cluster, name: str, timeout_s: float = 30) -> None:
    """Wait until `name` reaches the highest height any node has now."""
    target = max(h or 0 for h in cluster.heights().values())
    cluster.wait_until(
        lambda: (cluster.height(name) or 0) >= target,
        timeout_s=timeout_s,
        what=f"{name} to catch up to {target}",
    )


def finish(cluster: Cluster, load: Load, senders: list[Sender]) -> None:
    """How a fault test ends: every accepted transaction committed, supply intact on two
    nodes, and after a clean stop every node's store agrees with the others'."""
    assert load.accepted, "the load generator got nothing admitted"
    for name in cluster.names:
        wait_all_receipts(cluster, name, load.accepted[-20:])
    wait_all_receipts(cluster, "node1", load.accepted)
    check_supply(cluster, senders, "node1")
    check_supply(cluster, senders, "node4")
    cluster.stop_all()
    assert check_agreement(cluster.network) > 0


def check_agreement(network: Network) -> int:
    """Stopped nodes hold the same block ids and execution roots at every common height."""
    ledgers = []
    for entry in network.nodes:
        verify_node_ledger(entry.home)  # links, certificates, roots, the state tree itself
        home = NodeHome(entry.home)
        config = home.load_config()
        chain = Chain.open(home.data_path(config), home.load_genesis(config))
        try:
            ids = []
            for height in range(chain.tip_height + 1):
                raw = chain.store.find_block(height)
                assert raw is not None, f"{entry.name} lacks block {height}"
                ids.append(compute_block_id(chain.suite, decode(raw, Block).header))
            roots = [chain.exec_root_for(h) for h in range(chain.executed_height + 1)]
        finally:
            chain.close()
        ledgers.append((entry.name, ids, roots))
    common = min(len(ids) for _, ids, _ in ledgers)
    executed = min(len(roots) for _, _, roots in ledgers)
    first_name, first_ids, first_roots = ledgers[0]
    for name, ids, roots in ledgers[1:]:
        for height in range(common):
            assert ids[height] == first_ids[height], f"{name} and {first_name} fork at {height}"
        assert roots[:executed] == first_roots[:executed], f"{name}: state differs"
    return common - 1


def add_observer(network: Network, name: str = "observer1", org: str = "org1") -> NodeEntry:
    """A non-voting observer of `org` in genesis (before the first start), with its own home.

    Its key, safety record and TLS certificate (issued by the org's CA) are made as `init`
    makes a validator's; its config lists every validator as a peer and does not listen.
    The entry is appended to `network.nodes` in memory, so `Cluster` and `check_agreement`
    see it.
    """
    import msgspec

    from taihang.cli.network import find_free_port
    from taihang.ledger.genesis import ObserverSpec, encode_genesis_json, load_genesis_json
    from taihang.node.config import (
        ApiConfig,
        PeerConfig,
        load_config,
        save_config,
    )
    from taihang.node.pki import issue_node_certificate
    from taihang.node.safety import create_safety_record
    from taihang.sdk.keys import generate_seed, save_key

    suite = get_suite(network.crypto)
    home = network.path / "nodes" / name
    home.mkdir(parents=True)
    key = save_key(
        home / "node_key.json",
        generate_seed(suite),
        name=name,
        suite=suite,
        password=None,
        development=True,
    )
    create_safety_record(home)
    org_dir = network.path / "orgs" / org
    tls_key, tls_cert = issue_node_certificate(
        (org_dir / "ca.key").read_bytes(),
        (org_dir / "ca.pem").read_bytes(),
        node_name=name,
        org_id=org,
        hosts=["127.0.0.1"],
    )
    (home / "tls.key").write_bytes(tls_key)
    (home / "tls.key").chmod(0o600)
    (home / "tls.pem").write_bytes(tls_cert)
    genesis = load_genesis_json((network.path / "genesis.json").read_bytes())
    observer = ObserverSpec(name=name, org=org, public_key=key.public_key.hex())
    genesis = msgspec.structs.replace(genesis, observers=[*genesis.observers, observer])
    encoded = encode_genesis_json(genesis)
    for path in [network.path, *(e.home for e in network.nodes), home]:
        (path / "genesis.json").write_bytes(encoded)
    template = load_config(network.nodes[0].home / "config.toml")
    peers = [PeerConfig(e.name, "127.0.0.1", e.p2p_port) for e in network.nodes]
    api_port = find_free_port()
    config = msgspec.structs.replace(
        template,
        name=name,
        api=ApiConfig(port=api_port),
        p2p=msgspec.structs.replace(template.p2p, port=0, peers=peers, reconnect_ms_max=500),
    )
    save_config(home / "config.toml", config)
    entry = NodeEntry(name, home, api_port, 0, org, role="observer")
    network.nodes.append(entry)
    return entry
