"""Ledger sync messages (frame kind SYNC), in canonical encoding behind a tagged envelope.

A syncing node asks each peer for its committed tip (`TipRequest`); a `Tip` names the height
and id of the peer's committed head with the commit proof that made it committed: a QC on the
head's child whose round directly follows (the 2-chain rule), so one quorum of signatures
proves the whole chain below. Blocks then come in ranges (`RangeRequest` ->
`RangeResponse`, ascending heights), checked against the proof by their hash links alone.
"""

from __future__ import annotations

from typing import Final

from taihang.codec import Canonical
from taihang.codec.envelope import TaggedCodec
from taihang.ledger.block import Block, QuorumCert


class TipRequest(Canonical, frozen=True):
    nonce: int  # echoed, so a late answer to an earlier sync is told apart


class Tip(Canonical, frozen=True):
    nonce: int
    height: int
    block_id: bytes
    proof: QuorumCert | None  # None at height 0 (genesis needs no proof)


class RangeRequest(Canonical, frozen=True):
    start: int  # the lowest height wanted
    count: int


class RangeResponse(Canonical, frozen=True):
    start: int
    blocks: list[Block]  # heights start, start + 1, ... (fewer when the peer has fewer)


SyncMessage = TipRequest | Tip | RangeRequest | RangeResponse


_CODEC: Final[TaggedCodec[SyncMessage]] = TaggedCodec(
    {TipRequest: 1, Tip: 2, RangeRequest: 3, RangeResponse: 4}, "sync message"
)


def encode_sync_message(message: SyncMessage) -> bytes:
    return _CODEC.encode(message)


def decode_sync_message(data: bytes) -> SyncMessage:
    """Decode a sync frame; raise `DecodeError` for anything that is not one canonically."""
    return _CODEC.decode(data)
