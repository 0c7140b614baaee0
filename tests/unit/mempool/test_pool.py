"""Unit tests for `taihang.mempool.pool`: admission rules, block filling, state updates."""

from __future__ import annotations

from functools import cache

import pytest

from taihang.crypto import get_suite
from taihang.errors import ConfigurationError, MempoolRejection
from taihang.ledger.transaction import Transaction, build_body, decode_transaction, sign_body
from taihang.mempool import Mempool, MempoolLimits, RejectCode
from taihang.mempool import pool as pool_module

SUITE = get_suite("ed25519")
ROOMY = MempoolLimits(txs_max=1000, bytes_max=1_000_000, per_sender_max=100, nonce_gap_max=10)


@cache
def make_tx(sender: int, nonce: int, *, expires_at_height: int = 1000, pad: int = 0) -> Transaction:
    """A real signed transaction; `pad` changes its size and id without changing its nonce."""
    seed = bytes([sender]) * 32
    body = build_body(
        channel="main",
        sender_public_key=SUITE.public_key_from_seed(seed),
        nonce=nonce,
        contract="kv",
        method="put",
        args=["k", "x" * pad],
        gas_limit=1000,
        expires_at_height=expires_at_height,
    )
    return decode_transaction(sign_body(body, seed, SUITE), SUITE)


def address(sender: int) -> str:
    return make_tx(sender, 0).sender


def add_all(pool: Mempool, txs: list[Transaction], *, account_nonce: int = 0) -> None:
    for tx in txs:
        pool.add(tx, account_nonce=account_nonce, next_height=1)


def snapshot(pool: Mempool, txs: list[Transaction]) -> tuple[object, ...]:
    senders = sorted({tx.sender for tx in txs})
    return (
        len(pool),
        pool.bytes_total,
        [tx.id in pool for tx in txs],
        [(pool.pending_count(s), pool.expected_nonce(s, 0)) for s in senders],
    )


def rejection(pool: Mempool, tx: Transaction, *, account_nonce: int = 0, height: int = 1) -> str:
    """Add `tx`, expect a rejection that leaves `pool` unchanged, and return its message."""
    before = snapshot(pool, [tx, *pool_txs(pool)])
    with pytest.raises(MempoolRejection) as info:
        pool.add(tx, account_nonce=account_nonce, next_height=height)
    assert snapshot(pool, [tx, *pool_txs(pool)]) == before
    return f"{info.value.code}: {info.value.message}"


def pool_txs(pool: Mempool) -> list[Transaction]:
    return list(pool._by_id.values())  # read-only peek, to compare states


# ----------------------------------------------------------------------------- limits


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ConfigurationError, match="txs_max"):
        MempoolLimits(txs_max=0, bytes_max=1, per_sender_max=1, nonce_gap_max=0)
    with pytest.raises(ConfigurationError, match="nonce_gap_max"):
        MempoolLimits(txs_max=1, bytes_max=1, per_sender_max=1, nonce_gap_max=-1)


def test_reject_codes_are_the_documented_strings() -> None:
    assert [code.value for code in RejectCode] == [
        "duplicate",
        "nonce_too_low",
        "nonce_taken",
        "nonce_gap",
        "sender_limit",
        "mempool_full",
        "expired",
    ]


# ----------------------------------------------------------------------------- add


def test_add_accepts_and_counts() -> None:
    pool = Mempool(ROOMY)
    txs = [make_tx(1, 0), make_tx(1, 1), make_tx(2, 0)]
    add_all(pool, txs)
    assert len(pool) == 3
    assert pool.bytes_total == sum(tx.size for tx in txs)
    assert all(tx.id in pool for tx in txs)
    assert make_tx(3, 0).id not in pool
    assert pool.pending_count(address(1)) == 2
    assert pool.pending_count(address(3)) == 0


def test_add_rejects_duplicate() -> None:
    pool = Mempool(ROOMY)
    add_all(pool, [make_tx(1, 0)])
    message = rejection(pool, make_tx(1, 0))
    assert message.startswith("duplicate:")
    assert make_tx(1, 0).id.hex() in message


def test_add_rejects_expired_but_accepts_expiry_at_next_height() -> None:
    pool = Mempool(ROOMY)
    message = rejection(pool, make_tx(1, 0, expires_at_height=4), height=5)
    assert message.startswith("expired:")
    assert "height 4" in message
    assert "5" in message
    pool.add(make_tx(1, 0, expires_at_height=5), account_nonce=0, next_height=5)
    assert len(pool) == 1


def test_add_rejects_nonce_below_account_nonce() -> None:
    pool = Mempool(ROOMY)
    message = rejection(pool, make_tx(1, 2), account_nonce=3)
    assert message.startswith("nonce_too_low:")
    assert "nonce 2" in message
    assert "expected nonce is 3" in message


def test_add_rejects_nonce_already_handed_out_in_a_block() -> None:
    pool = Mempool(ROOMY)
    add_all(pool, [make_tx(1, 0), make_tx(1, 1)])
    assert pool.take(10, 10_000, 1) == [make_tx(1, 0), make_tx(1, 1)]
    # Execution has not caught up: the caller still reports account nonce 0.
    message = rejection(pool, make_tx(1, 1, pad=1), account_nonce=0)
    assert message.startswith("nonce_too_low:")
    assert "expected nonce is 2" in message
    pool.add(make_tx(1, 2), account_nonce=0, next_height=1)


def test_add_rejects_second_tx_with_a_pending_nonce() -> None:
    pool = Mempool(ROOMY)
    add_all(pool, [make_tx(1, 0)])
    message = rejection(pool, make_tx(1, 0, pad=5))
    assert message.startswith("nonce_taken:")
    assert "nonce 0" in message


def test_add_nonce_gap_boundary() -> None:
    limits = MempoolLimits(txs_max=100, bytes_max=100_000, per_sender_max=10, nonce_gap_max=2)
    pool = Mempool(limits)
    message = rejection(pool, make_tx(1, 8), account_nonce=5)
    assert message.startswith("nonce_gap:")
    assert all(str(n) in message for n in (8, 2, 5))
    pool.add(make_tx(1, 7), account_nonce=5, next_height=1)  # exactly nonce_gap_max ahead
    assert pool.pending_count(address(1)) == 1


def test_add_rejects_beyond_per_sender_limit() -> None:
    limits = MempoolLimits(txs_max=100, bytes_max=100_000, per_sender_max=2, nonce_gap_max=10)
    pool = Mempool(limits)
    add_all(pool, [make_tx(1, 0), make_tx(1, 1)])
    message = rejection(pool, make_tx(1, 2))
    assert message.startswith("sender_limit:")
    assert "2 pending" in message
    pool.add(make_tx(2, 0), account_nonce=0, next_height=1)  # other senders are unaffected


def test_add_rejects_when_tx_count_is_full() -> None:
    limits = MempoolLimits(txs_max=2, bytes_max=100_000, per_sender_max=10, nonce_gap_max=10)
    pool = Mempool(limits)
    add_all(pool, [make_tx(1, 0), make_tx(2, 0)])
    message = rejection(pool, make_tx(3, 0))
    assert message.startswith("mempool_full:")
    assert "2 transactions" in message


def test_add_rejects_when_bytes_are_full() -> None:
    first = make_tx(1, 0)
    limits = MempoolLimits(
        txs_max=100, bytes_max=2 * first.size, per_sender_max=10, nonce_gap_max=10
    )
    pool = Mempool(limits)
    add_all(pool, [first])
    message = rejection(pool, make_tx(2, 0, pad=1))
    assert message.startswith("mempool_full:")
    assert str(first.size) in message
    pool.add(make_tx(2, 0), account_nonce=0, next_height=1)  # exactly fills the pool
    assert pool.bytes_total == limits.bytes_max


def test_add_with_higher_account_nonce_prunes_consumed_txs() -> None:
    # Nonces 0 and 1 went into another proposer's block; the state now says 2.
    limits = MempoolLimits(txs_max=3, bytes_max=100_000, per_sender_max=3, nonce_gap_max=10)
    pool = Mempool(limits)
    add_all(pool, [make_tx(1, 0), make_tx(1, 1), make_tx(2, 0)])
    pool.add(make_tx(1, 2), account_nonce=2, next_height=1)  # fits only after the pruning
    assert len(pool) == 2
    assert make_tx(1, 0).id not in pool
    assert pool.take(10, 10_000, 1) == [make_tx(2, 0), make_tx(1, 2)]


def test_add_prune_frees_the_sender_limit() -> None:
    limits = MempoolLimits(txs_max=100, bytes_max=100_000, per_sender_max=2, nonce_gap_max=10)
    pool = Mempool(limits)
    add_all(pool, [make_tx(1, 0), make_tx(1, 1)])
    assert rejection(pool, make_tx(1, 2)).startswith("sender_limit:")
    pool.add(make_tx(1, 2), account_nonce=1, next_height=1)  # nonce 0 was consumed elsewhere
    assert pool.pending_count(address(1)) == 2
    assert pool.take(10, 100_000, 1) == [make_tx(1, 1), make_tx(1, 2)]


# ----------------------------------------------------------------------------- take


def test_take_round_robins_in_order_of_readiness() -> None:
    pool = Mempool(ROOMY)
    add_all(pool, [make_tx(2, 0), make_tx(2, 1), make_tx(2, 2), make_tx(1, 0), make_tx(3, 0)])
    add_all(pool, [make_tx(1, 1)])
    taken = pool.take(10, 100_000, 1)
    assert [(tx.sender, tx.nonce) for tx in taken] == [
        (address(2), 0),
        (address(1), 0),
        (address(3), 0),
        (address(2), 1),
        (address(1), 1),
        (address(2), 2),
    ]
    assert len(pool) == 0
    assert pool.bytes_total == 0


def test_take_continues_the_rotation_in_the_next_block() -> None:
    pool = Mempool(ROOMY)
    add_all(pool, [make_tx(1, n) for n in range(3)] + [make_tx(2, n) for n in range(3)])
    assert pool.take(3, 100_000, 1) == [make_tx(1, 0), make_tx(2, 0), make_tx(1, 1)]
    # Sender 2 was not served last, so it opens the next block.
    assert pool.take(3, 100_000, 1) == [make_tx(2, 1), make_tx(1, 2), make_tx(2, 2)]


def test_take_waits_for_a_nonce_gap_to_fill() -> None:
    pool = Mempool(ROOMY)
    add_all(pool, [make_tx(1, 0), make_tx(1, 2), make_tx(1, 3), make_tx(2, 1)])
    assert pool.take(10, 100_000, 1) == [make_tx(1, 0)]
    assert len(pool) == 3
    add_all(pool, [make_tx(1, 1)])
    assert pool.take(10, 100_000, 1) == [make_tx(1, 1), make_tx(1, 2), make_tx(1, 3)]
    add_all(pool, [make_tx(2, 0)])
    assert pool.take(10, 100_000, 1) == [make_tx(2, 0), make_tx(2, 1)]


def test_take_respects_the_tx_cap_exactly() -> None:
    pool = Mempool(ROOMY)
    add_all(pool, [make_tx(s, 0) for s in range(1, 6)])
    assert len(pool.take(3, 100_000, 1)) == 3
    assert len(pool) == 2
    assert pool.take(0, 100_000, 1) == []
    assert len(pool) == 2


def test_take_stops_at_the_first_tx_that_does_not_fit() -> None:
    pool = Mempool(ROOMY)
    small, big, other = make_tx(1, 0), make_tx(2, 0, pad=50), make_tx(3, 0)
    add_all(pool, [small, big, other])
    # `other` would fit after `big` is refused, but filling stops there so `big` keeps its turn.
    assert pool.take(10, small.size + other.size, 1) == [small]
    assert pool.take(10, big.size + other.size, 1) == [big, other]


def test_take_stops_when_the_gas_limits_would_pass_the_block_gas_cap() -> None:
    pool = Mempool(ROOMY)
    txs = [make_tx(s, 0) for s in range(1, 6)]  # gas_limit 1,000 each
    add_all(pool, txs)
    assert pool.take(10, 100_000, 1, gas_max=2_500) == txs[:2]
    assert pool.take(10, 100_000, 1, gas_max=0) == []
    assert pool.take(10, 100_000, 1) == txs[2:]  # the default cap is the protocol's


def test_take_bytes_cap_holds_exactly() -> None:
    pool = Mempool(ROOMY)
    txs = [make_tx(1, n) for n in range(4)]
    add_all(pool, txs)
    cap = sum(tx.size for tx in txs[:3])
    taken = pool.take(10, cap, 1)
    assert taken == txs[:3]
    assert pool.bytes_total == txs[3].size


def test_take_drops_expired_heads_and_leaves_the_gap() -> None:
    pool = Mempool(ROOMY)
    stale = make_tx(1, 0, expires_at_height=3)
    add_all(pool, [stale, make_tx(1, 1), make_tx(2, 0, expires_at_height=3), make_tx(3, 0)])
    assert pool.take(10, 100_000, 4) == [make_tx(3, 0)]
    assert stale.id not in pool
    assert make_tx(1, 1).id in pool  # waits for nonce 0 to be submitted again
    assert pool.expected_nonce(address(1), 0) == 0
    pool.add(make_tx(1, 0), account_nonce=0, next_height=4)
    assert pool.take(10, 100_000, 4) == [make_tx(1, 0), make_tx(1, 1)]


def test_take_rejects_negative_caps() -> None:
    with pytest.raises(ValueError, match="negative"):
        Mempool(ROOMY).take(-1, 10, 1)


# ----------------------------------------------------------------------------- state updates


def test_expected_nonce_follows_pending_run_and_blocks() -> None:
    pool = Mempool(ROOMY)
    assert pool.expected_nonce(address(1), 4) == 4
    add_all(pool, [make_tx(1, 4), make_tx(1, 5), make_tx(1, 7)], account_nonce=4)
    assert pool.expected_nonce(address(1), 4) == 6
    pool.take(10, 100_000, 1)
    assert pool.expected_nonce(address(1), 4) == 6  # 4 and 5 are in a block not yet executed
    assert pool.expected_nonce(address(1), 9) == 9


def test_mark_executed_forgets_senders_once_state_catches_up() -> None:
    pool = Mempool(ROOMY)
    add_all(pool, [make_tx(1, 0), make_tx(1, 1), make_tx(2, 0)])
    pool.take(10, 100_000, 1)
    pool.mark_executed({address(1): 1, address(2): 1})
    assert address(2) not in pool._senders  # bounded memory: nothing left to remember
    assert pool.expected_nonce(address(1), 1) == 2  # nonce 1 is still in flight
    pool.mark_executed({address(1): 2, address(9): 5})
    assert pool._senders == {}


def test_mark_executed_drops_txs_consumed_by_other_blocks() -> None:
    pool = Mempool(ROOMY)
    add_all(pool, [make_tx(1, n) for n in range(4)] + [make_tx(2, 0)])
    pool.mark_executed({address(1): 2})
    assert len(pool) == 3
    assert pool.pending_count(address(1)) == 2
    assert pool.take(10, 100_000, 1) == [make_tx(1, 2), make_tx(2, 0), make_tx(1, 3)]


def test_mark_executed_queues_new_heads_in_address_order() -> None:
    pool = Mempool(ROOMY)
    add_all(pool, [make_tx(s, 1) for s in (1, 2, 3)])  # all gapped at nonce 0
    assert pool.take(10, 100_000, 1) == []
    senders = [address(s) for s in (1, 2, 3)]
    pool.mark_executed({sender: 1 for sender in reversed(senders)})
    assert [tx.sender for tx in pool.take(10, 100_000, 1)] == sorted(senders)


def test_mark_executed_ignores_stale_nonces() -> None:
    pool = Mempool(ROOMY)
    add_all(pool, [make_tx(1, 3)], account_nonce=3)
    pool.mark_executed({address(1): 1})
    assert pool.expected_nonce(address(1), 0) == 4
    assert pool.take(10, 100_000, 1) == [make_tx(1, 3)]


def test_remove_expired_counts_and_unqueues() -> None:
    pool = Mempool(ROOMY)
    add_all(
        pool,
        [
            make_tx(1, 0, expires_at_height=5),
            make_tx(1, 1),
            make_tx(2, 0, expires_at_height=6),
            make_tx(3, 0),
        ],
    )
    assert pool.remove_expired(6) == 1
    assert pool.remove_expired(6) == 0
    assert pool.remove_expired(7) == 1
    assert len(pool) == 2
    assert pool.bytes_total == make_tx(1, 1).size + make_tx(3, 0).size
    assert pool.take(10, 100_000, 7) == [make_tx(3, 0)]
    assert address(2) not in pool._senders


def test_lazy_structures_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "_STALE_ENTRIES_MIN", 4)
    pool = Mempool(ROOMY)
    for round_ in range(30):
        # Each round leaves one stale queue entry (an expired head) and two stale heap entries.
        pool.add(
            make_tx(1, round_, expires_at_height=round_ + 1),
            account_nonce=round_,
            next_height=round_ + 1,
        )
        add_all(pool, [make_tx(2, round_)], account_nonce=round_)
        pool.remove_expired(round_ + 2)
        assert pool.take(10, 100_000, round_ + 2) == [make_tx(2, round_)]
        pool.mark_executed({address(1): round_ + 1, address(2): round_ + 1})
    assert len(pool) == 0
    assert len(pool._expiry) <= 2 * 2 + 4 + 1  # twice the peak pool size plus the floor


def test_ready_queue_compacts_when_heads_leave_without_take(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pool_module, "_STALE_ENTRIES_MIN", 4)
    pool = Mempool(ROOMY)
    # Sender 1 loses its head and gets it back: its first queue entry is stale while the
    # record (kept alive by nonce 1) holds a newer live ticket.
    add_all(pool, [make_tx(1, 0, expires_at_height=1), make_tx(1, 1)])
    assert pool.remove_expired(2) == 1
    pool.add(make_tx(1, 0), account_nonce=0, next_height=2)
    for round_ in range(5):
        expiring = [make_tx(s, 0, expires_at_height=round_ + 2) for s in range(10, 30)]
        add_all(pool, [*expiring, make_tx(round_ + 2, 0)])
        assert pool.remove_expired(round_ + 3) == 20
        assert len(pool._ready) <= 2 * (round_ + 2) + 2 * 4 + 2
        stale = sum(1 for ticket, record in pool._ready if record.ticket != ticket)
        assert pool._ready_stale == stale
    taken = pool.take(10, 100_000, 10)
    assert taken == [make_tx(1, 0), *(make_tx(s, 0) for s in range(2, 7)), make_tx(1, 1)]


def test_has_ready_is_false_while_only_gapped_transactions_wait() -> None:
    pool = Mempool(MempoolLimits(txs_max=100, bytes_max=10**6, per_sender_max=10, nonce_gap_max=5))
    assert not pool.has_ready()
    gapped = make_tx(1, 2)
    pool.add(gapped, account_nonce=0, next_height=1)
    assert len(pool) == 1 and not pool.has_ready()
    pool.add(make_tx(1, 0), account_nonce=0, next_height=1)
    assert pool.has_ready()
    assert [tx.nonce for tx in pool.take(10, 10**6, next_height=1)] == [0]
    assert not pool.has_ready()  # nonce 1 is missing: nonce 2 waits


def test_take_skips_excluded_heads_as_included_elsewhere() -> None:
    """Another proposer's pending block holds a's nonce 0: take goes on from nonce 1."""
    pool = Mempool(ROOMY)
    a = [make_tx(1, n) for n in range(3)]
    b = [make_tx(2, 0)]
    add_all(pool, a + b)
    taken = pool.take(10, 1_000_000, 1, exclude={a[0].id, b[0].id})
    assert [tx.id for tx in taken] == [a[1].id, a[2].id]
    assert len(pool) == 0 and pool.bytes_total == 0
    assert pool.expected_nonce(address(1), 0) == 3  # nonce 0 counts as handed out
    assert not pool.has_ready()


def test_restore_puts_back_the_txs_of_an_abandoned_block() -> None:
    pool = Mempool(ROOMY)
    txs = [make_tx(1, n) for n in range(3)]
    add_all(pool, txs)
    proposed = pool.take(2, 1_000_000, 1)  # nonces 0 and 1 go into a block that loses
    assert [tx.nonce for tx in proposed] == [0, 1]
    assert pool.restore(proposed, account_nonces={}, next_height=2) == []
    assert [tx.nonce for tx in pool.take(10, 1_000_000, 2)] == [0, 1, 2]


def test_restore_skips_nonces_the_state_already_consumed() -> None:
    pool = Mempool(ROOMY)
    add_all(pool, [make_tx(1, n) for n in range(3)])
    proposed = pool.take(2, 1_000_000, 1)
    # Another block with nonce 0 executed: only nonce 1 comes back.
    left_out = pool.restore(proposed, account_nonces={address(1): 1}, next_height=2)
    assert [tx.nonce for tx in left_out] == [0]
    assert [tx.nonce for tx in pool.take(10, 1_000_000, 2)] == [1, 2]


def test_restore_keeps_runs_beyond_the_admission_limits() -> None:
    """A leader whose proposals are all lost took 4 x 30 nonces; restoring them must not
    apply the nonce gap (10 here) or the per-sender limit again: nothing accepted is lost."""
    limits = MempoolLimits(txs_max=1000, bytes_max=1_000_000, per_sender_max=40, nonce_gap_max=10)
    pool = Mempool(limits)
    nonce = 0
    lost_blocks = []
    for _ in range(4):
        for _ in range(10):
            pool.add(make_tx(1, nonce), account_nonce=0, next_height=1)
            nonce += 1
        lost_blocks.append(pool.take(100, 1_000_000, 1))
    pool.add(make_tx(1, nonce), account_nonce=0, next_height=1)  # still pending
    abandoned = [tx for block in reversed(lost_blocks) for tx in block]  # any order
    assert pool.restore(abandoned, account_nonces={address(1): 0}, next_height=2) == []
    assert [tx.nonce for tx in pool.take(100, 1_000_000, 2)] == list(range(41))


def test_restore_leaves_out_duplicates_and_expired_without_changing_the_pool() -> None:
    pool = Mempool(ROOMY)
    add_all(pool, [make_tx(1, 0)])
    taken = pool.take(1, 1_000_000, 1)
    before = snapshot(pool, taken)
    assert pool.restore(taken, account_nonces={}, next_height=10**6) == taken  # expired
    assert snapshot(pool, taken) == before
    pool.restore(taken, account_nonces={}, next_height=2)
    assert pool.restore(taken, account_nonces={}, next_height=2) == taken  # already pending
