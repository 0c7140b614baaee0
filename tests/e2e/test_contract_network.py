"""Python contracts on four real nodes: a token under steady load, and a hostile contract.

The token example is deployed with `taihang contract deploy`, the admin funds several
accounts, and those accounts send token transfers through every node for a while. Mid-run a
hostile contract (an endless loop, memory bombs, deep recursion, a huge power) is deployed and
invoked; each of its transactions must fail with `out_of_gas` or `reverted` while every node
keeps committing. At the end every transfer is `ok`, the token's balances sum to its supply and
are equal on every node, and after a clean stop every node holds the same blocks and execution
roots (spec: contracts.md, Determinism; "What the sandbox must hold against").
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cluster_support import (
    Call,
    Cluster,
    Load,
    check_agreement,
    init_cluster,
    setup_accounts,
    wait_advanced,
)
from e2e_support import Sender, admin_sender, run_cli

from taihang.constants import GAS_LIMIT_MAX
from taihang.sdk.models import Receipt
from taihang.sdk.tx import build_signed_tx

pytestmark = pytest.mark.e2e

TOKEN = Path(__file__).parents[2] / "examples" / "contracts" / "token.py"
SUPPLY = 1_000_000
HOLDERS = 6  # accounts that receive tokens and send transfers
FUNDS = 100_000
RATE = 60.0  # token transfers per second, over all senders
LOAD_S = 12.0

HOSTILE = """
@public
def spin(ctx):
    n = 0
    while True:
        n = n + 1


@public
def bomb(ctx):
    return "x" * 10 ** 9


@public
def double(ctx):
    s = "x"
    while True:
        s = s + s


@public
def identity(ctx):
    return ("x" * 10 ** 9) is None


@public
def reach(ctx):
    return ctx.host.storage_set("kv/owned", b"") is None


@public
def hoard(ctx):
    rows = []
    while True:
        rows.append([0] * 99999)


@public
def down(ctx, n):
    return down(ctx, n + 1)


@public
def bounce(ctx, n):
    return ctx.call(ctx.contract, "bounce", [n + 1])


@public
def power(ctx):
    return 10 ** 10 ** 10
"""
# Each hostile call and the receipt it must get: (method, args, status, error message).
HOSTILE_CALLS: list[tuple[str, list[Any], str, str]] = [
    ("spin", [], "out_of_gas", "OutOfGas"),
    ("bomb", [], "reverted", "limit exceeded: string bytes"),
    ("double", [], "reverted", "limit exceeded: string bytes"),
    ("identity", [], "reverted", "limit exceeded: string bytes"),
    ("reach", [], "reverted", "contract error: AttributeError"),
    ("hoard", [], "out_of_gas", "OutOfGas"),
    ("down", [0], "reverted", "limit exceeded: call depth"),
    ("bounce", [0], "reverted", "limit exceeded: call depth"),
    ("power", [], "reverted", "limit exceeded: int bits"),
]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(init_cluster(tmp_path / "net"))
    running.start_all()
    yield running
    running.cleanup()


def contract_cli(cluster: Cluster, *args: str, code: int = 0) -> Any:
    """`taihang contract ...` against the network directory (it talks to node1)."""
    result = run_cli("contract", *args, "--json", home=cluster.network.path, check=False)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


def submit(cluster: Cluster, name: str, txs: list[bytes]) -> list[str]:
    with cluster.client(name, timeout_s=10) as client:
        results = client.submit_batch(txs)
    assert all(r.ok and r.id is not None for r in results), results
    return [str(r.id) for r in results]


def receipt_of(cluster: Cluster, name: str, tx_id: str) -> tuple[Receipt, int]:
    with cluster.client(name, timeout_s=30) as client:
        status = client.wait_for_receipt(tx_id, timeout_s=60)
    assert status.receipt is not None and status.height is not None, f"{tx_id} not on {name}"
    return status.receipt, status.height


def token_transfer(sender: Sender, to: Sender, index: int) -> Call:
    return ("token", "transfer", [to.address, 1 + index % 7])


def balances(cluster: Cluster, name: str, owners: Sequence[str]) -> list[int]:
    with cluster.client(name, timeout_s=10) as client:
        return [int(client.query("token", "balance_of", [owner])) for owner in owners]


def hostile_tx(attacker: Sender, method: str, args: list[Any]) -> bytes:
    """A hostile call with the most gas a transaction may carry."""
    nonce = attacker.nonce
    attacker.nonce += 1
    return build_signed_tx(
        seed=attacker.seed,
        suite_name=attacker.network.crypto,
        channel=attacker.network.channel,
        nonce=nonce,
        contract="hostile",
        method=method,
        args=args,
        gas_limit=GAS_LIMIT_MAX,
        expires_at_height=100_000,
    )


def call_hostile(cluster: Cluster, attacker: Sender) -> list[str]:
    """Every hostile call, twice, each through the next node; their transaction ids."""
    ids: list[str] = []
    for round_ in range(2):
        for i, (method, args, _, _) in enumerate(HOSTILE_CALLS):
            name = cluster.names[(i + round_) % len(cluster.names)]
            ids += submit(cluster, name, [hostile_tx(attacker, method, args)])
    return ids


def test_token_load_and_hostile_contract_keep_four_nodes_agreeing(
    cluster: Cluster, tmp_path: Path
) -> None:
    accounts = setup_accounts(cluster, HOLDERS + 1)
    holders, attacker = accounts[:HOLDERS], accounts[HOLDERS]
    network = cluster.network

    deployed = contract_cli(
        cluster, "deploy", str(TOKEN), "--name", "token", "--args", json.dumps([SUPPLY])
    )
    assert deployed["status"] == "ok", deployed
    with cluster.client("node1", timeout_s=10) as client:
        admin = admin_sender(network, client)
    funded = submit(
        cluster, "node2", [admin.tx("token", "transfer", [h.address, FUNDS]) for h in holders]
    )
    for tx_id in funded:
        assert receipt_of(cluster, "node2", tx_id)[0].status == "ok"

    source = tmp_path / "hostile.py"
    source.write_text(HOSTILE)
    with Load(cluster, holders, RATE, call=token_transfer, batch=5) as load:
        time.sleep(LOAD_S / 4)
        # Mid-run, a member deploys a hostile contract and it is called through every node.
        before = cluster.heights()
        hostile = contract_cli(cluster, "deploy", str(source), "--name", "hostile")
        assert hostile["status"] == "ok", hostile
        spun = contract_cli(cluster, "invoke", "hostile", "spin", code=2)
        assert (spun["status"], spun["gas_used"]) == ("out_of_gas", 1_000_000), spun
        hostile_ids = call_hostile(cluster, attacker)
        for tx_id, (method, _, status, error) in zip(hostile_ids, HOSTILE_CALLS * 2, strict=True):
            receipt, _ = receipt_of(cluster, "node3", tx_id)
            assert (receipt.status, receipt.error_message) == (status, error), method
            assert receipt.gas_used > 0
            if status == "out_of_gas":
                assert receipt.gas_used == GAS_LIMIT_MAX, method
            assert receipt_of(cluster, "node1", tx_id)[0] == receipt
        during = cluster.heights()
        assert all((during[n] or 0) > (before[n] or 0) for n in cluster.names), (before, during)
        # The network keeps committing, on every node, after the attack as during it.
        wait_advanced(cluster, cluster.names, by=3)
        time.sleep(max(0.0, LOAD_S - (time.monotonic() - load.started)))
    assert not load.refused, load.refused[:5]
    assert len(load.accepted) >= RATE * LOAD_S / 2, len(load.accepted)

    # Every transfer committed and succeeded.
    last_height = 0
    with cluster.client("node1", timeout_s=30) as client:
        for tx_id in load.accepted:
            committed = client.wait_for_receipt(tx_id, timeout_s=60)
            assert committed.receipt is not None and committed.height is not None, tx_id
            assert committed.receipt.status == "ok", (tx_id, committed.receipt)
            last_height = max(last_height, committed.height)

    def all_executed() -> bool:
        for name in cluster.names:
            with cluster.client(name) as client:
                if client.status().executed_height < last_height:
                    return False
        return True

    cluster.wait_until(all_executed, timeout_s=30, what=f"every node to execute {last_height}")
    owners = [admin.address, *(h.address for h in holders), attacker.address]
    seen = {name: balances(cluster, name, owners) for name in cluster.names}
    assert sum(seen["node1"]) == SUPPLY, seen["node1"]
    assert all(b == seen["node1"] for b in seen.values()), seen
    assert seen["node1"][-1] == 0  # the attacker never held tokens
    moved = [b != FUNDS for b in seen["node1"][1:-1]]
    assert any(moved), seen["node1"]
    holder = holders[0].address
    called = contract_cli(cluster, "call", "token", "balance_of", "--args", json.dumps([holder]))
    assert called == seen["node1"][1]

    cluster.stop_all()
    assert check_agreement(network) >= 10
