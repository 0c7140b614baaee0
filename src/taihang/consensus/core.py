"""The Jolteon consensus core: one sans-IO state machine per validator and channel.

Theory of operation (consensus spec, "Specification"; docs/consensus.md tells the story):

Input and output. `handle(event) -> list[Action]` is the only entry. Events are `Started`,
`MessageReceived` (already through the verifier stage, `consensus.verify`), `TimerFired` and
`BlockExecuted`; the driver carries out the returned actions in order, and a `Persist*`
action completes before any later `Send`/`Broadcast`. The core reads no clock (time comes in
the events), draws no randomness, does no IO, and never lets set or dict order reach an action.

State. A block tree rooted at the committed head (`BlockTree`, with `OrphanBlocks` for blocks
whose parents have not arrived), the highest QC (`hqc`), the highest TC (`htc`), the highest
commit proof (`commit_qc`), the current round (`Pacemaker`), vote and timeout tallies, the
execution roots this node computed (`BlockExecuted`), and the signing guard, which alone holds
the key and the safety record.

One step of a message, in order:
1. Adopt certificates first: the message's SyncInfo (commit proof, QC, TC), then the QC and
   TC inside a proposal's block. A higher QC or TC is persisted (`PersistCert`) and may commit
   blocks (2-chain rule: a QC for B1 with `B1.parent_round + 1 == B1.round` commits B1's parent
   and every uncommitted ancestor, in height order, after fetching any that are missing).
2. Advance the round to `max(hqc.round, htc.round) + 1` if that is higher: rounds move only on
   verified certificates, never on a round number alone.
3. Handle the message itself: vote for a proposal of the current round, count a vote or a
   timeout, answer or accept blocks.

Voting. A proposal must come from the round's leader and be well formed (`validate_block_shape`,
links to its parent, strictly increasing timestamp not beyond `now + max_clock_drift_ms`), and
its `exec_root` must match this node's own execution of that height. A node that has not yet
executed that height, or whose clock is too far behind the timestamp, holds the vote
(`pending_vote`) until `BlockExecuted` arrives or its `("vote", r)` timer fires, for as long as
the round lasts. The block is
persisted (`PersistBlock`) when it enters the tree, then the guard applies rules 2-4 and returns
the vote with the new safety record: `PersistSafetyData`, then the vote goes out. With at most
`vote_broadcast_validators_max` validators votes are broadcast and every node forms the QC
itself (one message delay less to commit); above that they go to `leader(round + 1)` only.

Pacemaker. On round-timer expiry the node signs a timeout (or re-sends the one it signed for
this round), broadcasts it and re-arms. f+1 weight of timeouts for the current round makes it
time out at once (never jump); Q weight forms a TC, which it adopts. The leader proposes once
per round on its `("propose", r)` timer, extending the block of `hqc` (with `htc` when the QC
is not from the previous round).

Catch-up. Unknown parents and commit paths are fetched with `RequestBlocks`; a `BlockResponse`
is accepted block by block only while each block hashes to the id asked for (or named by the
previous one) and carries a QC for it. Proposals whose parent is missing wait and are re-driven
when it arrives. A `BlockRequest` is answered from the tree, newest first, with QCs.

Recovery. A `RecoveredState` (blocks, highest QC and TC, committed head, execution roots)
rebuilds the tree; the node starts in round `max(hqc.round, htc.round) + 1` (babylon#243) and
re-sends its last vote or timeout only if it is for that round. The guard, built from the
persisted SafetyData, refuses to sign at all when that data was lost.

Invariants are assertions and stay on: a commit that does not extend the committed head, a
round going backwards, a block inserted twice. They halt the node, and the simulator reports
them as failures.
"""

from __future__ import annotations

from typing import Final

from taihang.consensus.block_tree import BlockTree, OrphanBlocks
from taihang.consensus.catchup import Catchup, Redrive
from taihang.consensus.config import ConsensusConfig
from taihang.consensus.events import (
    Action,
    BlockExecuted,
    Broadcast,
    Commit,
    Event,
    MessageReceived,
    PersistCert,
    PersistSafetyData,
    ReportEvidence,
    Send,
    SetTimer,
    Started,
    TimerFired,
)
from taihang.consensus.leader import LeaderElection, RoundRobin
from taihang.consensus.messages import (
    BlockRequest,
    BlockResponse,
    ConsensusMessage,
    Proposal,
    SyncInfo,
    TimeoutMsg,
    Vote,
)
from taihang.consensus.pacemaker import PROPOSE_TIMER, ROUND_TIMER, VOTE_TIMER, Pacemaker
from taihang.consensus.proposer import (
    PayloadSource,
    build_block,
    choose_exec_root,
    take_payload,
)
from taihang.consensus.recovery import RecoveredState, recover
from taihang.consensus.safety import SafetyViolation, SigningGuard
from taihang.consensus.verify import validate_block_shape
from taihang.consensus.votes import ProposalLog, TimeoutAggregator, VoteAggregator
from taihang.crypto import CryptoSuite
from taihang.errors import ConfigurationError, InvalidBlock
from taihang.ledger.block import (
    Block,
    ExecRoot,
    QuorumCert,
    TimeoutCert,
    ValidatorSet,
    build_genesis_qc,
    compute_block_id,
)

__all__ = ["ConsensusCore", "PayloadSource", "RecoveredState"]

# Rounds of first proposals remembered for equivocation evidence.
PROPOSAL_ROUNDS_KEPT: Final = 16


class ConsensusCore:
    def __init__(
        self,
        *,
        config: ConsensusConfig,
        validators: ValidatorSet,
        suite: CryptoSuite,
        genesis_block: Block,
        me: str | None,
        guard: SigningGuard | None,
        payload: PayloadSource,
        leader: LeaderElection | None = None,
        recovered: RecoveredState | None = None,
    ) -> None:
        config.validate()
        if guard is not None and guard.address != me:
            raise ConfigurationError("the signing guard must sign for `me`")
        self.config = config
        self.validators = validators
        self.suite = suite
        self.payload = payload
        self.leader = leader or RoundRobin(validators)
        self.me = me
        is_validator = me is not None and me in validators.by_address
        self.guard = guard if is_validator else None
        self.genesis_id = compute_block_id(suite, genesis_block.header)
        self.pacemaker = Pacemaker(config, self.leader, me if self.guard is not None else None)
        self.votes = VoteAggregator(validators)
        self.timeouts = TimeoutAggregator(validators)
        self.orphans = OrphanBlocks(config.orphan_blocks_max)
        self.broadcast_votes = len(validators.members) <= config.vote_broadcast_validators_max
        genesis_qc = build_genesis_qc(config.channel, self.genesis_id)
        self.hqc: QuorumCert = genesis_qc
        self.htc: TimeoutCert | None = None
        self.commit_qc: QuorumCert | None = None
        self.executed: dict[int, ExecRoot] = {0: genesis_block.header.exec_root}
        self.executed_height = 0
        self.pending_vote: bytes | None = None  # a block waiting for our execution or clock
        self.proposals = ProposalLog(PROPOSAL_ROUNDS_KEPT)
        self.own_blocks: dict[int, tuple[bytes, Block]] = {}  # round -> the block proposed
        self.rejections: dict[str, int] = {}  # why inputs were dropped, for tests and metrics
        self.last_rejection = ""
        self.started = False
        self.tree = (
            BlockTree(
                genesis_block,
                self.genesis_id,
                genesis_qc,
                committed_kept=config.committed_blocks_kept,
            )
            if recovered is None
            else self._restore(recovered, genesis_block, genesis_qc)
        )
        self.catchup = Catchup(
            self.tree,
            self.orphans,
            config,
            suite,
            peers=tuple(v.address for v in validators.members),
            me=me,
            reject=self._reject,
        )

    def _restore(
        self, recovered: RecoveredState, genesis_block: Block, genesis_qc: QuorumCert
    ) -> BlockTree:
        """Rebuild tree, certificates, execution roots and own blocks from the records."""
        tree, certs = recover(
            recovered,
            genesis_block=genesis_block,
            genesis_qc=genesis_qc,
            suite=self.suite,
            safety=self.guard.safety if self.guard is not None else None,
            orphans=self.orphans,
            committed_kept=self.config.committed_blocks_kept,
        )
        self.hqc, self.htc, self.commit_qc = certs.hqc, certs.htc, certs.commit_qc
        for root in recovered.executed:
            self.executed[root.height] = root
            self.executed_height = max(self.executed_height, root.height)
        for block in recovered.blocks:  # a leader proposes one block per round, ever
            if block.header.proposer == self.me and self.guard is not None:
                block_id = compute_block_id(self.suite, block.header)
                self.own_blocks[block.header.round] = (block_id, block)
        return tree

    # The single entry.

    def handle(self, event: Event) -> list[Action]:
        if isinstance(event, Started):
            return self._on_started(event.now_ms)
        assert self.started, "the driver must send Started before any other event"
        if isinstance(event, MessageReceived):
            return self._on_message(event.now_ms, event.sender, event.message)
        if isinstance(event, TimerFired):
            return self._on_timer(event.now_ms, event.timer[0], event.timer[1])
        if isinstance(event, BlockExecuted):
            return self._on_block_executed(event)
        raise AssertionError(f"unknown event {type(event).__name__}")

    @property
    def round(self) -> int:
        return self.pacemaker.round

    @property
    def committed_height(self) -> int:
        return self.tree.committed_height

    @property
    def committed_id(self) -> bytes:
        return self.tree.committed_id

    def build_sync_info(self) -> SyncInfo:
        """The certificates this node would hand a peer that is behind."""
        htc = self.htc if self.htc is not None and self.htc.round > self.hqc_round else None
        commit = self.commit_qc if self.commit_qc is not self.hqc else None
        return SyncInfo(highest_qc=self.hqc, highest_tc=htc, highest_commit=commit)

    @property
    def hqc_round(self) -> int:
        return self.hqc.vote_data.round

    # Start and recovery.

    def _on_started(self, now_ms: int) -> list[Action]:
        assert not self.started, "Started arrives once per core"
        self.started = True
        actions = self._try_commit(None, now_ms)
        actions += self._advance_round(now_ms)
        actions += self._resend_for_current_round(now_ms)
        return actions

    def _resend_for_current_round(self, now_ms: int) -> list[Action]:
        """After a restart: re-send the last vote or timeout if it is for the current round."""
        safety = self.guard.safety if self.guard is not None else None
        if safety is None:
            return []
        actions: list[Action] = []
        if safety.last_vote is not None and safety.last_vote.vote_data.round == self.round:
            actions += self._send_vote(safety.last_vote, now_ms)
        timeout = safety.last_timeout
        if timeout is not None and timeout.timeout.round == self.round:
            self.pacemaker.timed_out = True
            actions.append(Broadcast(timeout))
            actions += self._count_timeout(timeout, timeout.author, now_ms)
        return actions

    # Certificates and rounds.

    def _process_sync(self, sync: SyncInfo, sender: str, now_ms: int) -> list[Action]:
        actions: list[Action] = []
        if sync.highest_commit is not None:
            actions += self._adopt_qc(sync.highest_commit, sender, now_ms)
        actions += self._adopt_qc(sync.highest_qc, sender, now_ms)
        if sync.highest_tc is not None:
            actions += self._adopt_tc(sync.highest_tc, sender, now_ms)
        return actions

    def _adopt_qc(self, qc: QuorumCert, sender: str | None, now_ms: int) -> list[Action]:
        """Take in a verified QC: the highest is persisted; a 2-chain one commits."""
        data = qc.vote_data
        self.tree.record_qc(qc)
        actions: list[Action] = []
        if data.round > self.hqc_round:
            self.hqc = qc
            actions.append(PersistCert(qc))
        # The 2-chain rule needs consecutive rounds: a QC for B1 commits B1's parent only when
        # B1 directly follows it (relab/hotstuff#249 committed without this and forked).
        is_commit_proof = data.parent_round + 1 == data.round
        if is_commit_proof and data.height - 1 > self.tree.committed_height:
            if self.commit_qc is None or data.round > self.commit_qc.vote_data.round:
                self.commit_qc = qc
            actions += self._try_commit(sender, now_ms)
        return actions

    def _adopt_tc(self, tc: TimeoutCert, sender: str | None, now_ms: int) -> list[Action]:
        actions = self._adopt_qc(tc.high_qc, sender, now_ms)
        if self.htc is None or tc.round > self.htc.round:
            self.htc = tc
            actions.append(PersistCert(tc))
        return actions

    def _advance_round(self, now_ms: int) -> list[Action]:
        """Enter `max(hqc.round, htc.round) + 1` if it is above the current round."""
        htc_round = self.htc.round if self.htc is not None else 0
        target = max(self.hqc_round, htc_round) + 1
        if target <= self.round:
            return []
        actions = self.pacemaker.enter(target, now_ms, self.tree.committed_round)
        self.timeouts.reset(target)
        # Votes of the previous round may still complete a QC (a higher hqc); older ones not.
        self.votes.prune(max(self.hqc_round + 1, target - 1))
        self.pending_vote = None
        self.proposals.prune(target)
        for round in [r for r in self.own_blocks if r < target]:
            del self.own_blocks[round]
        return actions

    def _try_commit(self, hint: str | None, now_ms: int) -> list[Action]:
        """Commit what `commit_qc` proves, once every block down to the head is here."""
        if self.commit_qc is None:
            return []
        data = self.commit_qc.vote_data
        target_id, target_height = data.parent_id, data.height - 1
        if target_height <= self.tree.committed_height:
            return []
        missing = self.tree.find_missing_ancestor(target_id, target_height)
        if missing is not None:
            return self.catchup.need_block(missing[0], missing[1], hint, now_ms)
        blocks = self.tree.commit(target_id)
        self.catchup.prune(self.tree.committed_height)
        self._prune_executed()
        return [Commit(blocks=blocks, proof=self.commit_qc)]

    def _prune_executed(self) -> None:
        head = self.tree.find_block(self.tree.committed_id)
        assert head is not None
        floor = head.header.exec_root.height  # no later block may carry an older exec_root
        for height in [h for h in sorted(self.executed) if h < floor]:
            del self.executed[height]

    # Messages.

    def _on_message(self, now_ms: int, sender: str, message: ConsensusMessage) -> list[Action]:
        if isinstance(message, Proposal):
            return self._on_proposal(now_ms, sender, message)
        if isinstance(message, Vote):
            return self._on_vote(now_ms, sender, message)
        if isinstance(message, TimeoutMsg):
            return self._on_timeout(now_ms, sender, message)
        if isinstance(message, BlockRequest):
            return self.catchup.answer(sender, message)
        if isinstance(message, BlockResponse):
            return self._on_block_response(now_ms, sender, message)
        raise AssertionError(f"unknown message {type(message).__name__}")

    def _on_proposal(self, now_ms: int, sender: str, proposal: Proposal) -> list[Action]:
        header = proposal.block.header
        actions = self._process_sync(proposal.sync, sender, now_ms)
        actions += self._adopt_qc(header.qc, sender, now_ms)
        if header.tc is not None:
            actions += self._adopt_tc(header.tc, sender, now_ms)
        actions += self._advance_round(now_ms)
        problem = self._find_proposal_problem(proposal)
        if problem is not None:
            self._reject(*problem)
            return actions
        block_id = compute_block_id(self.suite, header)
        is_first, evidence = self.proposals.record(proposal, block_id)
        if evidence is not None:
            actions.append(ReportEvidence(evidence))
        if not is_first:
            return actions  # the first proposal of a leader in a round is the only one handled
        return actions + self._process_proposed_block(block_id, proposal, sender, now_ms)

    def _find_proposal_problem(self, proposal: Proposal) -> tuple[str, str] | None:
        header = proposal.block.header
        if header.proposer != self.leader.leader(header.round):
            return "proposal_not_from_leader", f"{header.proposer} in round {header.round}"
        try:
            validate_block_shape(
                header,
                channel=self.config.channel,
                epoch=self.config.epoch,
                validator_set_hash=self.validators.hash,
            )
        except InvalidBlock as exc:
            return "proposal_malformed", exc.message
        block = proposal.block
        if len(block.transactions) > self.config.block_txs_max or (
            sum(len(tx) for tx in block.transactions) > self.config.block_bytes_max
        ):
            return "proposal_too_large", f"round {header.round}"
        return None

    def _process_proposed_block(
        self, block_id: bytes, proposal: Proposal, sender: str, now_ms: int
    ) -> list[Action]:
        block = proposal.block
        header = block.header
        if self.tree.has_block(block_id):  # it came with a catch-up response first
            return self._try_vote(block, block_id, now_ms)
        if header.round + 1 < self.round:
            # Neither votable nor needed as such: a block of an older round that matters is
            # certified, and is fetched with its QC. This keeps a Byzantine leader from filling
            # the tree with blocks for rounds the proposal log has forgotten.
            self._reject("proposal_stale", f"round {header.round} in round {self.round}")
            return []
        if header.height <= self.tree.committed_height:
            self._reject("proposal_below_committed", f"round {header.round}")
            return []  # a committed height holds its committed block; this one is dead
        if self.tree.has_block(header.parent_id):
            actions = self._insert_blocks(block, block_id, now_ms)
            if self.tree.has_block(block_id):
                actions += self._try_vote(block, block_id, now_ms)
            return actions
        if header.height - 1 <= self.tree.committed_height:
            self._reject("proposal_on_dead_fork", f"round {header.round}")
            return []
        return self.catchup.hold_proposal(proposal, block_id, sender, now_ms)

    def _insert_blocks(self, block: Block, block_id: bytes, now_ms: int) -> list[Action]:
        """Insert a block (and the orphans it completes), then re-drive and retry a commit."""
        actions, redrive = self.catchup.insert(block, block_id)
        return actions + self._redrive(redrive, now_ms) + self._try_commit(None, now_ms)

    def _redrive(self, redrive: Redrive, now_ms: int) -> list[Action]:
        """Vote for held proposals whose parent arrived (if their round is still current)."""
        actions: list[Action] = []
        for block_id, proposal in redrive:
            actions += self._try_vote(proposal.block, block_id, now_ms)
        return actions

    # Voting.

    def _try_vote(self, block: Block, block_id: bytes, now_ms: int) -> list[Action]:
        """Vote for a block of the current round if rule 1 and this node's execution agree."""
        header = block.header
        guard = self.guard
        if guard is None or not guard.can_sign:
            return []
        if header.round != self.round or self.pacemaker.timed_out:
            return []
        if header.proposer != self.leader.leader(header.round):
            return []
        earliest_ms = header.timestamp_ms - self.config.max_clock_drift_ms
        if now_ms < earliest_ms:
            # Rule 1 allows at most max_clock_drift_ms into the future. Rather than refuse
            # (clocks that drifted further apart would stall the chain), wait until this
            # node's clock gets there, within the round.
            self.pending_vote = block_id
            return [SetTimer((VOTE_TIMER, header.round), earliest_ms)]
        if not self._is_exec_root_mine(header.exec_root, block_id):
            return []
        before = guard.safety
        try:
            vote, safety = guard.sign_vote(header, block_id, header.tc)
        except SafetyViolation as exc:
            self._reject("vote_refused", exc.message)
            return []
        self.pending_vote = None
        actions: list[Action] = []
        if safety is not before:
            actions.append(PersistSafetyData(safety))  # durable before the vote leaves
        return actions + self._send_vote(vote, now_ms)

    def _is_exec_root_mine(self, exec_root: ExecRoot, block_id: bytes) -> bool:
        """Whether this node executed `exec_root.height` with the same roots (else no vote).

        Not executed yet: hold the vote (`pending_vote`) until `BlockExecuted` or the round ends.
        """
        mine = self.executed.get(exec_root.height)
        if mine is None:
            if exec_root.height > self.executed_height:
                self.pending_vote = block_id
            else:
                self._reject("exec_root_unknown", f"height {exec_root.height}")
            return False
        if mine != exec_root:
            self._reject("exec_root_mismatch", f"height {exec_root.height}")
            return False
        return True

    def _send_vote(self, vote: Vote, now_ms: int) -> list[Action]:
        assert self.me is not None
        if self.broadcast_votes:
            return [Broadcast(vote), *self._on_vote(now_ms, self.me, vote)]
        next_leader = self.leader.leader(vote.vote_data.round + 1)
        if next_leader == self.me:
            return self._on_vote(now_ms, self.me, vote)
        return [Send(next_leader, vote)]

    def _on_vote(self, now_ms: int, sender: str, vote: Vote) -> list[Action]:
        data = vote.vote_data
        if data.channel != self.config.channel or data.epoch != self.config.epoch:
            self._reject("vote_wrong_context", vote.author)
            return []
        if data.round <= self.hqc_round:
            return []  # a QC at least this high is known: nothing to gain
        if data.round > self.round + self.config.vote_rounds_ahead_max:
            self._reject("vote_too_far_ahead", f"round {data.round}")
            return []  # bounded memory; a QC formed from such votes reaches us anyway
        qc, evidence = self.votes.add(vote)
        actions: list[Action] = []
        if evidence is not None:
            actions.append(ReportEvidence(evidence))
        if qc is not None:
            actions += self._adopt_qc(qc, sender, now_ms)
            actions += self._advance_round(now_ms)
        return actions

    # Timeouts.

    def _on_timeout(self, now_ms: int, sender: str, message: TimeoutMsg) -> list[Action]:
        if message.timeout.channel != self.config.channel or (
            message.timeout.epoch != self.config.epoch
        ):
            self._reject("timeout_wrong_context", message.author)
            return []
        actions = self._process_sync(message.sync, sender, now_ms)
        actions += self._adopt_qc(message.high_qc, sender, now_ms)
        actions += self._advance_round(now_ms)
        if message.timeout.round != self.round:
            return actions  # stale, or not justified by any certificate this node verified
        return actions + self._count_timeout(message, sender, now_ms)

    def _count_timeout(self, message: TimeoutMsg, sender: str, now_ms: int) -> list[Action]:
        tc = self.timeouts.add(message)
        if tc is not None:
            return self._adopt_tc(tc, sender, now_ms) + self._advance_round(now_ms)
        if self.timeouts.has_early_timeout_weight() and not self.pacemaker.timed_out:
            # f+1 weight gave up this round, so it cannot certify a block: time out now
            # rather than wait for the timer. This never moves the round (FISCO#2211).
            return self._local_timeout(now_ms)
        return []

    def _local_timeout(self, now_ms: int) -> list[Action]:
        """Sign (or re-send) this round's timeout, broadcast it and count it."""
        self.pacemaker.timed_out = True
        self.pending_vote = None  # a vote held for execution gives up with the round
        guard = self.guard
        if guard is None or not guard.can_sign:
            return []
        before = guard.safety
        try:
            message, safety = guard.sign_timeout(
                self.round, self.hqc, self.htc, self.build_sync_info()
            )
        except SafetyViolation as exc:
            self._reject("timeout_refused", exc.message)
            return []
        actions: list[Action] = []
        if safety is not before:
            actions.append(PersistSafetyData(safety))  # durable before the timeout leaves
        actions.append(Broadcast(message))
        assert self.me is not None
        return actions + self._count_timeout(message, self.me, now_ms)

    # Timers and execution.

    def _on_timer(self, now_ms: int, kind: str, round: int) -> list[Action]:
        if round != self.round:
            return []  # a timer of a round this node has left
        if kind == ROUND_TIMER:
            actions = self._local_timeout(now_ms)
            if self.round == round:  # the timeout may have completed a TC and moved on
                actions.append(self.pacemaker.arm_round_timer(now_ms, self.tree.committed_round))
            return actions + self.catchup.retry_expired(now_ms)
        if kind == PROPOSE_TIMER:
            return self._on_propose_timer(now_ms)
        if kind == VOTE_TIMER:
            return self._retry_pending_vote(now_ms)
        return []

    def _on_block_executed(self, event: BlockExecuted) -> list[Action]:
        root = ExecRoot(
            height=event.height, state_root=event.state_root, receipts_root=event.receipts_root
        )
        self.executed[event.height] = root
        self.executed_height = max(self.executed_height, event.height)
        return self._retry_pending_vote(event.now_ms)

    def _retry_pending_vote(self, now_ms: int) -> list[Action]:
        """Try again the vote held for this node's execution or clock."""
        if self.pending_vote is None:
            return []
        block = self.tree.find_block(self.pending_vote)
        if block is None:
            self.pending_vote = None
            return []
        return self._try_vote(block, self.pending_vote, now_ms)

    # Proposing.

    def _on_propose_timer(self, now_ms: int) -> list[Action]:
        if self.pacemaker.proposed or not self.pacemaker.is_leader(self.round):
            return []
        urgent = self.payload.has_payload() or self._has_uncommitted_payload()
        if not self.pacemaker.is_proposal_due(now_ms, urgent):
            return [self.pacemaker.rearm_propose_timer(now_ms)]
        return self._propose(now_ms)

    def _has_uncommitted_payload(self) -> bool:
        """The QC'd tip holds transactions: one more block commits them, so do not idle."""
        tip = self.tree.find_block(self.hqc.vote_data.block_id)
        return (
            tip is not None
            and tip.header.height > self.tree.committed_height
            and bool(tip.transactions)
        )

    def _propose(self, now_ms: int) -> list[Action]:
        guard = self.guard
        assert guard is not None and self.me is not None
        own = self.own_blocks.get(self.round)
        if own is not None:  # proposed before a restart: that block again, never another
            block_id, block = own
        else:
            parent = self.tree.find_block(self.hqc.vote_data.block_id)
            if parent is None:
                hqc = self.hqc.vote_data
                return self._retry_propose(hqc.block_id, hqc.height, now_ms)
            block = self._build_block(parent, self.hqc.vote_data.block_id, now_ms)
            block_id = compute_block_id(self.suite, block.header)
        if not self.tree.has_block(block.header.parent_id):
            return self._retry_propose(block.header.parent_id, block.header.height - 1, now_ms)
        try:
            signature = guard.sign_proposal(block_id)
        except SafetyViolation as exc:
            self._reject("proposal_refused", exc.message)
            return []
        self.pacemaker.proposed = True
        self.own_blocks[self.round] = (block_id, block)
        proposal = Proposal(block=block, signature=signature, sync=self.build_sync_info())
        self.proposals.record(proposal, block_id)
        actions = (
            [] if self.tree.has_block(block_id) else self._insert_blocks(block, block_id, now_ms)
        )
        assert self.tree.has_block(block_id), f"own proposal rejected: {self.last_rejection}"
        actions.append(Broadcast(proposal))
        return actions + self._try_vote(block, block_id, now_ms)

    def _retry_propose(self, parent_id: bytes, height: int, now_ms: int) -> list[Action]:
        """The parent is certified but not here yet: fetch it and look again shortly."""
        fetch = self.catchup.need_block(parent_id, height, None, now_ms)
        retry_at_ms = now_ms + self.config.min_block_interval_ms
        return [*fetch, SetTimer((PROPOSE_TIMER, self.round), retry_at_ms)]

    def _build_block(self, parent: Block, parent_id: bytes, now_ms: int) -> Block:
        assert self.me is not None
        height = parent.header.height + 1
        offered = self.payload.get_payload(
            height, parent_id, self.config.block_txs_max, self.config.block_bytes_max
        )
        return build_block(
            parent=parent,
            parent_id=parent_id,
            round=self.round,
            qc=self.hqc,
            tc=None if self.hqc_round + 1 == self.round else self.htc,
            proposer=self.me,
            now_ms=now_ms,
            transactions=take_payload(
                offered, self.config.block_txs_max, self.config.block_bytes_max
            ),
            exec_root=choose_exec_root(
                height, parent.header.exec_root, self.executed, self.executed_height
            ),
            validator_set_hash=self.validators.hash,
            suite=self.suite,
        )

    # Catch-up.

    def _on_block_response(self, now_ms: int, sender: str, response: BlockResponse) -> list[Action]:
        actions, redrive, newest_qc = self.catchup.accept(sender, response, now_ms)
        if newest_qc is None:
            return actions
        actions += self._redrive(redrive, now_ms)
        actions += self._adopt_qc(newest_qc, sender, now_ms)
        actions += self._try_commit(sender, now_ms)
        return actions + self._advance_round(now_ms)

    def _reject(self, code: str, detail: str) -> None:
        """Drop an input, counting why (the core never raises on a peer's input)."""
        self.rejections[code] = self.rejections.get(code, 0) + 1
        self.last_rejection = f"{code}: {detail}"
