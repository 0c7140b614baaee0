"""Fetching missing blocks from peers (consensus spec, "Block store, sync and catch-up").

Theory of operation: when a proposal, a QC or a commit names a block the node lacks, the core
asks for it with `RequestBlocks(peer, block_id, count)`: first the peer whose message named
the block (it has it, or it would not have sent the message), then, if no useful answer came
within `block_request_retry_ms`, the next validator in address order, and so on round the set.
At most one request per block id is outstanding and at most `outstanding_max` in all, so a
flood of unknown ids costs a bounded amount of traffic; a request that is still needed is
re-sent when the need comes up again (the next message naming it, or the next round timer).
An empty or useless answer moves on to the next peer at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from taihang.consensus.events import RequestBlocks
from taihang.consensus.messages import BlockResponse
from taihang.crypto import CryptoSuite
from taihang.ledger.block import Block, QuorumCert, compute_block_id


@dataclass(slots=True)
class _Request:
    peer: str
    count: int
    height: int
    sent_ms: int


class BlockFetcher:
    __slots__ = ("_outstanding", "_peers", "me", "outstanding_max", "retry_ms")

    def __init__(
        self, peers: tuple[str, ...], me: str | None, *, retry_ms: int, outstanding_max: int
    ) -> None:
        self.me = me
        self._peers = tuple(sorted(p for p in peers if p != me))
        self.retry_ms = retry_ms
        self.outstanding_max = outstanding_max
        self._outstanding: dict[bytes, _Request] = {}

    def __len__(self) -> int:
        return len(self._outstanding)

    def is_outstanding(self, block_id: bytes) -> bool:
        return block_id in self._outstanding

    def request(
        self, block_id: bytes, height: int, count: int, hint: str | None, now_ms: int
    ) -> list[RequestBlocks]:
        """Ask for `count` blocks ending at `block_id` (at `height`), unless already asked."""
        if not self._peers or count <= 0:
            return []
        pending = self._outstanding.get(block_id)
        if pending is not None:
            if now_ms - pending.sent_ms < self.retry_ms:
                return []
            return [self._resend(block_id, pending, now_ms)]
        if len(self._outstanding) >= self.outstanding_max:
            return []  # bounded: the need comes up again with the next message
        peer = hint if hint in self._peers else self._peers[0]
        self._outstanding[block_id] = _Request(peer, count, height, now_ms)
        return [RequestBlocks(peer=peer, block_id=block_id, count=count)]

    def on_failure(self, block_id: bytes, peer: str, now_ms: int) -> list[RequestBlocks]:
        """`peer` answered without the block: ask the next peer at once."""
        pending = self._outstanding.get(block_id)
        if pending is None or pending.peer != peer:
            return []
        return [self._resend(block_id, pending, now_ms)]

    def finish(self, block_id: bytes) -> None:
        """The block arrived (from anyone) or is no longer needed."""
        self._outstanding.pop(block_id, None)

    def retry_expired(self, now_ms: int) -> list[RequestBlocks]:
        """Re-send, to the next peer, every request older than `retry_ms` (in id order)."""
        return [
            self._resend(block_id, self._outstanding[block_id], now_ms)
            for block_id in sorted(self._outstanding)
            if now_ms - self._outstanding[block_id].sent_ms >= self.retry_ms
        ]

    def prune(self, committed_height: int) -> None:
        """Drop requests for heights the node has committed past (they can never attach)."""
        for block_id in [
            block_id
            for block_id, pending in self._outstanding.items()
            if pending.height <= committed_height
        ]:
            del self._outstanding[block_id]

    def _resend(self, block_id: bytes, pending: _Request, now_ms: int) -> RequestBlocks:
        position = self._peers.index(pending.peer) if pending.peer in self._peers else -1
        pending.peer = self._peers[(position + 1) % len(self._peers)]
        pending.sent_ms = now_ms
        return RequestBlocks(peer=pending.peer, block_id=block_id, count=pending.count)


def accept_response_blocks(
    response: BlockResponse, suite: CryptoSuite
) -> list[tuple[bytes, Block, QuorumCert]]:
    """The blocks of a response that form a certified hash chain from the id asked for.

    Newest first: the first block must hash to `request_id`, each next one to the parent its
    predecessor names, and each must come with a QC for exactly that block. The chain stops
    at the first block that does not fit; what came before it is still good.
    """
    accepted: list[tuple[bytes, Block, QuorumCert]] = []
    if len(response.blocks) != len(response.qcs):
        return accepted  # malformed (the verifier stage rejects it first)
    expected = response.request_id
    for block, qc in zip(response.blocks, response.qcs, strict=True):
        block_id: bytes = compute_block_id(suite, block.header)
        if block_id != expected or qc.vote_data.block_id != block_id:
            break
        accepted.append((block_id, block, qc))
        expected = block.header.parent_id
    return accepted
