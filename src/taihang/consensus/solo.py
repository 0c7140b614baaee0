"""Single-validator consensus: the one validator proposes, votes and certifies each block.

Theory of operation: with one validator of weight 1 the quorum is that validator, so the
validator's own vote on block h is QC(h), and h commits as soon as block and QC are persisted
(DESIGN.md §4, settled details). The round equals the height. Block h carries QC(h-1) and the
execution roots of the highest executed height e <= h - 3, exactly as a Jolteon block would,
so the header shape does not change when BFT consensus replaces this module.

Pure functions only: the caller supplies the time, the transactions and a `Signer`.
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
    ValidatorSet,
    build_vote_data,
    compute_tx_root,
    compute_vote_message,
    encode_signer_bitmap,
)


class Signer(Protocol):
    @property
    def address(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


def compute_exec_height(height: int, executed_height: int, parent_exec_height: int) -> int:
    """The exec_root height for block `height`: as high as executed, at most h - 3."""
    target = min(executed_height, max(0, height - EXEC_LAG_MIN))
    return max(target, parent_exec_height)


def build_block(
    *,
    parent: BlockHeader,
    parent_id: bytes,
    parent_qc: QuorumCert,
    transactions: list[bytes],
    exec_root: ExecRoot,
    timestamp_ms: int,
    proposer: str,
    validator_set_hash: bytes,
    suite: CryptoSuite,
) -> Block:
    height = parent.height + 1
    assert parent_qc.vote_data.block_id == parent_id, "the QC must certify the parent"
    assert exec_root.height <= max(0, height - EXEC_LAG_MIN), "exec_root lags at least 3"
    assert exec_root.height >= parent.exec_root.height, "exec_root never goes backwards"
    header = BlockHeader(
        protocol_version=PROTOCOL_VERSION,
        channel=parent.channel,
        epoch=parent.epoch,
        round=height,
        height=height,
        parent_id=parent_id,
        timestamp_ms=max(timestamp_ms, parent.timestamp_ms),
        proposer=proposer,
        tx_root=compute_tx_root(suite, transactions),
        exec_root=exec_root,
        validator_set_hash=validator_set_hash,
        qc=parent_qc,
    )
    return Block(header=header, transactions=transactions)


def certify_block(
    header: BlockHeader, signer: Signer, validators: ValidatorSet, suite: CryptoSuite
) -> QuorumCert:
    """The single validator's vote on `header`, which is the block's QC."""
    index = validators.index_of(signer.address)
    assert validators.members[index].weight >= validators.quorum_weight, "solo needs a quorum"
    vote_data = build_vote_data(suite, header)
    signature = signer.sign(compute_vote_message(vote_data))
    return QuorumCert(
        vote_data=vote_data,
        signers=encode_signer_bitmap([index], len(validators.members)),
        signatures=[signature],
    )
