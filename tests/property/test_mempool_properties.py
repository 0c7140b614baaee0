"""The mempool against a deliberately naive reference model, under random workloads.

The model keeps plain dicts and a list for the round-robin order and recomputes readiness
from scratch after every operation; the real pool keeps a lazy deque, an expiry heap and
forgets idle senders. A hypothesis state machine drives both with adds (valid and invalid),
takes, executions, other proposers' blocks, expiry sweeps and height changes, and checks that
they agree call by call, plus the invariants that hold whatever the model says.
"""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from taihang.crypto import get_suite
from taihang.errors import MempoolRejection
from taihang.ledger.transaction import Transaction, build_body, decode_transaction, sign_body
from taihang.mempool import Mempool, MempoolLimits, RejectCode
from taihang.mempool import pool as pool_module

SUITE = get_suite("ed25519")
SENDERS = 4
# Relative to the next expected nonce and to the next height; mostly the ordinary case.
NONCE_OFFSETS = (0, 0, 0, 0, 1, 2, 3, -1, -2)
EXPIRY_OFFSETS = (1000, 1000, 3, 1, 0, -1)
LIMITS = (
    MempoolLimits(txs_max=6, bytes_max=6 * 140, per_sender_max=3, nonce_gap_max=2),
    MempoolLimits(txs_max=10, bytes_max=1200, per_sender_max=2, nonce_gap_max=3),
    MempoolLimits(txs_max=40, bytes_max=100_000, per_sender_max=40, nonce_gap_max=0),
)


@cache
def make_tx(sender: int, nonce: int, expires_at_height: int, pad: int) -> Transaction:
    seed = bytes([sender + 1]) * 32
    body = build_body(
        channel="main",
        sender_public_key=SUITE.public_key_from_seed(seed),
        nonce=nonce,
        contract="kv",
        method="put",
        args=["x" * (pad * 25)],
        gas_limit=1000,
        expires_at_height=expires_at_height,
    )
    return decode_transaction(sign_body(body, seed, SUITE), SUITE)


@cache
def address(sender: int) -> str:
    return make_tx(sender, 0, 1, 0).sender


class ReferencePool:
    """The mempool rules written the slow, obvious way."""

    def __init__(self, limits: MempoolLimits) -> None:
        self.limits = limits
        self.pending: dict[str, dict[int, Transaction]] = {}
        self.state: dict[str, int] = {}
        self.base: dict[str, int] = {}
        self.order: list[str] = []

    def all_txs(self) -> list[Transaction]:
        return [tx for txs in self.pending.values() for tx in txs.values()]

    def is_ready(self, sender: str) -> bool:
        return sender in self.base and self.base[sender] in self.pending.get(sender, {})

    def sync_order(self, newly: list[str]) -> None:
        self.order = [s for s in self.order if self.is_ready(s)]
        self.order += [s for s in newly if self.is_ready(s) and s not in self.order]

    def prune_below(self, sender: str, nonce: int) -> None:
        txs = self.pending.get(sender, {})
        for old in [n for n in txs if n < nonce]:
            del txs[old]

    def expected_nonce(self, sender: str, account_nonce: int) -> int:
        nonce = max(account_nonce, self.base.get(sender, account_nonce))
        while nonce in self.pending.get(sender, {}):
            nonce += 1
        return nonce

    def reject_code(self, tx: Transaction, account_nonce: int, height: int) -> RejectCode | None:
        sender, limits = tx.sender, self.limits
        base = max(account_nonce, self.base.get(sender, account_nonce))
        txs = self.pending.get(sender, {})
        survivors = [t for t in self.all_txs() if t.sender != sender or t.nonce >= base]
        checks = [
            (any(t.id == tx.id for t in self.all_txs()), RejectCode.duplicate),
            (tx.body.expires_at_height < height, RejectCode.expired),
            (tx.nonce < base, RejectCode.nonce_too_low),
            (tx.nonce > base + limits.nonce_gap_max, RejectCode.nonce_gap),
            (tx.nonce in txs, RejectCode.nonce_taken),
            (sum(1 for n in txs if n >= base) >= limits.per_sender_max, RejectCode.sender_limit),
            (
                len(survivors) >= limits.txs_max
                or sum(t.size for t in survivors) + tx.size > limits.bytes_max,
                RejectCode.mempool_full,
            ),
        ]
        return next((code for failed, code in checks if failed), None)

    def add(self, tx: Transaction, account_nonce: int) -> None:
        sender = tx.sender
        self.state[sender] = max(self.state.get(sender, account_nonce), account_nonce)
        self.base[sender] = max(self.base.get(sender, account_nonce), account_nonce)
        self.prune_below(sender, self.base[sender])
        self.sync_order([])  # a pruned head loses its turn; the new one queues on arrival
        self.pending.setdefault(sender, {})[tx.nonce] = tx
        self.sync_order([sender])

    def take(self, txs_max: int, bytes_max: int, height: int) -> list[Transaction]:
        taken: list[Transaction] = []
        while self.order and len(taken) < txs_max:
            sender = self.order[0]
            tx = self.pending[sender][self.base[sender]]
            if tx.body.expires_at_height < height:
                del self.pending[sender][tx.nonce]
                self.order.pop(0)
                continue
            if tx.size > bytes_max - sum(t.size for t in taken):
                break
            self.order.pop(0)
            del self.pending[sender][tx.nonce]
            self.base[sender] += 1
            taken.append(tx)
            self.sync_order([sender])
        return taken

    def mark_executed(self, nonces: dict[str, int]) -> None:
        for sender, nonce in nonces.items():
            if sender not in self.base:
                continue
            self.state[sender] = max(self.state[sender], nonce)
            self.base[sender] = max(self.base[sender], nonce)
            self.prune_below(sender, nonce)
        self.sync_order(sorted(nonces))

    def remove_expired(self, height: int) -> int:
        expired = [t for t in self.all_txs() if t.body.expires_at_height < height]
        for tx in expired:
            del self.pending[tx.sender][tx.nonce]
        self.sync_order([])
        return len(expired)

    def remembered(self) -> set[str]:
        """Senders the real pool must still hold: something pending or a block in flight."""
        return {s for s in self.base if self.pending.get(s) or self.base[s] > self.state[s]}


class MempoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.height = 1
        # The chain as execution sees it: every nonce below `consumed` is in some block,
        # every nonce below `executed` is in the executed state.
        self.consumed = [0] * SENDERS
        self.executed = [0] * SENDERS
        # What the pool has been told or has done itself: its next nonce per sender.
        self.known = [0] * SENDERS
        self.taken_keys: set[tuple[str, int]] = set()

    @initialize(limits=st.sampled_from(LIMITS))
    def start(self, limits: MempoolLimits) -> None:
        self.limits = limits
        self.pool = Mempool(limits)
        self.model = ReferencePool(limits)

    def snapshot(self) -> tuple[object, ...]:
        return (
            len(self.pool),
            self.pool.bytes_total,
            sorted(self.pool._by_id),
            [self.pool.pending_count(address(s)) for s in range(SENDERS)],
            [self.pool.expected_nonce(address(s), self.executed[s]) for s in range(SENDERS)],
        )

    @rule(
        adds=st.lists(
            st.tuples(
                st.integers(0, SENDERS - 1),
                st.sampled_from(NONCE_OFFSETS),
                st.sampled_from(EXPIRY_OFFSETS),
                st.integers(0, 2),
            ),
            min_size=1,
            max_size=4,
        )
    )
    def add(self, adds: list[tuple[int, int, int, int]]) -> None:
        for sender, nonce_offset, expiry_offset, pad in adds:
            # Mostly the nonce a client would use next; the others probe every rejection.
            account_nonce = self.executed[sender]
            nonce = self.model.expected_nonce(address(sender), account_nonce) + nonce_offset
            expires_at_height = max(1, self.height + expiry_offset)
            self.add_one(make_tx(sender, max(0, nonce), expires_at_height, pad), sender)

    def add_one(self, tx: Transaction, sender: int) -> None:
        account_nonce = self.executed[sender]
        expected = self.model.reject_code(tx, account_nonce, self.height)
        before = self.snapshot()
        try:
            self.pool.add(tx, account_nonce=account_nonce, next_height=self.height)
        except MempoolRejection as rejection:
            assert rejection.code == expected
            assert self.snapshot() == before
            return
        assert expected is None
        self.model.add(tx, account_nonce)
        self.known[sender] = max(self.known[sender], account_nonce)

    @precondition(lambda self: len(self.pool) > 0)  # the unit tests cover an empty pool
    @rule(txs_max=st.integers(0, 8), bytes_max=st.integers(0, 900))
    def take(self, txs_max: int, bytes_max: int) -> None:
        taken = self.pool.take(txs_max, bytes_max, self.height)
        assert taken == self.model.take(txs_max, bytes_max, self.height)
        assert len(taken) <= txs_max
        assert sum(tx.size for tx in taken) <= bytes_max
        for tx in taken:
            sender = next(s for s in range(SENDERS) if address(s) == tx.sender)
            # Consecutive from the next nonce the pool knows of, hence never one nonce twice.
            assert tx.nonce == self.known[sender]
            assert (tx.sender, tx.nonce) not in self.taken_keys
            assert tx.body.expires_at_height >= self.height
            self.taken_keys.add((tx.sender, tx.nonce))
            self.known[sender] += 1
            self.consumed[sender] = max(self.consumed[sender], self.known[sender])

    @rule(data=st.data())
    def execute(self, data: st.DataObject) -> None:
        """Execution catches up, fully or partly, with some senders' consumed nonces."""
        senders = data.draw(st.permutations(range(SENDERS)))[: data.draw(st.integers(1, SENDERS))]
        nonces = {}
        for s in senders:
            self.executed[s] = data.draw(st.integers(self.executed[s], self.consumed[s]))
            nonces[address(s)] = self.executed[s]
            self.known[s] = max(self.known[s], self.executed[s])
        self.pool.mark_executed(nonces)
        self.model.mark_executed(nonces)

    @rule(sender=st.integers(0, SENDERS - 1), count=st.integers(1, 3))
    def foreign_block(self, sender: int, count: int) -> None:
        """Another proposer's block consumes nonces; it is executed and reported at once."""
        self.consumed[sender] += count
        self.executed[sender] = self.consumed[sender]
        self.known[sender] = max(self.known[sender], self.executed[sender])
        nonces = {address(sender): self.executed[sender]}
        self.pool.mark_executed(nonces)
        self.model.mark_executed(nonces)

    @rule(sender=st.integers(0, SENDERS - 1), count=st.integers(1, 3))
    def unreported_block(self, sender: int, count: int) -> None:
        """Like `foreign_block`, but the pool first hears of it through `add`'s account nonce."""
        self.consumed[sender] += count
        self.executed[sender] = self.consumed[sender]

    @rule(step=st.integers(1, 3))
    def advance_height(self, step: int) -> None:
        self.height += step

    @rule()
    def remove_expired(self) -> None:
        assert self.pool.remove_expired(self.height) == self.model.remove_expired(self.height)

    @invariant()
    def agrees_with_model(self) -> None:
        model = self.model
        txs = model.all_txs()
        assert len(self.pool) == len(txs) <= self.limits.txs_max
        assert self.pool.bytes_total == sum(tx.size for tx in txs) <= self.limits.bytes_max
        assert all(tx.id in self.pool for tx in txs)
        for s in range(SENDERS):
            count = self.pool.pending_count(address(s))
            assert count == len(model.pending.get(address(s), {})) <= self.limits.per_sender_max
            expected_nonce = self.pool.expected_nonce(address(s), self.executed[s])
            assert expected_nonce == model.expected_nonce(address(s), self.executed[s])
            assert expected_nonce >= self.known[s]
        assert set(self.pool._senders) == model.remembered()

    @invariant()
    def lazy_structures_are_consistent(self) -> None:
        pool = self.pool
        names = {id(record): sender for sender, record in pool._senders.items()}
        live = [names[id(record)] for ticket, record in pool._ready if record.ticket == ticket]
        assert live == self.model.order  # each ready sender once, in round-robin order
        assert pool._ready_stale == len(pool._ready) - len(live)
        assert {entry[2] for entry in pool._expiry} >= set(pool._by_id)


@pytest.mark.parametrize("stale_entries_min", [1024, 2])
def test_mempool_matches_reference_model(
    monkeypatch: pytest.MonkeyPatch, stale_entries_min: int
) -> None:
    # A tiny floor makes the lazy queue and heap compact often, so compaction is tested too.
    monkeypatch.setattr(pool_module, "_STALE_ENTRIES_MIN", stale_entries_min)
    run_state_machine_as_test(
        MempoolMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
