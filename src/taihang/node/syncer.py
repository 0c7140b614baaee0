"""Ledger sync on a node: serving tips and ranges to peers, and catching up from far behind.

Theory of operation. A node syncs when it starts and when, while running, a verified message
shows the chain more than `consensus.catchup_blocks_max` blocks above its committed head
(the driver then pauses its core). A sync:

1. asks every connected peer for its committed tip (`TipRequest`) and waits up to
   `TIP_WAIT_S` for the answers; each `Tip` is verified (a quorum-signed commit proof) in a
   worker thread, and a peer with a bad one is charged;
2. picks the highest verified tip; if it is within the catch-up threshold, consensus's own
   block requests will do and the sync ends here;
3. downloads the blocks between its head and the tip in windows, several peers at once
   (`taihang.sync.plan.SyncPlan`), each window verified by hash links down from the certified
   tip; a peer that sends bad data or does not answer within `RANGE_TIMEOUT_S` is charged and
   dropped for this sync, and its window goes to another peer;
4. stages verified windows on disk (`sB<height>`, not synced: they can be fetched again),
   then commits them upwards in synced batches, each block with a certificate (its child's
   QC; the tip with the commit proof), and queues them for execution.

The driver then rebuilds its core from disk, whose highest QC includes the commit proof, so
consensus resumes from the fetched certificates. Serving is the other half: a `TipRequest` is
answered with this node's committed head and its stored commit proof, a `RangeRequest` with
up to `RANGE_BLOCKS_MAX` committed blocks read from the ledger store in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from taihang.codec import decode, encode
from taihang.crypto import CryptoSuite
from taihang.errors import InvalidInput
from taihang.ledger.block import Block, QuorumCert, compute_block_id
from taihang.net import FrameKind, Transport
from taihang.node.chain import Chain
from taihang.node.logs import log
from taihang.store.consensus_records import ConsensusRecords
from taihang.sync.messages import (
    RangeRequest,
    RangeResponse,
    SyncMessage,
    Tip,
    TipRequest,
    encode_sync_message,
)
from taihang.sync.plan import BadRange, ForkDetected, SyncPlan
from taihang.sync.verify import verify_tip

logger = logging.getLogger("taihang.sync")

TIP_WAIT_S: Final = 1.0
RANGE_TIMEOUT_S: Final = 5.0
RANGE_BLOCKS_MAX: Final = 64
COMMIT_BATCH_BLOCKS: Final = 256
SYNC_ATTEMPTS_MAX: Final = 3
STAGING_PREFIX: Final = b"sB"
_HEIGHT = struct.Struct(">Q")


@dataclass(slots=True)
class SyncResult:
    from_height: int
    to_height: int
    blocks: int
    seconds: float


class LedgerSyncer:
    def __init__(
        self,
        chain: Chain,
        transport: Transport,
        *,
        threshold: int,
        charge: Callable[[str, str], None],
        on_committed: Callable[[int, bytes], None],
        is_stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.chain = chain
        self.suite: CryptoSuite = chain.suite
        self.transport = transport
        self.threshold = threshold
        self._charge = charge
        self._on_committed = on_committed
        self._is_stopping = is_stopping
        self._nonce = 0
        self._tips: asyncio.Queue[tuple[str, Tip]] | None = None
        self._ranges: asyncio.Queue[tuple[str, RangeResponse]] | None = None
        self._serving: dict[str, int] = {}

    # --- serving peers --------------------------------------------------------------------
    def on_message(self, peer: str, message: SyncMessage) -> None:
        """A verified-to-decode sync message from `peer` (called on the loop)."""
        if isinstance(message, TipRequest):
            self._send(peer, self._build_tip(message.nonce))
        elif isinstance(message, RangeRequest):
            if self._serving.get(peer, 0) >= 2:
                return  # it asks again after its timeout
            self._serving[peer] = self._serving.get(peer, 0) + 1
            asyncio.get_running_loop().create_task(self._serve_range(peer, message))
        elif isinstance(message, Tip):
            if self._tips is not None and message.nonce == self._nonce:
                self._tips.put_nowait((peer, message))
        elif self._ranges is not None:
            self._ranges.put_nowait((peer, message))

    def _build_tip(self, nonce: int) -> Tip:
        chain = self.chain
        proof = chain.highest_qc
        proves = proof.vote_data.parent_id == chain.tip_id
        return Tip(nonce, chain.tip_height, chain.tip_id, proof if proves else None)

    async def _serve_range(self, peer: str, request: RangeRequest) -> None:
        try:
            count = max(0, min(request.count, RANGE_BLOCKS_MAX))
            blocks = await asyncio.to_thread(self._read_range, request.start, count)
        finally:
            self._serving[peer] -= 1
        self._send(peer, RangeResponse(start=request.start, blocks=blocks))

    def _read_range(self, start: int, count: int) -> list[Block]:
        blocks = []
        for height in range(max(start, 1), min(start + count, self.chain.tip_height + 1)):
            raw = self.chain.store.find_block(height)
            if raw is None:
                break
            blocks.append(decode(raw, Block))
        return blocks

    def _send(self, peer: str, message: SyncMessage) -> None:
        self.transport.send(peer, FrameKind.SYNC, encode_sync_message(message))

    # --- syncing --------------------------------------------------------------------------
    async def sync(self, *, wait_for_peers_s: float = 0.0) -> SyncResult | None:
        """Catch up if the network is more than the threshold ahead; None if not needed.

        A failed attempt (every peer able to serve the target dropped) retries towards the
        highest tip among the peers left; when nothing works the node goes on with consensus
        catch-up alone, and logs why. `ForkDetected` is the one error that propagates.
        """
        deadline = time.monotonic() + wait_for_peers_s
        while not self.transport.connected_peers() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        tips = await self._collect_tips()
        started = time.monotonic()
        local = self.chain.tip_height
        for _ in range(SYNC_ATTEMPTS_MAX):
            if not tips or self._is_stopping():
                return None
            target = max(tips.values(), key=lambda tip: tip.height)
            if target.height - local <= self.threshold:
                return None
            log(logger, "ledger_sync_started", from_height=local, to_height=target.height)
            plan = SyncPlan(local, self.chain.tip_id, target, self.suite, window=RANGE_BLOCKS_MAX)
            try:
                await self._download(plan, {peer: tip.height for peer, tip in tips.items()})
            except SyncFailed as exc:
                log(logger, "ledger_sync_failed", logging.WARNING, reason=str(exc))
                tips = {p: t for p, t in tips.items() if p not in plan.dropped}
                continue
            await self._commit_staged(local + 1, target)
            seconds = time.monotonic() - started
            result = SyncResult(local, target.height, target.height - local, seconds)
            log(
                logger,
                "ledger_sync_done",
                from_height=local,
                to_height=target.height,
                blocks=result.blocks,
                seconds=round(result.seconds, 3),
            )
            return result
        return None

    async def _collect_tips(self) -> dict[str, Tip]:
        peers = self.transport.connected_peers()
        if not peers:
            return {}
        self._nonce += 1
        self._tips = asyncio.Queue()
        for peer in peers:
            self._send(peer, TipRequest(self._nonce))
        answers: dict[str, Tip] = {}
        deadline = time.monotonic() + TIP_WAIT_S
        try:
            while len(answers) < len(peers):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    peer, tip = await asyncio.wait_for(self._tips.get(), remaining)
                except TimeoutError:
                    break
                answers[peer] = tip
        finally:
            self._tips = None
        verified = {}
        for peer, tip in answers.items():
            problem = await asyncio.to_thread(self._verify_tip, tip)
            if problem is None:
                verified[peer] = tip
            else:
                self._charge(peer, f"bad sync tip: {problem}")
        return verified

    def _verify_tip(self, tip: Tip) -> str | None:
        chain = self.chain
        try:
            verify_tip(
                tip,
                chain.validators,
                self.suite,
                channel=chain.genesis.channel,
                epoch=0,
                genesis_id=chain.genesis_id,
            )
        except InvalidInput as exc:
            return exc.message
        return None

    async def _download(self, plan: SyncPlan, heights: dict[str, int]) -> None:
        self._ranges = asyncio.Queue()
        sent_at: dict[str, float] = {}
        try:
            while not plan.done:
                if self._is_stopping():
                    raise SyncFailed("the node is stopping")
                for peer, request in plan.next_requests(heights):
                    sent_at[peer] = time.monotonic()
                    self._send(peer, request)
                if not plan.assigned:
                    raise SyncFailed(
                        f"no peer left that can serve the blocks up to {plan.target.height}"
                    )
                await self._take_response(plan, sent_at)
        finally:
            self._ranges = None

    async def _take_response(self, plan: SyncPlan, sent_at: dict[str, float]) -> None:
        assert self._ranges is not None
        oldest = min(sent_at[p] for p in plan.assigned)
        wait_s = max(0.0, oldest + RANGE_TIMEOUT_S - time.monotonic())
        try:
            peer, response = await asyncio.wait_for(self._ranges.get(), wait_s)
        except TimeoutError:
            for late in [
                p for p in plan.assigned if sent_at[p] + RANGE_TIMEOUT_S <= time.monotonic()
            ]:
                plan.on_failure(late)
                self._charge(late, "no answer to a sync range request")
            return
        try:
            verified = plan.on_response(peer, response)
        except BadRange as exc:
            log(logger, "sync_peer_dropped", logging.WARNING, peer=exc.peer, reason=exc.message)
            self._charge(exc.peer, f"bad sync range: {exc.message}")
            verified = exc.verified  # windows above the bad one were good
        except ForkDetected as exc:
            log(logger, "sync_fork_detected", logging.CRITICAL, reason=str(exc))
            raise
        if verified:
            await asyncio.to_thread(self._stage, verified)

    def _stage(self, windows: list[tuple[int, list[Block]]]) -> None:
        puts: dict[bytes, bytes | None] = {}
        for start, blocks in windows:
            for offset, block in enumerate(blocks):
                puts[STAGING_PREFIX + _HEIGHT.pack(start + offset)] = encode(block)
        self.chain.kv.write(puts, sync=False)

    async def _commit_staged(self, first: int, target: Tip) -> None:
        assert target.proof is not None
        height = first
        while height <= target.height:
            last = min(height + COMMIT_BATCH_BLOCKS - 1, target.height)
            committed = await asyncio.to_thread(self._commit_batch, height, last, target)
            for block_height, block_id in committed:
                self._on_committed(block_height, block_id)
            height = last + 1

    def _commit_batch(self, first: int, last: int, target: Tip) -> list[tuple[int, bytes]]:
        keys = [STAGING_PREFIX + _HEIGHT.pack(h) for h in range(first, last + 2)]
        raws = self.chain.kv.multi_get(keys)
        blocks = [decode(raw, Block) for raw in raws[: last - first + 1] if raw is not None]
        assert len(blocks) == last - first + 1, "every verified block is staged"
        ids = [compute_block_id(self.suite, b.header) for b in blocks]
        child_raw = raws[-1]
        if last == target.height:
            certificate: QuorumCert = target.proof  # type: ignore[assignment]
            retire = ConsensusRecords(self.chain.kv).build_retire_below(last)
        else:
            assert child_raw is not None, "the block above a batch is staged"
            certificate = decode(child_raw, Block).header.qc  # certifies the batch's last block
            retire = {}
        puts: dict[bytes, bytes | None] = {key: None for key in keys[:-1]}
        puts.update(retire)
        self.chain.commit_blocks(list(zip(ids, blocks, strict=True)), certificate, puts)
        return [(b.header.height, i) for b, i in zip(blocks, ids, strict=True)]


class SyncFailed(Exception):
    """No peer could serve the missing blocks."""
