"""Pure checks of what peers send during ledger sync.

A `Tip` is believed only with a valid commit proof: a QC signed by a quorum of the channel's
validators, on a block whose round directly follows its parent's (the 2-chain rule), naming
the tip as that parent. Blocks are then checked downwards by hash links from the certified tip:
the block at the tip height must hash to the tip id, and each block to the `parent_id` its
child names, and its transactions must hash to the header's `tx_root` (the id covers the
header only). Nothing else needs checking to know it is the committed block (a preimage of
SHA-256/SM3 cannot be forged); execution then recomputes its effects.
"""

from __future__ import annotations

from taihang.crypto import CryptoSuite
from taihang.errors import InvalidInput
from taihang.ledger.block import (
    Block,
    ValidatorSet,
    compute_block_id,
    compute_tx_root,
    verify_qc,
)
from taihang.sync.messages import Tip


class InvalidSyncData(InvalidInput):
    code = "invalid_sync_data"


def verify_tip(
    tip: Tip,
    validators: ValidatorSet,
    suite: CryptoSuite,
    *,
    channel: str,
    epoch: int,
    genesis_id: bytes,
) -> None:
    """Raise `InvalidSyncData` (or `InvalidCertificate`) unless `tip` is proven committed."""
    if tip.height < 0:
        raise InvalidSyncData(f"tip height {tip.height} is negative")
    if tip.height == 0:
        if tip.block_id != genesis_id:
            raise InvalidSyncData("a tip at height 0 must be the genesis block")
        return
    proof = tip.proof
    if proof is None:
        raise InvalidSyncData(f"tip at height {tip.height} comes without a commit proof")
    data = proof.vote_data
    if data.parent_round + 1 != data.round:
        raise InvalidSyncData(
            f"the proof certifies round {data.round} on parent round {data.parent_round}: "
            "not consecutive, so it commits nothing"
        )
    if data.parent_id != tip.block_id or data.height != tip.height + 1:
        raise InvalidSyncData("the commit proof does not name the tip as its parent")
    verify_qc(proof, validators, suite, channel=channel, epoch=epoch, genesis_id=genesis_id)


def link_range_down(
    blocks: list[Block], start: int, expected_top_id: bytes, suite: CryptoSuite
) -> bytes:
    """Check ascending `blocks` (heights start..) against the id expected for the top one.

    Returns the id the block below `start` must have (the lowest block's parent_id).
    """
    if not blocks:
        raise InvalidSyncData("an empty range")
    expected = expected_top_id
    for offset in range(len(blocks) - 1, -1, -1):
        block = blocks[offset]
        height = start + offset
        if block.header.height != height:
            raise InvalidSyncData(f"block at position {offset} has height {block.header.height}")
        if compute_block_id(suite, block.header) != expected:
            raise InvalidSyncData(f"block {height} does not hash to the id its child names")
        if compute_tx_root(suite, block.transactions) != block.header.tx_root:
            raise InvalidSyncData(f"block {height}'s transactions do not match its tx_root")
        expected = block.header.parent_id
    return expected
