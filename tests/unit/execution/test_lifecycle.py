"""Unit tests for `taihang.execution.lifecycle`: deployed Python contracts through the executor.

Transactions are really signed and decoded; state is a dict-backed reader seeded from a real
genesis document and advanced block by block with each block's write set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from execution_keys import addr, key_of, make_genesis

from taihang.codec import Value, decode_value, encode_value
from taihang.crypto import get_suite
from taihang.errors import ContractReverted
from taihang.execution import BlockContext, Executor, build_genesis_writes, execute_query
from taihang.execution.state import state_key
from taihang.ledger.genesis import MemberSpec
from taihang.ledger.receipt import Receipt
from taihang.ledger.transaction import (
    Transaction,
)
from taihang.testing.ledger import DictState, sign_tx

SUITE = get_suite("ed25519")
CHANNEL = "main"
ALICE, BOB, CAROL = 12, 13, 14  # Alice and Bob in org1, Carol in org2
TOKEN = (Path(__file__).parents[3] / "examples" / "contracts" / "token.py").read_text()


GENESIS = make_genesis(
    CHANNEL,
    [
        MemberSpec(public_key=key_of(ALICE).hex(), org="org1", roles=["admin", "member"]),
        MemberSpec(public_key=key_of(BOB).hex(), org="org1", roles=["member"]),
        MemberSpec(public_key=key_of(CAROL).hex(), org="org2", roles=["member"]),
    ],
)

COUNTER = """
@public
def init(ctx, start):
    ctx.storage.set("count", start)
    ctx.emit("Init", start)

@public
def bump(ctx, by):
    count = ctx.storage.get("count", 0) + by
    ctx.storage.set("count", count)
    require(by < 100, "too big")
    return count

@public
def spin(ctx):
    n = 0
    while True:
        n += 1

@public
def poke(ctx, other, method, args):
    return ctx.call(other, method, args)

@public
def who(ctx):
    return [ctx.sender, ctx.org]

@view
def count(ctx):
    return ctx.storage.get("count", 0)

@view
def digest(ctx, data):
    return ctx.crypto.hash(data)
"""

COUNTER_V2 = COUNTER.replace("count = ctx.storage.get", "count = 1000 + ctx.storage.get")


class Chain(DictState):
    """A dict state advanced one block per `send`, with the senders' nonces tracked."""

    def __init__(self) -> None:
        super().__init__(build_genesis_writes(GENESIS))
        self.nonces: dict[int, int] = {}
        self.height = 1
        self.executor = Executor(SUITE)

    def send(
        self, who: int, contract: str, method: str, *args: Any, gas_limit: int = 5_000_000
    ) -> Receipt:
        nonce = self.nonces.get(who, 0)
        tx = _signed(who, nonce, contract, method, list(args), gas_limit)
        block = BlockContext(channel=CHANNEL, height=self.height, timestamp_ms=self.height * 1000)
        result = self.executor.execute_block(self, block, [tx])
        self.apply(result.writes)
        self.nonces[who] = nonce + 1
        self.height += 1
        return result.receipts[0]

    def query(self, contract: str, method: str, *args: Value) -> Value:
        return execute_query(self.executor, self, contract, method, list(args))

    def value(self, namespace: str, key: str) -> Value:
        raw = self.data.get(state_key(namespace, key))
        return None if raw is None else decode_value(raw)


def _signed(
    who: int, nonce: int, contract: str, method: str, args: list[Value], gas_limit: int
) -> Transaction:
    return sign_tx(who, nonce, contract, method, args, channel=CHANNEL, gas_limit=gas_limit)


def ret(receipt: Receipt) -> Value:
    return decode_value(bytes(receipt.return_value))


def ok(receipt: Receipt) -> Receipt:
    assert receipt.status == "ok", receipt.error_message
    return receipt


@pytest.fixture
def chain() -> Chain:
    return Chain()


def deploy(chain: Chain, name: str = "counter", source: str = COUNTER, *init: Value) -> Receipt:
    return chain.send(ALICE, "contracts", "deploy", name, source, "1.0", list(init or (5,)))


def test_deploy_records_the_contract_and_runs_init_once(chain: Chain) -> None:
    receipt = ok(deploy(chain))
    assert [e.name for e in receipt.events] == ["Deployed", "Init"]
    assert chain.query("counter", "count") == 5
    info = chain.query("contracts", "get", "counter")
    assert isinstance(info, dict)
    assert info == {
        "name": "counter",
        "version": "1.0",
        "source_hash": info["source_hash"],
        "deployer": addr(ALICE),
        "org": "org1",
        "frozen": False,
    }
    assert isinstance(info["source_hash"], bytes) and len(info["source_hash"]) == 32
    assert chain.query("contracts", "list") == [info]
    assert chain.value("contracts", "contract/counter") is not None
    # init is not callable after deploy
    again = chain.send(ALICE, "counter", "init", 99)
    assert again.status == "reverted"
    assert chain.query("counter", "count") == 5


def test_invoke_returns_value_and_writes_only_its_namespace(chain: Chain) -> None:
    ok(deploy(chain))
    receipt = ok(chain.send(BOB, "counter", "bump", 3))
    assert ret(receipt) == 8
    assert receipt.gas_used > 0
    assert chain.value("counter", "count") == 8
    assert ret(ok(chain.send(CAROL, "counter", "who"))) == [addr(CAROL), "org2"]


def test_existing_name_and_builtin_names_are_refused(chain: Chain) -> None:
    ok(deploy(chain))
    second = deploy(chain, "counter", COUNTER_V2)
    assert second.status == "reverted"
    assert "already exists" in second.error_message
    for name in ("asset", "kv", "members", "contracts", "nonces"):
        receipt = deploy(chain, name)
        assert receipt.status == "reverted"
        assert "reserved" in receipt.error_message
    bad = deploy(chain, "Bad-Name")
    assert bad.status == "reverted"


def test_compile_error_reverts_with_line_and_reason(chain: Chain) -> None:
    source = "@public\ndef f(ctx):\n    import os\n"
    receipt = deploy(chain, "broken", source)
    assert receipt.status == "reverted"
    assert receipt.error_message.startswith("compile error at line 3:")
    assert chain.query("contracts", "get", "broken") is None
    assert chain.query("contracts", "list") == []


def test_failed_init_reverts_the_whole_deploy(chain: Chain) -> None:
    source = "@public\ndef init(ctx):\n    ctx.storage.set('x', 1)\n    revert('no')\n"
    receipt = chain.send(ALICE, "contracts", "deploy", "failing", source, "1", [])
    assert receipt.status == "reverted"
    assert receipt.error_message == "no"
    assert chain.query("contracts", "get", "failing") is None
    assert chain.value("failing", "x") is None


def test_upgrade_keeps_state_and_needs_the_deployers_org(chain: Chain) -> None:
    ok(deploy(chain))
    refused = chain.send(CAROL, "contracts", "upgrade", "counter", COUNTER_V2, "2.0")
    assert refused.status == "reverted"
    assert "org1" in refused.error_message
    before = chain.query("contracts", "get", "counter")
    ok(chain.send(BOB, "contracts", "upgrade", "counter", COUNTER_V2, "2.0"))
    after = chain.query("contracts", "get", "counter")
    assert isinstance(before, dict) and isinstance(after, dict)
    assert after["version"] == "2.0"
    assert after["source_hash"] != before["source_hash"]
    assert chain.query("counter", "count") == 5  # state kept, init not run again
    assert ret(ok(chain.send(BOB, "counter", "bump", 1))) == 1006


def test_freeze_refuses_calls_until_unfrozen(chain: Chain) -> None:
    ok(deploy(chain))
    assert chain.send(CAROL, "contracts", "freeze", "counter").status == "reverted"
    ok(chain.send(BOB, "contracts", "freeze", "counter"))
    info = chain.query("contracts", "get", "counter")
    assert isinstance(info, dict) and info["frozen"] is True
    frozen = chain.send(CAROL, "counter", "bump", 1)
    assert frozen.status == "reverted"
    assert "frozen" in frozen.error_message
    assert chain.query("counter", "count") == 5  # queries still answer
    ok(chain.send(ALICE, "contracts", "unfreeze", "counter"))
    assert ret(ok(chain.send(CAROL, "counter", "bump", 1))) == 6


def test_revert_rolls_back_writes_but_consumes_the_nonce(chain: Chain) -> None:
    ok(deploy(chain))
    receipt = chain.send(BOB, "counter", "bump", 500)
    assert receipt.status == "reverted"
    assert receipt.error_message == "too big"
    assert receipt.gas_used > 0
    assert chain.query("counter", "count") == 5
    assert ret(ok(chain.send(BOB, "counter", "bump", 1))) == 6  # the next nonce is accepted


def test_out_of_gas_uses_the_whole_limit_and_rolls_back(chain: Chain) -> None:
    ok(deploy(chain))
    receipt = chain.send(BOB, "counter", "spin", gas_limit=200_000)
    assert receipt.status == "out_of_gas"
    assert receipt.gas_used == 200_000
    assert chain.query("counter", "count") == 5
    used = ok(chain.send(BOB, "counter", "bump", 1)).gas_used
    low = chain.send(BOB, "counter", "bump", 1, gas_limit=used - 100)
    assert low.status == "out_of_gas"
    assert low.gas_used == used - 100
    assert chain.query("counter", "count") == 6


def test_unknown_method_and_contract_revert(chain: Chain) -> None:
    ok(deploy(chain))
    assert chain.send(BOB, "counter", "nope").status == "reverted"
    missing = chain.send(BOB, "ghost", "bump", 1)
    assert missing.status == "reverted"
    assert "no contract named 'ghost'" in missing.error_message
    with pytest.raises(ContractReverted):
        chain.query("ghost", "count")
    with pytest.raises(ContractReverted):
        chain.query("counter", "bump", 1)  # not a @view


def test_cross_contract_call_shares_the_transaction(chain: Chain) -> None:
    ok(deploy(chain, "first"))
    ok(deploy(chain, "second"))
    receipt = ok(chain.send(BOB, "first", "poke", "second", "bump", [2]))
    assert ret(receipt) == 7
    assert chain.query("second", "count") == 7
    assert chain.query("first", "count") == 5
    # the callee sees the calling contract as its sender, without an org
    assert ret(ok(chain.send(BOB, "first", "poke", "second", "who", []))) == ["first", ""]
    # a failing callee fails the caller and rolls back both
    failed = chain.send(BOB, "first", "poke", "second", "bump", [200])
    assert failed.status == "reverted"
    assert failed.error_message == "too big"
    assert chain.query("second", "count") == 7
    # only deployed Python contracts can be called
    builtin = chain.send(BOB, "first", "poke", "asset", "transfer", [addr(ALICE), 1])
    assert builtin.status == "reverted"


def test_view_query_uses_the_channel_suite(chain: Chain) -> None:
    ok(deploy(chain))
    assert chain.query("counter", "digest", b"abc") == SUITE.hash(b"abc")


def test_token_example_end_to_end(chain: Chain) -> None:
    ok(chain.send(ALICE, "contracts", "deploy", "token", TOKEN, "1", [1_000]))
    receipt = ok(chain.send(ALICE, "token", "transfer", addr(BOB), 300))
    assert [e.name for e in receipt.events] == ["Transfer"]
    assert chain.query("token", "balance_of", addr(ALICE)) == 700
    assert chain.query("token", "balance_of", addr(BOB)) == 300
    short = chain.send(BOB, "token", "transfer", addr(CAROL), 301)
    assert short.status == "reverted"
    assert short.error_message == "insufficient balance"
    assert chain.query("token", "balance_of", addr(CAROL)) == 0


SCANNER = """
@public
def init(ctx):
    for key in ["user/bob", "user/alice", "user/carol", "user/\\u00e9", "user/z", "users", "other"]:
        ctx.storage.set(key, len(key))
    ctx.storage.delete("user/carol")

@public
def scan(ctx, prefix, limit):
    return ctx.storage.items(prefix, limit)

@view
def peek(ctx, prefix, limit):
    return ctx.storage.items(prefix, limit)

@public
def put(ctx, key, value):
    ctx.storage.set(key, value)

@public
def churn(ctx):
    ctx.storage.set("user/new", "n")
    ctx.storage.delete("user/alice")
    return ctx.storage.items("user/", 10)

@public
def churn_then_fail(ctx):
    ctx.storage.set("user/ghost", "g")
    ctx.storage.delete("user/bob")
    require(False, "changed my mind")

@public
def hide_then_scan(ctx, count, scans):
    # Delete `count` stored keys, then scan past them `scans` times for one entry each.
    for i in range(count):
        ctx.storage.delete("many/" + str(1000 + i))
    for i in range(scans):
        ctx.storage.items("many/", 1)
    require(False, "undo")  # keep the keys for the next measurement

@public
def fill(ctx, count):
    for i in range(count + 1):
        ctx.storage.set("many/" + str(1000 + i), i)

@public
def drain(ctx, size):
    # Take the prefix a page at a time, deleting each page before reading the next.
    taken = []
    while True:
        page = ctx.storage.items("user/", size)
        if not page:
            return taken
        for key, value in page:
            taken.append([key, value])
            ctx.storage.delete(key)
"""
# In key-byte order: "é" (0xc3 0xa9) after every ASCII key; "user/carol" was deleted by init.
USERS: list[Value] = [["user/alice", 10], ["user/bob", 8], ["user/z", 6], ["user/é", 6]]


def peek(chain: Chain, contract: str, prefix: str, limit: int) -> Value:
    """A view's result as a client sees it (encoded: the runtime's tuples become lists)."""
    return decode_value(encode_value(chain.query(contract, "peek", prefix, limit)))


def test_storage_items_lists_a_prefix_in_order_in_calls_and_views(chain: Chain) -> None:
    ok(chain.send(ALICE, "contracts", "deploy", "scanner", SCANNER, "1", []))
    called = ret(ok(chain.send(ALICE, "scanner", "scan", "user/", 10)))
    assert called == USERS  # "users" and "other" are outside the prefix
    assert peek(chain, "scanner", "user/", 10) == called
    assert ret(ok(chain.send(ALICE, "scanner", "scan", "user/", 2))) == USERS[:2]
    assert peek(chain, "scanner", "user/", 2) == USERS[:2]
    assert peek(chain, "scanner", "", 100) == [["other", 5], *USERS, ["users", 5]]
    assert peek(chain, "scanner", "user/b", 10) == [["user/bob", 8]]
    assert peek(chain, "scanner", "nothing/", 10) == []


def test_storage_items_sees_only_the_contracts_own_namespace(chain: Chain) -> None:
    ok(chain.send(ALICE, "contracts", "deploy", "tok", SCANNER, "1", []))
    ok(chain.send(ALICE, "contracts", "deploy", "token", SCANNER, "1", []))
    ok(chain.send(ALICE, "token", "put", "user/b", "token's"))
    ok(chain.send(ALICE, "token", "put", "a", "token's"))
    assert peek(chain, "tok", "user/", 10) == USERS
    assert peek(chain, "tok", "", 100) == [["other", 5], *USERS, ["users", 5]]
    assert ["user/b", "token's"] in peek(chain, "token", "user/", 10)  # type: ignore[operator]


def test_storage_items_sees_the_transactions_own_writes(chain: Chain) -> None:
    ok(chain.send(ALICE, "contracts", "deploy", "scanner", SCANNER, "1", []))
    churned = [["user/bob", 8], ["user/new", "n"], ["user/z", 6], ["user/é", 6]]
    assert ret(ok(chain.send(ALICE, "scanner", "churn"))) == churned
    assert peek(chain, "scanner", "user/", 10) == churned


def test_storage_items_sees_earlier_transactions_of_the_block_but_not_rollbacks(
    chain: Chain,
) -> None:
    ok(chain.send(ALICE, "contracts", "deploy", "scanner", SCANNER, "1", []))
    nonce = chain.nonces[ALICE]
    txs = [
        _signed(ALICE, nonce, "scanner", "put", ["user/b", "same block"], 5_000_000),
        _signed(ALICE, nonce + 1, "scanner", "churn_then_fail", [], 5_000_000),
        _signed(ALICE, nonce + 2, "scanner", "scan", ["user/", 10], 5_000_000),
    ]
    block = BlockContext(channel=CHANNEL, height=chain.height, timestamp_ms=chain.height * 1000)
    put, failed, scan = chain.executor.execute_block(chain, block, txs).receipts
    ok(put)
    assert failed.status == "reverted" and failed.error_message == "changed my mind"
    assert ret(ok(scan)) == [USERS[0], ["user/b", "same block"], *USERS[1:]]


def test_storage_items_pages_through_a_prefix_while_deleting(chain: Chain) -> None:
    ok(chain.send(ALICE, "contracts", "deploy", "scanner", SCANNER, "1", []))
    for i in range(7):
        ok(chain.send(ALICE, "scanner", "put", f"user/{i}", i))
    expected = [[f"user/{i}", i] for i in range(7)] + USERS
    assert ret(ok(chain.send(ALICE, "scanner", "drain", 3))) == expected
    assert peek(chain, "scanner", "user/", 100) == []
    assert peek(chain, "scanner", "", 100) == [["other", 5], ["users", 5]]


def test_storage_items_charges_by_limit_and_size(chain: Chain) -> None:
    ok(chain.send(ALICE, "contracts", "deploy", "scanner", SCANNER, "1", []))
    small = ok(chain.send(ALICE, "scanner", "scan", "user/", 1)).gas_used
    large = ok(chain.send(ALICE, "scanner", "scan", "user/", 1000)).gas_used
    assert large - small >= 999 * 50  # the limit is paid for up front
    reverted = chain.send(ALICE, "scanner", "scan", "user/", 1001)
    assert reverted.status != "ok"


def test_storage_items_charges_for_keys_hidden_by_the_blocks_deletes(chain: Chain) -> None:
    # Deleted keys are read and skipped on every scan: without a price per entry examined, a
    # contract could delete many keys once and then rescan them for the price of one entry.
    ok(chain.send(ALICE, "contracts", "deploy", "scanner", SCANNER, "1", []))
    ok(chain.send(ALICE, "scanner", "fill", 400))
    once = chain.send(ALICE, "scanner", "hide_then_scan", 0, 20).gas_used
    hidden = chain.send(ALICE, "scanner", "hide_then_scan", 400, 0).gas_used
    both = chain.send(ALICE, "scanner", "hide_then_scan", 400, 20).gas_used
    # The twenty scans cost at least 400 scan items more each once 400 keys hide the prefix.
    assert both - hidden - once >= 20 * 400 * 50


def test_same_block_gives_the_same_writes_and_receipts() -> None:
    first, second = Chain(), Chain()
    for chain in (first, second):
        ok(deploy(chain))
        ok(chain.send(BOB, "counter", "bump", 4))
    assert first.data == second.data


def test_runtime_faults_escape_and_halt_execution(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(deploy(chain))

    def broken(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr("taihang.execution.lifecycle.call_contract", broken)
    with pytest.raises(MemoryError):
        chain.send(BOB, "counter", "bump", 1)
