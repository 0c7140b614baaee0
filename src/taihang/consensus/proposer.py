"""Building a leader's block (consensus spec, "Proposing"; DESIGN.md §3, "Execution").

Pure functions: the core decides when to propose; these decide what. The block extends the
block of the highest QC and carries that QC, plus the highest TC when the QC is not from the
previous round (so the round is justified). Its timestamp is the leader's clock, but always
after the parent's. Its payload is what the payload source offers, cut to the block limits.
Its `exec_root` is the highest height this leader has executed, at most h - 3 (a lag of 2
would put execution on the critical path) and never below the parent's: when the leader has
not executed that far, it repeats the parent's root.
"""

from __future__ import annotations

from typing import Protocol

from taihang.constants import EXEC_LAG_MIN, PROTOCOL_VERSION
from taihang.crypto import CryptoSuite
from taihang.ledger.block import (
    Block,
    BlockHeader,
    ExecRoot,
    QuorumCert,
    TimeoutCert,
    compute_tx_root,
)


class PayloadSource(Protocol):
    """Where a leader's transactions come from (the mempool; synthetic bytes in the simulator)."""

    def has_payload(self) -> bool:
        """Whether transactions are waiting (then the leader proposes after the min interval)."""
        ...

    def get_payload(
        self, height: int, parent_id: bytes, max_txs: int, max_bytes: int
    ) -> list[bytes]:
        """Transaction envelopes for block `height` on `parent_id`, within the limits."""
        ...


def take_payload(offered: list[bytes], max_txs: int, max_bytes: int) -> list[bytes]:
    """The longest prefix of `offered` within both limits."""
    taken: list[bytes] = []
    size = 0
    for tx in offered[:max_txs]:
        if size + len(tx) > max_bytes:
            break
        taken.append(tx)
        size += len(tx)
    return taken


def choose_exec_root(
    height: int, parent_exec: ExecRoot, executed: dict[int, ExecRoot], executed_height: int
) -> ExecRoot:
    """The highest executed height, at most h - 3, never below the parent's."""
    target = min(executed_height, max(0, height - EXEC_LAG_MIN))
    if target <= parent_exec.height:
        return parent_exec
    return executed.get(target, parent_exec)


def build_block(
    *,
    parent: Block,
    parent_id: bytes,
    round: int,
    qc: QuorumCert,
    tc: TimeoutCert | None,
    proposer: str,
    now_ms: int,
    transactions: list[bytes],
    exec_root: ExecRoot,
    validator_set_hash: bytes,
    suite: CryptoSuite,
) -> Block:
    assert qc.vote_data.block_id == parent_id, "a block extends the block its QC certifies"
    assert (tc is None) == (qc.vote_data.round + 1 == round), "a TC exactly when rounds skip"
    assert tc is None or tc.round + 1 == round, "a round after a TC is justified by it"
    header = BlockHeader(
        protocol_version=PROTOCOL_VERSION,
        channel=parent.header.channel,
        epoch=parent.header.epoch,
        round=round,
        height=parent.header.height + 1,
        parent_id=parent_id,
        timestamp_ms=max(now_ms, parent.header.timestamp_ms + 1),
        proposer=proposer,
        tx_root=compute_tx_root(suite, transactions),
        exec_root=exec_root,
        validator_set_hash=validator_set_hash,
        qc=qc,
        tc=tc,
    )
    return Block(header=header, transactions=transactions)
