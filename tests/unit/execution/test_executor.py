"""Unit tests for `taihang.execution.executor` and the built-in contracts it runs.

The state is a dict-backed `StateReader` seeded from a real genesis document; every
transaction is really signed and decoded, so the executor sees exactly what a node gives it.
"""

from __future__ import annotations

from typing import Any

import pytest
from execution_keys import addr, key_of, make_genesis
from hypothesis import given, settings
from hypothesis import strategies as st

from taihang.codec import Value, decode_value, encode, encode_value
from taihang.crypto import get_suite
from taihang.errors import ContractReverted
from taihang.execution import BlockContext, Executor, build_genesis_writes, execute_query
from taihang.execution import executor as executor_module
from taihang.execution import gas as gas_prices
from taihang.execution.context import CallContext, ViewContext
from taihang.execution.executor import (
    BlockResult,
    builtin_contracts,
    find_member,
    get_account_nonce,
    nonce_key,
)
from taihang.execution.state import state_key
from taihang.ledger.genesis import BalanceSpec, MemberSpec
from taihang.ledger.receipt import Receipt
from taihang.ledger.transaction import (
    Transaction,
)
from taihang.testing import ledger

SUITE = get_suite("ed25519")
CHANNEL = "main"
HEIGHT = 5

ADMIN, ISSUER, ALICE, BOB, OUTSIDER, ADMIN2, CAROL = 10, 11, 12, 13, 14, 15, 16


GENESIS = make_genesis(
    CHANNEL,
    [
        MemberSpec(public_key=key_of(ADMIN).hex(), org="org1", roles=["admin"]),
        MemberSpec(public_key=key_of(ISSUER).hex(), org="org1", roles=["member", "issuer"]),
        MemberSpec(public_key=key_of(ALICE).hex(), org="org2", roles=["member"]),
        MemberSpec(public_key=key_of(BOB).hex(), org="org2", roles=["member"]),
        MemberSpec(public_key=key_of(ADMIN2).hex(), org="org2", roles=["admin", "member"]),
    ],
    balances=[
        BalanceSpec(address=addr(ALICE), amount=1_000),
        BalanceSpec(address=addr(BOB), amount=500),
    ],
)
SUPPLY = 1_500


class DictState(ledger.DictState):
    def value(self, namespace: str, key: str) -> Value:
        raw = self.data.get(state_key(namespace, key))
        return None if raw is None else decode_value(raw)


def fresh_state() -> DictState:
    return DictState(build_genesis_writes(GENESIS))


def make_tx(
    who: int,
    nonce: int,
    contract: str,
    method: str,
    args: tuple[Any, ...] = (),
    *,
    gas_limit: int = 1_000_000,
    expires_at_height: int = 100,
    channel: str = CHANNEL,
) -> Transaction:
    """A signed, decoded transaction."""
    return ledger.sign_tx(
        who,
        nonce,
        contract,
        method,
        list(args),
        channel=channel,
        gas_limit=gas_limit,
        expires_at_height=expires_at_height,
    )


def run(
    txs: list[Transaction],
    state: DictState | None = None,
    *,
    executor: Executor | None = None,
    height: int = HEIGHT,
) -> BlockResult:
    executor = executor or Executor(SUITE)
    block = BlockContext(channel=CHANNEL, height=height, timestamp_ms=1_000 * height)
    return executor.execute_block(state or fresh_state(), block, txs)


def only(result: BlockResult) -> Receipt:
    assert len(result.receipts) == 1
    return result.receipts[0]


def events_of(receipt: Receipt) -> list[tuple[str, str, Value]]:
    return [(e.contract, e.name, decode_value(bytes(e.data))) for e in receipt.events]


def balance(state: DictState, who: int | str) -> int:
    address = who if isinstance(who, str) else addr(who)
    value = state.value("asset", f"balance/{address}")
    return 0 if value is None else value


# ----------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("tx", "reason"),
    [
        (make_tx(OUTSIDER, 0, "kv", "put", ("k", 1)), "not a member"),
        (make_tx(ALICE, 1, "kv", "put", ("k", 1)), "nonce 1"),
        (make_tx(ALICE, 0, "kv", "put", ("k", 1), expires_at_height=HEIGHT - 1), "expired"),
        (make_tx(ALICE, 0, "kv", "put", ("k", 1), channel="other"), "channel"),
    ],
)
def test_execute_block_rejects_without_changing_anything(tx: Transaction, reason: str) -> None:
    result = run([tx])
    receipt = only(result)
    assert receipt.status == "rejected"
    assert reason in receipt.error_message
    assert receipt.gas_used == 0
    assert receipt.tx_id == tx.id
    assert receipt.events == []
    assert result.writes == {}
    assert result.nonces == {tx.sender: 0}


def test_execute_block_accepts_a_transaction_in_its_last_height() -> None:
    tx = make_tx(ALICE, 0, "kv", "put", ("k", 1), expires_at_height=HEIGHT)
    assert only(run([tx])).status == "ok"


def test_execute_block_rejects_a_replayed_nonce_in_the_same_block() -> None:
    tx = make_tx(ALICE, 0, "kv", "put", ("k", 1))
    result = run([tx, tx])
    assert [r.status for r in result.receipts] == ["ok", "rejected"]
    assert result.nonces == {addr(ALICE): 1}


# ----------------------------------------------------------------------------- reverts


@pytest.mark.parametrize(
    ("tx", "message"),
    [
        (make_tx(ALICE, 0, "asset", "transfer", (addr(BOB), 1_001)), "insufficient balance"),
        (make_tx(ALICE, 0, "asset", "burn", (addr(BOB), 1)), "no method 'burn'"),
        (make_tx(ALICE, 0, "nothing", "call", ()), "no contract named 'nothing'"),
        (make_tx(ALICE, 0, "asset", "transfer", (addr(BOB),)), "takes 2 arguments"),
        (make_tx(ALICE, 0, "asset", "transfer", ("bob", 1)), "to must be"),
        (make_tx(ALICE, 0, "asset", "transfer", (addr(BOB).upper(), 1)), "to must be"),
        (make_tx(ALICE, 0, "asset", "transfer", (addr(BOB), 0)), "amount must be"),
        (make_tx(ALICE, 0, "asset", "transfer", (addr(BOB), -1)), "amount must be"),
        (make_tx(ALICE, 0, "asset", "transfer", (addr(BOB), True)), "amount must be"),
        (make_tx(ALICE, 0, "asset", "transfer", (addr(BOB), 2**63)), "amount must be"),
        (make_tx(ALICE, 0, "kv", "put", ("", 1)), "key must be"),
        (make_tx(ALICE, 0, "kv", "put", (5, 1)), "key must be"),
        (make_tx(ALICE, 0, "kv", "put", ("x" * 257, 1)), "key must be"),
        (make_tx(ALICE, 0, "members", "remove", ()), "no method"),
    ],
)
def test_execute_block_reverts_but_consumes_the_nonce(tx: Transaction, message: str) -> None:
    state = fresh_state()
    result = run([tx], state)
    receipt = only(result)
    assert receipt.status == "reverted"
    assert message in receipt.error_message
    assert receipt.gas_used > 0
    assert receipt.events == []
    assert decode_value(bytes(receipt.return_value)) is None
    assert result.writes == {nonce_key(addr(ALICE)): encode_value(1)}
    assert result.nonces == {addr(ALICE): 1}
    state.apply(result.writes)
    assert (balance(state, ALICE), balance(state, BOB)) == (1_000, 500)


class WriteThenFail:
    """A contract that writes, emits and then reverts (or not), to watch the rollback."""

    name = "faulty"

    def call(self, ctx: CallContext, method: str, args: list[Value]) -> Value:
        ctx.write("a", 1)
        ctx.delete("b")
        ctx.emit("Wrote", None)
        if method == "fail":
            raise ContractReverted("changed my mind")
        return "done"

    def view(self, ctx: ViewContext, method: str, args: list[Value]) -> Value:
        return ctx.read(args[0])


def test_execute_block_rolls_back_the_writes_of_a_reverted_call() -> None:
    executor = Executor(SUITE, {**builtin_contracts(), "faulty": WriteThenFail()})
    state = fresh_state()
    state.data[state_key("faulty", "b")] = encode_value("kept")
    txs = [
        make_tx(ALICE, 0, "faulty", "ok", ()),
        make_tx(BOB, 0, "faulty", "fail", ()),
    ]
    result = run(txs, state, executor=executor)
    ok, failed = result.receipts
    assert ok.status == "ok" and decode_value(bytes(ok.return_value)) == "done"
    assert events_of(ok) == [("faulty", "Wrote", None)]
    assert failed.status == "reverted" and failed.error_message == "changed my mind"
    assert failed.events == []
    # the first call's writes stay, the second's are gone, and both nonces are consumed
    assert result.writes == {
        nonce_key(addr(ALICE)): encode_value(1),
        state_key("faulty", "a"): encode_value(1),
        state_key("faulty", "b"): None,
        nonce_key(addr(BOB)): encode_value(1),
    }


def test_execute_block_rolls_back_a_reverted_call_over_earlier_writes_in_the_block() -> None:
    executor = Executor(SUITE, {**builtin_contracts(), "faulty": WriteThenFail()})
    state = fresh_state()
    txs = [make_tx(ALICE, 0, "kv", "put", ("k", "v")), make_tx(ALICE, 1, "faulty", "fail", ())]
    result = run(txs, state, executor=executor)
    assert [r.status for r in result.receipts] == ["ok", "reverted"]
    state.apply(result.writes)
    assert state.value("kv", f"{addr(ALICE)}/k") == "v"
    assert state.value("faulty", "a") is None
    assert get_account_nonce(state, addr(ALICE)) == 2


# ----------------------------------------------------------------------------- gas


def test_execute_block_runs_out_of_gas_with_a_tiny_limit() -> None:
    result = run([make_tx(ALICE, 0, "kv", "put", ("k", "v"), gas_limit=1)])
    receipt = only(result)
    assert receipt.status == "out_of_gas"
    assert receipt.gas_used == 1
    assert receipt.error_message == "OutOfGas"
    assert result.writes == {nonce_key(addr(ALICE)): encode_value(1)}


def test_execute_block_charges_the_documented_prices() -> None:
    tx = make_tx(ALICE, 0, "kv", "put", ("k", "v"), gas_limit=60_000)
    receipt = only(run([tx]))
    assert receipt.status == "ok"
    expected = (
        gas_prices.TX_BASE
        + gas_prices.TX_PER_BYTE * tx.size
        + gas_prices.WRITE
        + gas_prices.WRITE_PER_BYTE * len(encode_value("v"))
        + gas_prices.EVENT
    )
    assert receipt.gas_used == expected


def test_execute_block_rolls_back_writes_when_gas_runs_out_mid_call() -> None:
    # Gas limits from 256 to 65535 encode in the same width, so the size (and the base
    # charge) does not change between these transactions.
    needed = only(run([make_tx(ALICE, 0, "kv", "put", ("k", "v"), gas_limit=60_000)])).gas_used
    assert 256 <= needed - 1 < 60_000
    result = run([make_tx(ALICE, 0, "kv", "put", ("k", "v"), gas_limit=needed - 1)])
    receipt = only(result)
    assert receipt.status == "out_of_gas"
    assert receipt.gas_used == needed - 1
    assert receipt.events == []
    assert result.writes == {nonce_key(addr(ALICE)): encode_value(1)}  # the put is gone
    assert only(run([make_tx(ALICE, 0, "kv", "put", ("k", "v"), gas_limit=needed)])).status == "ok"


# ----------------------------------------------------------------------------- asset


def test_asset_transfer_moves_balances_and_emits_transfer() -> None:
    state = fresh_state()
    result = run([make_tx(ALICE, 0, "asset", "transfer", (addr(BOB), 300))], state)
    receipt = only(result)
    assert receipt.status == "ok"
    assert events_of(receipt) == [
        ("asset", "Transfer", {"from": addr(ALICE), "to": addr(BOB), "amount": 300})
    ]
    state.apply(result.writes)
    assert (balance(state, ALICE), balance(state, BOB)) == (700, 800)
    assert state.value("asset", "supply") == SUPPLY


def test_asset_transfer_to_a_new_address_and_to_oneself() -> None:
    state = fresh_state()
    txs = [
        make_tx(ALICE, 0, "asset", "transfer", (addr(OUTSIDER), 1_000)),
        make_tx(BOB, 0, "asset", "transfer", (addr(BOB), 500)),
    ]
    result = run(txs, state)
    assert [r.status for r in result.receipts] == ["ok", "ok"]
    state.apply(result.writes)
    assert (balance(state, ALICE), balance(state, BOB), balance(state, OUTSIDER)) == (0, 500, 1_000)


def test_asset_issue_is_only_for_issuers() -> None:
    state = fresh_state()
    for who in (ALICE, ADMIN):
        receipt = only(run([make_tx(who, 0, "asset", "issue", (addr(who), 10))], state))
        assert receipt.status == "reverted"
        assert "only an issuer" in receipt.error_message
    result = run([make_tx(ISSUER, 0, "asset", "issue", (addr(CAROL), 250))], state)
    assert events_of(only(result)) == [("asset", "Issue", {"to": addr(CAROL), "amount": 250})]
    state.apply(result.writes)
    assert balance(state, CAROL) == 250
    assert state.value("asset", "supply") == SUPPLY + 250


def test_asset_issue_stops_at_the_maximum_supply() -> None:
    too_much = make_tx(ISSUER, 0, "asset", "issue", (addr(CAROL), 2**63 - 1 - SUPPLY + 1))
    assert "maximum supply" in only(run([too_much])).error_message
    enough = make_tx(ISSUER, 0, "asset", "issue", (addr(CAROL), 2**63 - 1 - SUPPLY))
    assert only(run([enough])).status == "ok"


def test_execute_query_answers_asset_views() -> None:
    executor, state = Executor(SUITE), fresh_state()
    assert execute_query(executor, state, "asset", "balance", [addr(ALICE)]) == 1_000
    assert execute_query(executor, state, "asset", "balance", [addr(OUTSIDER)]) == 0
    assert execute_query(executor, state, "asset", "supply", []) == SUPPLY
    with pytest.raises(ContractReverted, match="no contract"):
        execute_query(executor, state, "nothing", "get", [])
    with pytest.raises(ContractReverted, match="no method"):
        execute_query(executor, state, "asset", "transfer", [])
    with pytest.raises(ContractReverted, match="owner must be"):
        execute_query(executor, state, "asset", "balance", ["nobody"])


# ----------------------------------------------------------------------------- members


def test_members_add_is_only_for_admins() -> None:
    for who in (ALICE, ISSUER):
        receipt = only(run([make_tx(who, 0, "members", "add", (key_of(CAROL), ("member",)))]))
        assert receipt.status == "reverted"
        assert "only an org admin" in receipt.error_message


@pytest.mark.parametrize(("admin", "org"), [(ADMIN, "org1"), (ADMIN2, "org2")])
def test_members_add_gives_the_new_member_the_admins_org(admin: int, org: str) -> None:
    state = fresh_state()
    add = make_tx(admin, 0, "members", "add", (key_of(CAROL), ("member", "auditor", "member")))
    result = run([add], state)
    receipt = only(result)
    assert receipt.status == "ok"
    assert events_of(receipt) == [
        (
            "members",
            "MemberAdded",
            {"address": addr(CAROL), "org": org, "roles": ["auditor", "member"]},
        )
    ]
    state.apply(result.writes)
    assert find_member(state, addr(CAROL)) == {
        "public_key": key_of(CAROL),
        "org": org,
        "roles": ["auditor", "member"],
    }
    # the new member may transact from the next block
    follow = run([make_tx(CAROL, 0, "kv", "put", ("k", 1))], state, height=HEIGHT + 1)
    assert only(follow).status == "ok"


def test_members_add_takes_effect_within_the_block() -> None:
    txs = [
        make_tx(ADMIN, 0, "members", "add", (key_of(CAROL), ("member",))),
        make_tx(CAROL, 0, "kv", "put", ("k", 1)),
    ]
    assert [r.status for r in run(txs).receipts] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((key_of(ALICE), ("member",)), "already a member"),
        ((key_of(CAROL)[:31], ("member",)), "public_key must be 32 bytes"),
        ((key_of(CAROL).hex(), ("member",)), "public_key must be"),
        ((key_of(CAROL), ()), "non-empty list"),
        ((key_of(CAROL), "member"), "non-empty list"),
        ((key_of(CAROL), ("validator",)), "roles must be among"),
        ((key_of(CAROL), ("member", ["admin"])), "roles must be among"),
        ((key_of(CAROL),), "takes 2 arguments"),
    ],
)
def test_members_add_reverts_on_bad_arguments(args: tuple[Any, ...], message: str) -> None:
    receipt = only(run([make_tx(ADMIN, 0, "members", "add", args)]))
    assert receipt.status == "reverted"
    assert message in receipt.error_message


def test_members_view_get_returns_a_member_or_none() -> None:
    executor, state = Executor(SUITE), fresh_state()
    member = execute_query(executor, state, "members", "get", [addr(ALICE)])
    assert member == {"public_key": key_of(ALICE), "org": "org2", "roles": ["member"]}
    assert execute_query(executor, state, "members", "get", [addr(OUTSIDER)]) is None


# ----------------------------------------------------------------------------- kv


def test_kv_is_namespaced_by_sender() -> None:
    state = fresh_state()
    puts = [
        make_tx(ALICE, 0, "kv", "put", ("k", "alice's")),
        make_tx(BOB, 0, "kv", "put", ("k", {"bob": [1, 2**80]})),
    ]
    result = run(puts, state)
    assert [r.status for r in result.receipts] == ["ok", "ok"]
    assert events_of(result.receipts[0]) == [("kv", "Put", {"owner": addr(ALICE), "key": "k"})]
    assert result.writes[state_key("kv", f"{addr(ALICE)}/k")] == encode_value("alice's")
    state.apply(result.writes)

    gets = run(
        [make_tx(ALICE, 1, "kv", "get", ("k",)), make_tx(BOB, 1, "kv", "get", ("k",))], state
    )
    assert [decode_value(bytes(r.return_value)) for r in gets.receipts] == [
        "alice's",
        {"bob": [1, 2**80]},
    ]
    state.apply(gets.writes)

    deleted = run([make_tx(ALICE, 2, "kv", "delete", ("k",))], state)
    assert events_of(only(deleted)) == [("kv", "Delete", {"owner": addr(ALICE), "key": "k"})]
    state.apply(deleted.writes)
    executor = Executor(SUITE)
    assert execute_query(executor, state, "kv", "get", [addr(ALICE), "k"]) is None
    assert execute_query(executor, state, "kv", "get", [addr(BOB), "k"]) == {"bob": [1, 2**80]}


def test_kv_keys_cannot_reach_another_senders_namespace() -> None:
    state = fresh_state()
    sneaky = f"../{addr(BOB)}/k"
    result = run([make_tx(ALICE, 0, "kv", "put", (sneaky, "x"))], state)
    assert only(result).status == "ok"
    assert set(result.writes) == {
        nonce_key(addr(ALICE)),
        state_key("kv", f"{addr(ALICE)}/{sneaky}"),
    }


# ----------------------------------------------------------------------------- determinism


def mixed_block() -> list[Transaction]:
    return [
        make_tx(ALICE, 0, "asset", "transfer", (addr(BOB), 10)),
        make_tx(BOB, 0, "kv", "put", ("k", {b"x": [1, None, True]})),
        make_tx(OUTSIDER, 0, "kv", "put", ("k", 1)),
        make_tx(ADMIN, 0, "members", "add", (key_of(CAROL), ("member",))),
        make_tx(CAROL, 0, "asset", "transfer", (addr(ALICE), 1)),
        make_tx(ALICE, 1, "asset", "transfer", (addr(BOB), 10**9)),
        make_tx(ISSUER, 0, "asset", "issue", (addr(CAROL), 5), gas_limit=300),
        make_tx(ALICE, 2, "kv", "delete", ("never-written",)),
    ]


def test_execute_block_is_deterministic() -> None:
    first = run(mixed_block(), fresh_state())
    second = run(mixed_block(), fresh_state())
    assert [encode(r) for r in first.receipts] == [encode(r) for r in second.receipts]
    assert list(first.writes.items()) == list(second.writes.items())
    assert first.nonces == second.nonces
    assert [r.status for r in first.receipts] == [
        "ok",
        "ok",
        "rejected",
        "ok",
        "reverted",
        "reverted",
        "out_of_gas",
        "ok",
    ]
    assert first.nonces == {
        addr(ALICE): 3,
        addr(BOB): 1,
        addr(OUTSIDER): 0,
        addr(ADMIN): 1,
        addr(CAROL): 1,
        addr(ISSUER): 1,
    }


def test_execute_block_does_not_touch_its_state_reader() -> None:
    state = fresh_state()
    before = dict(state.data)
    run(mixed_block(), state)
    assert state.data == before


# ----------------------------------------------------------------------------- supply


ACCOUNTS = (ALICE, BOB, ISSUER, ADMIN2)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(ACCOUNTS),
            st.sampled_from((*ACCOUNTS, OUTSIDER)),
            st.integers(min_value=1, max_value=1_200),
        ),
        max_size=12,
    ),
    st.integers(min_value=1, max_value=3),
)
def test_transfers_conserve_the_total_supply(
    transfers: list[tuple[int, int, int]], blocks: int
) -> None:
    state = fresh_state()
    nonces = dict.fromkeys(ACCOUNTS, 0)
    txs = []
    for sender, to, amount in transfers:
        txs.append(make_tx(sender, nonces[sender], "asset", "transfer", (addr(to), amount)))
        nonces[sender] += 1
    size = -(-len(txs) // blocks) or 1
    for height, start in enumerate(range(0, len(txs), size), start=HEIGHT):
        result = run(txs[start : start + size], state, height=height)
        assert {r.status for r in result.receipts} <= {"ok", "reverted"}
        state.apply(result.writes)
    balances = [balance(state, who) for who in (*ACCOUNTS, OUTSIDER)]
    assert all(b >= 0 for b in balances)
    assert sum(balances) == SUPPLY == state.value("asset", "supply")
    for who in ACCOUNTS:
        assert get_account_nonce(state, addr(who)) == nonces[who]


def test_a_block_rejects_transactions_that_could_pass_the_block_gas_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Built-in calls use a few thousand gas; the rule counts gas used so far plus the next
    # transaction's limit, so a limit large enough to cross it is refused before it runs.
    monkeypatch.setattr(executor_module, "BLOCK_GAS_LIMIT", 1_000_000)
    txs = [
        make_tx(ALICE, 0, "kv", "put", ("a", 1), gas_limit=600_000),
        make_tx(BOB, 0, "kv", "put", ("b", 1), gas_limit=999_000),  # used + 999k: over
        make_tx(ISSUER, 0, "kv", "put", ("c", 1), gas_limit=100_000),  # still fits
    ]
    state = fresh_state()
    result = run(txs, state)
    first, refused, third = result.receipts
    assert first.status == "ok" and third.status == "ok"
    assert refused.status == "rejected" and refused.gas_used == 0
    assert refused.error_message.startswith("block gas limit: the block has ")
    left = 1_000_000 - first.gas_used
    assert refused.error_message == f"block gas limit: the block has {left} gas left"
    assert result.nonces[addr(BOB)] == 0  # the refused transaction's nonce is not consumed
    assert state_key("kv", f"{addr(BOB)}/b") not in result.writes
