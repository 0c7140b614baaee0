"""The mempool: admission, dedupe, per-sender nonce order and fair, bounded block filling.

Theory of operation
-------------------
The pool holds transactions whose structure and signature were already checked at the door
(DESIGN.md §1.4). It is a sans-IO core: the caller supplies every fact about the world (the
sender's nonce in the executed state, the height of the next block) and nothing here reads a
clock, a disk or a random source, so two nodes fed the same calls hold the same pool and fill
the same blocks.

Per sender the pool keeps one record:

* ``txs``: pending transactions by nonce, at most ``per_sender_max`` of them.
* ``state_nonce``: the highest account nonce the executed state has reported (through `add`
  or `mark_executed`); nonces only ever grow, so the pool keeps the maximum it has seen.
* ``base``: the next nonce this sender can be included at, ``max(state_nonce,
  included_next)``, where ``included_next`` is one past the last nonce `take` handed out in a
  block. Blocks are committed before they are executed (execution lags, DESIGN.md §3), so
  without ``included_next`` the pool would hand the same nonce out twice.

Invariants, checked by the property tests:

1. Every pending nonce of a sender is ``>= base``: lower ones are consumed, and they are
   pruned the moment ``base`` rises.
2. No two pending transactions share a ``(sender, nonce)`` or an id.
3. ``len(pool) <= txs_max`` and ``bytes_total <= bytes_max``.
4. A sender is *ready* exactly when ``base`` is pending; only ready senders sit in the ready
   queue, each once.
5. A record with no pending transactions and ``base == state_nonce`` is forgotten, so memory
   is bounded by the pending transactions plus the senders with blocks in flight.

Transitions:

* `add` validates first and mutates only when every check passed, so a rejection
  (`MempoolRejection` with a `RejectCode`) leaves the pool exactly as it was. Checks, in
  order: duplicate id, expiry, nonce below ``base`` (``nonce_too_low``), nonce beyond
  ``base + nonce_gap_max`` (``nonce_gap``), a pending transaction with the same nonce
  (``nonce_taken``; there is no replacement: without fees nothing prices a replacement, so it
  would let a sender churn the pool and the gossip for free), ``per_sender_max``
  (``sender_limit``) and the pool totals (``mempool_full``). A full pool rejects rather than
  evicts: eviction would let one sender push out others. An ``account_nonce`` above what the
  pool knew means other proposers' blocks consumed nonces; `add` prunes those first.
* `take` fills a block round-robin over the ready senders: the queue is ordered by when each
  sender's head became ready; a sender that was served goes to the back, so a sender with many
  transactions cannot starve others. Only the run of consecutive nonces from ``base`` is taken;
  a gapped transaction waits until the gap fills. An expired head is dropped (its sender then
  has a gap). Filling stops at the first transaction that does not fit either cap, so both
  caps hold exactly and the order never depends on sizes further down the queue. A sender
  that stays ready while its ``base`` rises keeps its turn; one that stops being ready (its
  head taken last, expired or pruned) queues again at the back when a new head arrives.
* `mark_executed` raises ``state_nonce``; pending transactions below it were consumed (by
  this node's blocks or by other proposers') and are dropped.
* `remove_expired` drops every transaction that can no longer be included.

The caller's duties: pass account nonces from the executed state (never older than ones
already reported); call `mark_executed` after each executed block, with the nonces of every
sender in it; pass `take` a ``bytes_max`` at least the largest admissible transaction
(``TX_BYTES_MAX``), or a bigger head would hold its turn, and the block, forever.

Cost: `add` is O(log n) (one heap push for expiry, the rest dict operations); `take(k)` is
O(k) plus skipped stale queue entries; nothing sorts the pool. The ready queue and the expiry
heap delete lazily and are compacted when stale entries outnumber live ones, which keeps
both bounded by a constant factor of the pool. Iteration order is always the order of calls
(a deque, insertion-ordered dicts, sorted addresses), never `hash()` or set order.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Container, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from taihang.constants import BLOCK_GAS_LIMIT
from taihang.errors import ConfigurationError, MempoolRejection
from taihang.ledger.transaction import Transaction
from taihang.types import TxId

# Lazy-deletion structures are rebuilt when their stale entries pass this floor and outnumber
# the live ones; the floor keeps small pools from rebuilding on every call.
_STALE_ENTRIES_MIN: Final = 1024


class RejectCode(StrEnum):
    """Why `Mempool.add` refused a transaction; the `code` of the `MempoolRejection`."""

    duplicate = "duplicate"
    nonce_too_low = "nonce_too_low"
    nonce_taken = "nonce_taken"
    nonce_gap = "nonce_gap"
    sender_limit = "sender_limit"
    mempool_full = "mempool_full"
    expired = "expired"


@dataclass(frozen=True, slots=True)
class MempoolLimits:
    """Bounds on the pool (DESIGN.md §1.5); all come from config."""

    txs_max: int  # pending transactions in total
    bytes_max: int  # total encoded size of the pending transactions
    per_sender_max: int  # pending transactions of one sender
    nonce_gap_max: int  # how far beyond the expected nonce a transaction may be

    def __post_init__(self) -> None:
        for name in ("txs_max", "bytes_max", "per_sender_max"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"mempool {name} must be at least 1")
        if self.nonce_gap_max < 0:
            raise ConfigurationError("mempool nonce_gap_max must not be negative")


class _Sender:
    """The pool's record of one sender (see the theory of operation)."""

    __slots__ = ("base", "state_nonce", "ticket", "txs")

    def __init__(self, state_nonce: int) -> None:
        self.txs: dict[int, Transaction] = {}
        self.state_nonce = state_nonce
        self.base = state_nonce
        # The ready-queue entry that is live for this sender; 0 when it is not queued.
        self.ticket = 0


def _reject(code: RejectCode, message: str) -> MempoolRejection:
    return MempoolRejection(message, code=code.value)


class Mempool:
    """Pending transactions of one channel; see the module docstring for the rules."""

    def __init__(self, limits: MempoolLimits) -> None:
        self._limits = limits
        self._by_id: dict[TxId, Transaction] = {}
        self._senders: dict[str, _Sender] = {}
        self._bytes_total = 0
        # (ticket, record): ready senders in round-robin order; an entry is live only while
        # its ticket equals the record's, so removal is O(1) and skipped later by `take`.
        self._ready: deque[tuple[int, _Sender]] = deque()
        self._ready_stale = 0
        self._ticket_last = 0
        # (expires_at_height, sequence, id); entries of transactions that left the pool stay
        # until popped or compacted. The sequence number keeps comparisons off the ids.
        self._expiry: list[tuple[int, int, TxId]] = []
        self._sequence = 0

    # ----------------------------------------------------------------------------- queries

    @property
    def limits(self) -> MempoolLimits:
        return self._limits

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def bytes_total(self) -> int:
        """The total encoded size of the pending transactions."""
        return self._bytes_total

    def has_ready(self) -> bool:
        """True when some sender's next nonce is pending, so `take` would return something."""
        return len(self._ready) > self._ready_stale

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._by_id

    def pending_count(self, sender: str) -> int:
        record = self._senders.get(sender)
        return 0 if record is None else len(record.txs)

    def expected_nonce(self, sender: str, account_nonce: int) -> int:
        """The nonce a client should use next: one past the sender's consecutive pending run."""
        record = self._senders.get(sender)
        if record is None:
            return account_nonce
        nonce = max(account_nonce, record.base)
        while nonce in record.txs:
            nonce += 1
        return nonce

    # ----------------------------------------------------------------------------- admission

    def add(self, tx: Transaction, *, account_nonce: int, next_height: int) -> None:
        """Admit `tx` or raise `MempoolRejection`, leaving the pool unchanged."""
        record = self._senders.get(tx.sender)
        base = account_nonce if record is None else max(account_nonce, record.base)
        stale = self._find_below(record, base)
        self._validate_add(tx, record, base, stale, next_height)
        if record is None:
            record = _Sender(account_nonce)
            self._senders[tx.sender] = record
        elif account_nonce > record.state_nonce:
            record.state_nonce = account_nonce
        if base > record.base and self._advance_base(record, base):
            self._enqueue(record)
        self._insert(record, tx)

    def restore(
        self, txs: list[Transaction], *, account_nonces: Mapping[str, int], next_height: int
    ) -> list[Transaction]:
        """Put back the transactions of blocks that lost a fork; return those left out.

        With several proposers, `take` (and `exclude`) hand a nonce out when a block that
        holds it is proposed; when that block is abandoned, the nonce was never used. Each
        sender's transactions go back as one run, and its `base` moves down to the lowest of
        them, so its next block can carry them again. They were admitted once, so the
        admission limits (`nonce_gap_max`, `per_sender_max`, the pool totals) are not applied
        again: a leader whose proposals keep getting lost may hold more than a new sender
        could submit, but never loses what it accepted. Left out: nonces the executed state
        consumed (`account_nonces`), ids or nonces already pending, expired transactions.
        Should another committed block hold the same nonce after all, the copy gets a
        `rejected` receipt: a wasted slot, never a lost transaction.
        """
        left_out: list[Transaction] = []
        by_sender: dict[str, list[Transaction]] = {}
        for tx in txs:
            by_sender.setdefault(tx.sender, []).append(tx)
        for sender in sorted(by_sender):  # never let the caller's order reach the queue
            account_nonce = account_nonces.get(sender, 0)
            record = self._senders.get(sender)
            if record is None:
                record = _Sender(account_nonce)
                self._senders[sender] = record
            record.state_nonce = max(record.state_nonce, account_nonce)
            lowest = record.base
            for tx in sorted(by_sender[sender], key=lambda t: t.nonce):
                if (
                    tx.nonce < record.state_nonce
                    or tx.id in self._by_id
                    or tx.nonce in record.txs
                    or tx.body.expires_at_height < next_height
                ):
                    left_out.append(tx)
                    continue
                lowest = min(lowest, tx.nonce)
                self._insert(record, tx)
            self._settle_base(sender, record, max(lowest, record.state_nonce))
        return left_out

    def _settle_base(self, sender: str, record: _Sender, base: int) -> None:
        """Set `record.base` (up or down) and make its place in the ready queue right."""
        if base > record.base:
            for tx in self._find_below(record, base):
                self._remove(record, tx)
        record.base = base
        if base in record.txs:
            if record.ticket == 0:
                self._enqueue(record)
        else:
            self._dequeue(record)
        self._forget_if_idle(sender, record)

    def _validate_add(
        self,
        tx: Transaction,
        record: _Sender | None,
        base: int,
        stale: list[Transaction],
        next_height: int,
    ) -> None:
        """Raise the first rule `tx` breaks; `stale` are the sender's txs that `add` prunes."""
        limits = self._limits
        if tx.id in self._by_id:
            raise _reject(RejectCode.duplicate, f"transaction {tx.id.hex()} is already pending")
        if tx.body.expires_at_height < next_height:
            raise _reject(
                RejectCode.expired,
                f"transaction expired at height {tx.body.expires_at_height}; "
                f"the next block is {next_height}",
            )
        if tx.nonce < base:
            raise _reject(
                RejectCode.nonce_too_low,
                f"nonce {tx.nonce} of sender {tx.sender} is already used; "
                f"the expected nonce is {base}",
            )
        if tx.nonce > base + limits.nonce_gap_max:
            raise _reject(
                RejectCode.nonce_gap,
                f"nonce {tx.nonce} of sender {tx.sender} is more than "
                f"{limits.nonce_gap_max} ahead of the expected nonce {base}",
            )
        if record is not None and tx.nonce in record.txs:
            raise _reject(
                RejectCode.nonce_taken,
                f"sender {tx.sender} already has a pending transaction with nonce {tx.nonce}",
            )
        pending = 0 if record is None else len(record.txs) - len(stale)
        if pending >= limits.per_sender_max:
            raise _reject(
                RejectCode.sender_limit,
                f"sender {tx.sender} already has {pending} pending transactions, "
                f"the limit is {limits.per_sender_max}",
            )
        count = len(self._by_id) - len(stale)
        size = self._bytes_total - sum(old.size for old in stale)
        if count + 1 > limits.txs_max or size + tx.size > limits.bytes_max:
            raise _reject(
                RejectCode.mempool_full,
                f"mempool holds {count} transactions and {size} bytes; adding {tx.size} bytes "
                f"would exceed {limits.txs_max} transactions or {limits.bytes_max} bytes",
            )

    # ----------------------------------------------------------------------------- block filling

    def take(
        self,
        txs_max: int,
        bytes_max: int,
        next_height: int,
        exclude: Container[bytes] = (),
        gas_max: int = BLOCK_GAS_LIMIT,
    ) -> list[Transaction]:
        """Remove and return the transactions for the next block, fairly across senders.

        `exclude` holds ids already in the uncommitted blocks the new block extends (other
        proposers' blocks, with several validators): such a head is consumed as if taken,
        without going into this block, so no block repeats a transaction of its ancestors.
        The block's transactions declare at most `gas_max` gas in all (their gas limits).
        """
        if txs_max < 0 or bytes_max < 0 or gas_max < 0:
            raise ValueError(f"take caps must not be negative: {txs_max}, {bytes_max}, {gas_max}")
        taken: list[Transaction] = []
        bytes_left = bytes_max
        gas_left = gas_max
        # Local aliases for the hot loop; nothing below replaces `self._ready` (only
        # `_dequeue` compacts it, and this loop never calls it).
        ready = self._ready
        by_id = self._by_id
        while ready and len(taken) < txs_max:
            entry = ready.popleft()
            ticket, record = entry
            if record.ticket != ticket:
                self._ready_stale -= 1  # the sender stopped being ready after it was queued
                continue
            tx = record.txs[record.base]
            if tx.body.expires_at_height < next_height:
                record.ticket = 0  # dropping the head leaves a gap at `base`
                self._remove(record, tx)
                self._forget_if_idle(tx.sender, record)
                continue
            if tx.id in exclude:
                self._consume_head(record, tx)
                if record.base in record.txs:
                    ready.append(entry)
                else:
                    record.ticket = 0
                continue
            size = tx.size
            if size > bytes_left or tx.body.gas_limit > gas_left:
                ready.appendleft(entry)  # not served: it keeps its turn for the next block
                break
            del record.txs[record.base]
            del by_id[tx.id]
            record.base += 1
            bytes_left -= size
            gas_left -= tx.body.gas_limit
            taken.append(tx)
            if record.base in record.txs:
                ready.append(entry)
            else:
                record.ticket = 0
        self._bytes_total -= bytes_max - bytes_left
        return taken

    def _consume_head(self, record: _Sender, tx: Transaction) -> None:
        """Drop `record`'s head as included elsewhere: `base` moves past it."""
        del record.txs[record.base]
        del self._by_id[tx.id]
        record.base += 1
        self._bytes_total -= tx.size

    # ----------------------------------------------------------------------------- state updates

    def mark_executed(self, nonces: Mapping[str, int]) -> None:
        """Record senders' account nonces after execution; drop what they consumed."""
        newly_ready: list[str] = []
        for sender, nonce in nonces.items():
            record = self._senders.get(sender)
            if record is None:
                continue  # nothing pending and nothing in flight: nothing to remember
            record.state_nonce = max(record.state_nonce, nonce)
            if nonce > record.base and self._advance_base(record, nonce):
                newly_ready.append(sender)
            self._forget_if_idle(sender, record)
        # The mapping's order may come from the network; queue order must not (DESIGN.md §1.2).
        for sender in sorted(newly_ready):
            self._enqueue(self._senders[sender])

    def remove_expired(self, next_height: int) -> int:
        """Drop every transaction that expires before `next_height`; return how many."""
        removed = 0
        expiry = self._expiry
        while expiry and expiry[0][0] < next_height:
            tx = self._by_id.get(heapq.heappop(expiry)[2])
            if tx is None:
                continue  # already taken or pruned
            record = self._senders[tx.sender]
            if tx.nonce == record.base:
                self._dequeue(record)
            self._remove(record, tx)
            self._forget_if_idle(tx.sender, record)
            removed += 1
        return removed

    # ----------------------------------------------------------------------------- internals

    @staticmethod
    def _find_below(record: _Sender | None, base: int) -> list[Transaction]:
        """The pending transactions of `record` below `base` (consumed by others' blocks)."""
        if record is None or base <= record.base or not record.txs:
            return []
        return [tx for nonce, tx in record.txs.items() if nonce < base]

    def _insert(self, record: _Sender, tx: Transaction) -> None:
        record.txs[tx.nonce] = tx
        self._by_id[tx.id] = tx
        self._bytes_total += tx.size
        self._sequence += 1
        heapq.heappush(self._expiry, (tx.body.expires_at_height, self._sequence, tx.id))
        if tx.nonce == record.base and record.ticket == 0:
            self._enqueue(record)
        if len(self._expiry) > 2 * len(self._by_id) + _STALE_ENTRIES_MIN:
            self._compact_expiry()

    def _remove(self, record: _Sender, tx: Transaction) -> None:
        """Drop a pending transaction; the caller keeps the ready queue right."""
        del record.txs[tx.nonce]
        del self._by_id[tx.id]
        self._bytes_total -= tx.size

    def _advance_base(self, record: _Sender, base: int) -> bool:
        """Raise `record.base`, pruning what it passed; True if the sender must be queued."""
        for tx in self._find_below(record, base):
            self._remove(record, tx)
        record.base = base
        if base not in record.txs:
            self._dequeue(record)
            return False
        return record.ticket == 0

    def _forget_if_idle(self, sender: str, record: _Sender) -> None:
        # Nothing pending and execution has caught up with every block: nothing to remember.
        if not record.txs and record.base <= record.state_nonce:
            assert record.ticket == 0, "a sender without transactions cannot be ready"
            del self._senders[sender]

    def _enqueue(self, record: _Sender) -> None:
        self._ticket_last += 1
        record.ticket = self._ticket_last
        self._ready.append((record.ticket, record))

    def _dequeue(self, record: _Sender) -> None:
        if record.ticket == 0:
            return
        record.ticket = 0
        self._ready_stale += 1
        if self._ready_stale > _STALE_ENTRIES_MIN and 2 * self._ready_stale > len(self._ready):
            self._ready = deque(entry for entry in self._ready if entry[1].ticket == entry[0])
            self._ready_stale = 0

    def _compact_expiry(self) -> None:
        # One entry per live id (a re-added id may have left an older entry behind).
        live = {entry[2]: entry for entry in self._expiry if entry[2] in self._by_id}
        self._expiry = list(live.values())
        heapq.heapify(self._expiry)
