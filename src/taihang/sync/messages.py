"""Ledger sync messages (frame kind SYNC), in canonical encoding behind a tagged envelope.

A syncing node asks each peer for its committed tip (`TipRequest`); a `Tip` names the height
and id of the peer's committed head with the commit proof that made it committed: a QC on the
head's child whose round directly follows (the 2-chain rule), so one quorum of signatures
proves the whole chain below. Blocks then come in ranges (`RangeRequest` ->
`RangeResponse`, ascending heights), checked against the proof by their hash links alone.
"""

from __future__ import annotations

from typing import Final

import msgspec

from taihang.codec import Canonical, decode, encode
from taihang.errors import DecodeError
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


class _Envelope(Canonical, frozen=True):
    kind: int
    body: msgspec.Raw


_KINDS: Final[dict[type, int]] = {TipRequest: 1, Tip: 2, RangeRequest: 3, RangeResponse: 4}
_TYPES: Final[dict[int, type]] = {kind: cls for cls, kind in _KINDS.items()}


def encode_sync_message(message: SyncMessage) -> bytes:
    return encode(_Envelope(kind=_KINDS[type(message)], body=msgspec.Raw(encode(message))))


def decode_sync_message(data: bytes) -> SyncMessage:
    """Decode a sync frame; raise `DecodeError` for anything that is not one canonically."""
    envelope = decode(data, _Envelope)
    cls = _TYPES.get(envelope.kind)
    if cls is None:
        raise DecodeError(f"unknown sync message kind {envelope.kind}")
    message: SyncMessage = decode(bytes(envelope.body), cls)
    return message
