"""Property test of `taihang.consensus.safety.SigningGuard` (consensus spec, test plan layer 0).

A Hypothesis state machine throws arbitrary sequences of proposals (random QC and TC rounds,
several blocks per round), timeout requests, crashes between signing and persisting, and
restarts from the persisted record at one guard, and checks after every step that:

* no two different votes for one round ever leave the node (a vote leaves only once its
  record is persisted; a crash before that loses it, as the runtime's ordering guarantees);
* `last_voted_round` is monotone across restarts;
* no vote is signed when rule 3 fails, and no new vote in a round at or below a timeout;
* no timeout is signed with `hqc.round < one_chain_round`;
* and the guard signs whenever every rule holds (it is not safe by refusing everything).

Signatures are a fast fake (sha256 of key || message): the rules do not depend on them.
"""

from __future__ import annotations

import hashlib

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from taihang.codec import encode
from taihang.consensus.messages import SafetyData, SyncInfo
from taihang.consensus.safety import (
    SafetyDataLost,
    SafetyViolation,
    SigningGuard,
    build_initial_safety_data,
)
from taihang.constants import PROTOCOL_VERSION
from taihang.ledger.block import (
    BlockHeader,
    ExecRoot,
    QuorumCert,
    TimeoutCert,
    TimeoutEntry,
    VoteData,
)

CHANNEL = "prop"
ADDRESS = "ab" * 20
ROUNDS = st.integers(min_value=0, max_value=12)


class FakeSigner:
    key = b"k" * 32

    def sign(self, message: bytes) -> bytes:
        return hashlib.sha256(self.key + message).digest()


def make_guard(safety: SafetyData | None) -> SigningGuard:
    return SigningGuard(FakeSigner(), ADDRESS, safety, channel=CHANNEL, epoch=0)


def block_of_round(round: int) -> bytes:
    return hashlib.sha256(b"certified" + round.to_bytes(4, "big")).digest()


def make_qc(round: int) -> QuorumCert:
    data = VoteData(
        channel=CHANNEL,
        epoch=0,
        round=round,
        block_id=block_of_round(round),
        height=round,
        parent_id=block_of_round(max(round - 1, 0)),
        parent_round=max(round - 1, 0),
    )
    return QuorumCert(vote_data=data, signers=b"", signatures=[])


def make_tc(round: int, hqc_rounds: list[int]) -> TimeoutCert:
    entries = [TimeoutEntry(signer=i, hqc_round=r, signature=b"") for i, r in enumerate(hqc_rounds)]
    return TimeoutCert(
        channel=CHANNEL, epoch=0, round=round, high_qc=make_qc(max(hqc_rounds)), entries=entries
    )


def make_header(round: int, qc_round: int, tc: TimeoutCert | None, variant: int) -> BlockHeader:
    qc = make_qc(qc_round)
    return BlockHeader(
        protocol_version=PROTOCOL_VERSION,
        channel=CHANNEL,
        epoch=0,
        round=round,
        height=qc_round + 1,
        parent_id=qc.vote_data.block_id,
        timestamp_ms=round,
        proposer=ADDRESS,
        tx_root=bytes([variant]) * 32,  # several different blocks can share a round
        exec_root=ExecRoot(height=0, state_root=b"", receipts_root=b""),
        validator_set_hash=b"",
        qc=qc,
        tc=tc,
    )


def holds_rule_3(round: int, qc_round: int, tc: TimeoutCert | None) -> bool:
    if not qc_round < round:
        return False
    if round == qc_round + 1:
        return True
    if tc is None or round != tc.round + 1:
        return False
    return qc_round >= max(entry.hqc_round for entry in tc.entries)


class GuardMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.disk = build_initial_safety_data(0)
        self.guard = make_guard(self.disk)
        self.sent_votes: dict[int, bytes] = {}  # round -> the block voted for (left the node)
        self.timeout_round_max = 0  # the highest round of a timeout that left the node
        self.persisted_lvr = [0]

    def _persist(self, data: SafetyData) -> None:
        self.disk = data
        self.persisted_lvr.append(data.last_voted_round)

    @rule(
        round=ROUNDS,
        qc_round=ROUNDS,
        tc_round=st.none() | ROUNDS,
        hqc_rounds=st.lists(ROUNDS, min_size=1, max_size=3),
        variant=st.integers(min_value=0, max_value=2),
        crash=st.integers(min_value=0, max_value=9),
    )
    def propose(
        self,
        round: int,
        qc_round: int,
        tc_round: int | None,
        hqc_rounds: list[int],
        variant: int,
        crash: int,
    ) -> None:
        tc = make_tc(tc_round, hqc_rounds) if tc_round is not None else None
        header = make_header(round, qc_round, tc, variant)
        block_id = hashlib.sha256(encode(header)).digest()
        before = self.guard.safety
        assert before is not None
        last = before.last_vote
        resend = last is not None and last.vote_data.round == round
        allowed = round > before.last_voted_round and holds_rule_3(round, qc_round, tc)
        try:
            vote, data = self.guard.sign_vote(header, block_id, tc)
        except SafetyViolation:
            same_block = resend and last is not None and last.vote_data.block_id == block_id
            assert not same_block, "the same vote must be handed back, not refused"
            assert resend or not allowed, "refused although every rule holds"
            return
        if resend:
            assert vote is last and data is before
        else:
            assert allowed, "signed a vote that breaks rule 2 or rule 3"
            assert round > self.timeout_round_max, "a new vote at or below a timeout's round"
        if crash == 0:  # crashed after signing, before persisting: the vote never left
            self.guard = make_guard(self.disk)
            return
        self._persist(data)
        first = self.sent_votes.setdefault(round, vote.vote_data.block_id)
        assert first == vote.vote_data.block_id, f"two different votes in round {round}"

    @rule(
        round=ROUNDS,
        hqc_round=ROUNDS,
        htc_round=st.none() | ROUNDS,
        crash=st.integers(min_value=0, max_value=9),
    )
    def timeout(self, round: int, hqc_round: int, htc_round: int | None, crash: int) -> None:
        before = self.guard.safety
        assert before is not None
        high_qc = make_qc(hqc_round)
        high_tc = make_tc(htc_round, [min(hqc_round, htc_round)]) if htc_round is not None else None
        sync = SyncInfo(highest_qc=high_qc, highest_tc=high_tc, highest_commit=None)
        last = before.last_timeout
        resend = last is not None and last.timeout.round == round
        follows = round == hqc_round + 1 or (htc_round is not None and round == htc_round + 1)
        allowed = (
            follows and hqc_round >= before.one_chain_round and round >= before.last_voted_round
        )
        try:
            message, data = self.guard.sign_timeout(round, high_qc, high_tc, sync)
        except SafetyViolation:
            assert not resend and not allowed, "refused although every rule holds"
            return
        if resend:
            assert message is last and data is before
        else:
            assert allowed, "signed a timeout that breaks the timeout rule"
            assert message.timeout.hqc_round >= before.one_chain_round
        if crash == 0:
            self.guard = make_guard(self.disk)
            return
        self._persist(data)
        self.timeout_round_max = max(self.timeout_round_max, round)

    @rule()
    def restart(self) -> None:
        self.guard = make_guard(self.disk)
        assert self.guard.safety == self.disk

    @rule(round=ROUNDS)
    def amnesiac_refuses(self, round: int) -> None:
        amnesiac = make_guard(None)
        header = make_header(round + 1, round, None, 0)
        for attempt in (
            lambda: amnesiac.sign_vote(header, b"\x00" * 32, None),
            lambda: amnesiac.sign_timeout(round + 1, make_qc(round), None, _empty_sync()),
            lambda: amnesiac.sign_proposal(b"\x00" * 32),
        ):
            try:
                attempt()
            except SafetyDataLost:
                continue
            raise AssertionError("a guard without safety data signed")

    @invariant()
    def last_voted_round_is_monotone(self) -> None:
        assert self.persisted_lvr == sorted(self.persisted_lvr)
        safety = self.guard.safety
        assert safety is not None
        assert safety.last_voted_round >= self.persisted_lvr[-1]

    @invariant()
    def record_is_consistent(self) -> None:
        safety = self.guard.safety
        assert safety is not None
        assert safety.one_chain_round < max(safety.last_voted_round, 1)
        if safety.last_vote is not None:
            assert safety.last_vote.vote_data.round <= safety.last_voted_round
        if safety.last_timeout is not None:
            assert safety.last_timeout.timeout.round <= safety.last_voted_round


def _empty_sync() -> SyncInfo:
    return SyncInfo(highest_qc=make_qc(0), highest_tc=None, highest_commit=None)


GuardMachine.TestCase.settings = settings(max_examples=500, stateful_step_count=50, deadline=None)
TestSigningGuardStateMachine = GuardMachine.TestCase
