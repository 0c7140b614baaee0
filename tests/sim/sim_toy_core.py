"""A toy consensus core for testing the simulator itself, independent of the Jolteon core.

Theory of operation: node 0 is a fixed leader. Every `idle_block_interval_ms` it builds the
next block on its tip, persists it, commits it at once and broadcasts it. A follower that gets
the next block in line persists safety data, sends a signed vote to the leader and commits the
block; a block further ahead is parked and its missing ancestors requested from the sender,
which answers from its blocks. It is safe (one proposer, heights in order) and live once the
network heals, so the simulator's checks pass on it; each `bug` variant breaks exactly one
property so a test can show the matching check fires. It uses the real message types, the
real encoding and real signatures of the run's suite, so the engine is exercised end to end.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from taihang.consensus.events import (
    Action,
    BlockExecuted,
    Broadcast,
    CancelTimer,
    Commit,
    Event,
    MessageReceived,
    PersistBlock,
    PersistSafetyData,
    RequestBlocks,
    Send,
    SetTimer,
    Started,
    TimerFired,
)
from taihang.consensus.messages import (
    BlockRequest,
    BlockResponse,
    ConsensusMessage,
    Proposal,
    SafetyData,
    SyncInfo,
    TimeoutMsg,
    TimeoutSign,
    Vote,
    compute_proposal_message,
    compute_timeout_message,
)
from taihang.constants import PROTOCOL_VERSION
from taihang.errors import InvalidSignature
from taihang.ledger.block import (
    Block,
    BlockHeader,
    QuorumCert,
    VoteData,
    compute_block_id,
    compute_vote_message,
)
from taihang.sim.cluster import Cluster, SimTiming
from taihang.sim.node import SimDisk, SimPayload


class ToyCore:
    def __init__(self, cluster: Cluster, node: int, disk: SimDisk, bug: str | None) -> None:
        self.cluster = cluster
        self.suite = cluster.suite
        self.node = node
        self.me = cluster.address(node)
        self.leader = cluster.address(0)
        self.seed = cluster.key_seeds[node]
        self.bug = bug
        self.safety = disk.safety
        self.blocks: dict[bytes, Block] = {cluster.genesis_id: cluster.genesis}
        self.blocks.update(disk.blocks)
        self.tip_id = disk.ledger_ids[-1] if disk.ledger_ids else cluster.genesis_id
        self.tip = disk.ledger[-1] if disk.ledger else cluster.genesis
        self.parked: dict[int, Block] = {}

    def handle(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            return self._arm(event.now_ms) if self.me == self.leader else []
        if isinstance(event, TimerFired):
            return self._propose(event.now_ms)
        if isinstance(event, MessageReceived):
            return self._on_message(event.sender, event.message)
        assert isinstance(event, BlockExecuted)
        return []

    def _arm(self, now_ms: int) -> list[Action]:
        interval_ms = self.cluster.timing.idle_block_interval_ms
        return [SetTimer(("propose", self.tip.header.height + 1), now_ms + interval_ms)]

    def _propose(self, now_ms: int) -> list[Action]:
        height = self.tip.header.height + 1
        if self.bug == "stall" and height > 2:
            return []
        if self.safety is None and self.bug != "wiped_signs":
            return []  # a wiped leader may not sign: this toy then stops (tests mask wipes)
        qc = QuorumCert(vote_data=self._vote_data(self.tip), signers=b"", signatures=[])
        header = BlockHeader(
            protocol_version=PROTOCOL_VERSION,
            channel=self.cluster.channel,
            epoch=0,
            round=height,
            height=height,
            parent_id=self.tip_id,
            timestamp_ms=now_ms,
            proposer=self.me,
            tx_root=self.cluster.genesis.header.tx_root,
            exec_root=self.cluster.genesis.header.exec_root,
            validator_set_hash=self.cluster.validators.hash,
            qc=qc,
        )
        block = Block(header=header, transactions=[])
        block_id = compute_block_id(self.suite, header)
        signature = self.suite.sign(self.seed, compute_proposal_message(block_id))
        proposal = Proposal(block=block, signature=signature, sync=self._sync(qc))
        actions: list[Action] = [PersistBlock(block), *self._commit(block, block_id)]
        return [*actions, Broadcast(proposal), *self._arm(now_ms)]

    def _on_message(self, sender: str, message: ConsensusMessage) -> list[Action]:
        if isinstance(message, Proposal):
            return self._on_block(sender, message.block)
        if isinstance(message, BlockRequest):
            return self._on_request(sender, message)
        if isinstance(message, BlockResponse):
            actions: list[Action] = []
            for block in reversed(message.blocks):
                actions += self._on_block(sender, block)
            return actions
        return []

    def _on_block(self, sender: str, block: Block) -> list[Action]:
        height = block.header.height
        if height <= self.tip.header.height:
            return []
        if height > self.tip.header.height + 1 or block.header.parent_id != self.tip_id:
            self.parked[height] = block
            missing = height - self.tip.header.height - 1
            return [RequestBlocks(sender, block.header.parent_id, max(1, missing))]
        actions: list[Action] = []
        next_block: Block | None = block
        while next_block is not None:
            actions += self._accept(next_block)
            next_block = self.parked.pop(next_block.header.height + 1, None)
        return actions

    def _accept(self, block: Block) -> list[Action]:
        block_id = compute_block_id(self.suite, block.header)
        if block.header.parent_id != self.tip_id:
            return []
        actions: list[Action] = [PersistBlock(block), *self._vote(block, block_id)]
        return actions + self._commit(block, block_id)

    def _vote(self, block: Block, block_id: bytes) -> list[Action]:
        round_ = block.header.round
        can_sign = self.safety is not None or self.bug == "wiped_signs"
        last_voted = self.safety.last_voted_round if self.safety is not None else 0
        if not can_sign or round_ <= last_voted:
            return []
        vote_data = self._vote_data(block, block_id)
        self.safety = SafetyData(
            epoch=0, last_voted_round=round_, one_chain_round=0, last_vote=None, last_timeout=None
        )
        actions: list[Action] = [PersistSafetyData(self.safety)]
        if self.bug == "vote_after_timeout":
            actions.append(Broadcast(self._timeout(round_, block)))
        actions.append(Send(self.leader, self._sign_vote(vote_data)))
        if self.bug == "double_vote":
            other = msgspec.structs.replace(vote_data, block_id=bytes(32))
            actions.append(Send(self.leader, self._sign_vote(other)))
        return actions

    def _sign_vote(self, vote_data: VoteData) -> Vote:
        signature = self.suite.sign(self.seed, compute_vote_message(vote_data))
        if self.bug == "bad_signature":
            signature = bytes(len(signature))
        return Vote(vote_data=vote_data, author=self.me, signature=signature)

    def _timeout(self, round_: int, block: Block) -> TimeoutMsg:
        sign = TimeoutSign(channel=self.cluster.channel, epoch=0, round=round_, hqc_round=0)
        qc = block.header.qc
        signature = self.suite.sign(self.seed, compute_timeout_message(sign))
        return TimeoutMsg(
            timeout=sign, high_qc=qc, author=self.me, signature=signature, sync=self._sync(qc)
        )

    def _commit(self, block: Block, block_id: bytes) -> list[Action]:
        if self.bug == "assert" and block.header.height == 5:
            raise AssertionError("toy invariant broken at height 5")
        self.blocks[block_id] = block
        self.tip, self.tip_id = block, block_id
        committed = block
        if self.bug == "fork" and self.node == 1 and block.header.height == 3:
            header = msgspec.structs.replace(block.header, timestamp_ms=1)
            committed = Block(header=header, transactions=[])
        qc = QuorumCert(vote_data=self._vote_data(block, block_id), signers=b"", signatures=[])
        return [Commit(blocks=[committed], proof=qc)]

    def _on_request(self, sender: str, request: BlockRequest) -> list[Action]:
        blocks: list[Block] = []
        block_id = request.block_id
        while len(blocks) < request.count and block_id in self.blocks:
            block = self.blocks[block_id]
            if block.header.height == 0:
                break
            blocks.append(block)
            block_id = block.header.parent_id
        if not blocks:
            return []
        return [Send(sender, BlockResponse(request_id=request.block_id, blocks=blocks, qcs=[]))]

    def _vote_data(self, block: Block, block_id: bytes | None = None) -> VoteData:
        header = block.header
        return VoteData(
            channel=self.cluster.channel,
            epoch=0,
            round=header.round,
            block_id=block_id or compute_block_id(self.suite, header),
            height=header.height,
            parent_id=header.parent_id,
            parent_round=header.qc.vote_data.round,
        )

    def _sync(self, qc: QuorumCert) -> SyncInfo:
        return SyncInfo(highest_qc=qc, highest_tc=None, highest_commit=None)


class ToyBinding:
    """The correct toy; subclasses set `bug` to break one property."""

    bug: ClassVar[str | None] = None

    def compute_round_timeout_max_ms(self, timing: SimTiming) -> int:
        return timing.round_timeout_base_ms

    def build_core(
        self, cluster: Cluster, node: int, disk: SimDisk, payload: SimPayload
    ) -> ToyCore:
        return ToyCore(cluster, node, disk, self.bug)

    def verify_message(self, cluster: Cluster, message: ConsensusMessage) -> None:
        suite = cluster.suite
        members = cluster.validators.members
        if isinstance(message, Vote):
            key = members[cluster.validators.index_of(message.author)].public_key
            if not suite.verify(key, compute_vote_message(message.vote_data), message.signature):
                raise InvalidSignature(f"bad vote signature of {message.author}")
        elif isinstance(message, Proposal):
            header = message.block.header
            key = members[cluster.validators.index_of(header.proposer)].public_key
            signed = compute_proposal_message(compute_block_id(suite, header))
            if not suite.verify(key, signed, message.signature):
                raise InvalidSignature(f"bad proposal signature of {header.proposer}")


class DoubleVoteBinding(ToyBinding):
    bug = "double_vote"


class ForkBinding(ToyBinding):
    bug = "fork"


class AssertBinding(ToyBinding):
    bug = "assert"


class StallBinding(ToyBinding):
    bug = "stall"


class BadSignatureBinding(ToyBinding):
    bug = "bad_signature"


class VoteAfterTimeoutBinding(ToyBinding):
    bug = "vote_after_timeout"


class WipedSignsBinding(ToyBinding):
    bug = "wiped_signs"


class _TimerOrderCore:
    """Arms three timers for one instant (re-arming one), to show the engine's tie-break."""

    def handle(self, event: Event) -> list[Action]:
        if not isinstance(event, Started):
            return []
        at_ms = event.now_ms + 5
        return [
            SetTimer(("z", 1), at_ms),
            SetTimer(("a", 1), at_ms),
            SetTimer(("m", 1), at_ms),
            CancelTimer(("a", 1)),
            SetTimer(("a", 1), at_ms),
        ]


class TimerOrderBinding(ToyBinding):
    def build_core(  # type: ignore[override]
        self, cluster: Cluster, node: int, disk: SimDisk, payload: SimPayload
    ) -> _TimerOrderCore:
        return _TimerOrderCore()
