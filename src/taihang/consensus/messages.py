"""Consensus messages and the safety record, in canonical encoding (consensus spec, DESIGN §4).

Every message names its channel and epoch inside what is signed, with a domain tag per type
(`taihang/vote/v1`, `taihang/timeout/v1`, `taihang/proposal/v1`), so no signature can be
replayed across channels, epochs or message types. Validators are named by address; QCs and
TCs identify signers by their index in the validator set ordered by address.

Wire form: `encode_message`/`decode_message` wrap a message in a tagged union, so one decoder
reads any of them and rejects everything else.
"""

from __future__ import annotations

from typing import Final

from taihang.codec import Canonical, encode
from taihang.codec.envelope import TaggedCodec
from taihang.constants import TAG_PROPOSAL, TAG_TIMEOUT
from taihang.ledger.block import Block, QuorumCert, TimeoutCert, VoteData


class SyncInfo(Canonical, frozen=True):
    """What every message carries so a receiver can catch up before handling it."""

    highest_qc: QuorumCert
    highest_tc: TimeoutCert | None
    highest_commit: (
        QuorumCert | None
    )  # a commit proof: QC on B1 with B1.parent_round + 1 == B1.round


class Vote(Canonical, frozen=True):
    vote_data: VoteData
    author: str  # validator address
    signature: bytes  # over compute_vote_message(vote_data)


class TimeoutSign(Canonical, frozen=True):
    """What a timeout signature covers."""

    channel: str
    epoch: int
    round: int
    hqc_round: int


class TimeoutMsg(Canonical, frozen=True):
    timeout: TimeoutSign
    high_qc: QuorumCert  # high_qc.vote_data.round == timeout.hqc_round
    author: str
    signature: bytes  # over compute_timeout_message(timeout)
    sync: SyncInfo


class Proposal(Canonical, frozen=True):
    block: Block
    signature: bytes  # the proposer's, over compute_proposal_message(block id)
    sync: SyncInfo


class BlockRequest(Canonical, frozen=True):
    """Ask a peer for `count` blocks ending at `block_id` (answered newest first)."""

    block_id: bytes
    count: int


class BlockResponse(Canonical, frozen=True):
    request_id: bytes  # the block_id asked for
    blocks: list[Block]  # newest first; each must hash to the id its child names
    qcs: list[QuorumCert]  # a QC certifying each block, in the same order


class SafetyData(Canonical, frozen=True):
    """The only state whose loss is Byzantine: written (fsync) before any vote or timeout."""

    epoch: int
    last_voted_round: int
    one_chain_round: int
    last_vote: Vote | None
    last_timeout: TimeoutMsg | None


ConsensusMessage = Proposal | Vote | TimeoutMsg | BlockRequest | BlockResponse


_CODEC: Final[TaggedCodec[ConsensusMessage]] = TaggedCodec(
    {Proposal: 1, Vote: 2, TimeoutMsg: 3, BlockRequest: 4, BlockResponse: 5},
    "consensus message",
)


def encode_message(message: ConsensusMessage) -> bytes:
    return _CODEC.encode(message)


def decode_message(data: bytes) -> ConsensusMessage:
    """Decode a wire message; raises `DecodeError` for anything that is not one canonically."""
    return _CODEC.decode(data)


def compute_timeout_message(timeout: TimeoutSign) -> bytes:
    return TAG_TIMEOUT + encode(timeout)


def compute_proposal_message(block_id: bytes) -> bytes:
    return TAG_PROPOSAL + block_id
