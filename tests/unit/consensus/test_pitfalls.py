"""Table tests ported from real bugs in other chains (consensus spec, "Pitfalls").

Each test names the item it rules out. Scenarios are built by hand (`ChainBuilder`) and fed
to single cores, or run on a small in-memory cluster, so each failure points at one rule.
"""

from __future__ import annotations

import pytest
from consensus_support import (
    CHANNEL,
    START_MS,
    ChainBuilder,
    Cluster,
    Keys,
    make_genesis,
    make_keys,
    sign_tc,
    sign_timeout,
    sign_vote,
    timeouts_in,
    vote_data_for,
    votes_in,
)

from taihang.consensus.core import ConsensusCore, RecoveredState
from taihang.consensus.events import (
    Action,
    Broadcast,
    Commit,
    MessageReceived,
    PersistBlock,
    PersistSafetyData,
    ReportEvidence,
    Send,
    Started,
    TimerFired,
)
from taihang.consensus.messages import Proposal, SafetyData, SyncInfo, TimeoutMsg, Vote
from taihang.consensus.verify import verify_message
from taihang.consensus.votes import VoteAggregator
from taihang.errors import InvalidBlock, InvalidCertificate
from taihang.ledger.block import Block, QuorumCert, compute_block_id, verify_qc

KEYS = make_keys(4)
GENESIS = make_genesis(KEYS)
CHAIN = ChainBuilder(KEYS, GENESIS)


def core_for(index: int, keys: Keys = KEYS, **kwargs: object) -> ConsensusCore:
    from consensus_support import make_core

    genesis = GENESIS if keys is KEYS else make_genesis(keys)
    core = make_core(keys, genesis, index=index, **kwargs)  # type: ignore[arg-type]
    core.handle(Started(START_MS))
    return core


def deliver(core: ConsensusCore, message: object, sender: int = 0) -> list[Action]:
    return core.handle(MessageReceived(START_MS + 1, KEYS.addresses[sender], message))  # type: ignore[arg-type]


def check(message: object) -> None:
    """The verifier stage, as the node runs it before the core."""
    verify_message(message, KEYS.validators, KEYS.suite, CHANNEL, 0, CHAIN.genesis_id)  # type: ignore[arg-type]


def propose(core: ConsensusCore, block: Block, sync: SyncInfo | None = None) -> list[Action]:
    sender = KEYS.addresses.index(block.header.proposer)
    return deliver(core, CHAIN.proposal(block, sync), sender)


# 1. Persist before you sign and send (aptos#18298, gravity-sdk#743, narwhal#488, bsc#2598).


def test_handle_persists_before_every_send() -> None:
    cluster = Cluster(4, seed=1, jitter_ms=10, drop=0.05)
    cluster.start([0, 2, 3])  # a missing validator forces timeouts too
    cluster.run_for(3_000)
    cluster.start([1])
    cluster.run_for(2_000)
    checked = 0
    for node in cluster.nodes:
        me = cluster.keys.addresses[node.index]
        safety: SafetyData | None = None
        persisted_blocks: set[bytes] = set()
        for action in node.log:  # every action of every step, in order
            if isinstance(action, PersistSafetyData):
                safety = action.data
            elif isinstance(action, PersistBlock):
                persisted_blocks.add(compute_block_id(cluster.suite, action.block.header))
            elif isinstance(action, Send | Broadcast):
                message = action.message
                if isinstance(message, Vote) and message.author == me:
                    assert safety is not None and safety.last_vote == message
                    assert message.vote_data.block_id in persisted_blocks
                    checked += 1
                elif isinstance(message, TimeoutMsg) and message.author == me:
                    assert safety is not None and safety.last_timeout == message
                    checked += 1
    assert checked > 100


def test_handle_resends_persisted_vote_after_crash_before_send() -> None:
    """diem#4843: the persisted last vote is re-sent after a restart, never a different one."""
    blocks = CHAIN.chain([1, 2])
    core = core_for(3)
    propose(core, blocks[0])
    actions = propose(core, blocks[1])
    persisted = [a.data for a in actions if isinstance(a, PersistSafetyData)]
    assert len(persisted) == 1 and votes_in(actions)
    # The node crashes after the PersistSafetyData, before the vote left: restart from disk.
    recovered = RecoveredState(
        blocks=blocks, highest_qc=blocks[1].header.qc, highest_tc=None,
        committed_height=0, committed_block_id=CHAIN.genesis_id,
    )  # fmt: skip
    resent = votes_in(_started_actions(3, recovered, persisted[0]))
    assert resent == [persisted[0].last_vote]  # round 2 is still current: the same vote again
    restarted = core_for(3, recovered=recovered, safety=persisted[0])
    assert restarted.round == 2
    rival = CHAIN.child(blocks[0], 2, transactions=[b"rival"])
    assert not votes_in(propose(restarted, rival)), "never a second vote in round 2"


def _started_actions(index: int, recovered: RecoveredState, safety: SafetyData) -> list[Action]:
    from consensus_support import make_core

    core = make_core(KEYS, GENESIS, index=index, recovered=recovered, safety=safety)
    return core.handle(Started(START_MS))


# 2. Recover to the right round (babylon-node#243).


@pytest.mark.parametrize(
    ("qc_round", "tc_round", "expected_round"),
    [
        (3, None, 4),
        (3, 7, 8),
        (6, 4, 7),
        (None, 5, 6),  # restart with only a TC: it names the round to resume after
    ],
)
def test_handle_started_resumes_after_highest_qc_or_tc(
    qc_round: int | None, tc_round: int | None, expected_round: int
) -> None:
    blocks = CHAIN.chain([1, 2, 3, 4, 5, 6])
    qc = CHAIN.qc_of(blocks[qc_round - 1]) if qc_round is not None else None
    tc = None
    if tc_round is not None:
        tc_qc = CHAIN.qc_of(blocks[1])  # round 2
        tc = sign_tc(KEYS, tc_round, tc_qc, {0: 2, 1: 2, 2: 1})
    recovered = RecoveredState(
        blocks=[], highest_qc=qc, highest_tc=tc, committed_height=0,
        committed_block_id=CHAIN.genesis_id,
    )  # fmt: skip
    assert core_for(0, recovered=recovered).round == expected_round


def test_handle_started_resends_timeout_only_for_current_round() -> None:
    core = core_for(1)
    fired = core.handle(TimerFired(START_MS + 1_000, ("round", 1)))
    (timeout,) = timeouts_in(fired)
    safety = next(a.data for a in fired if isinstance(a, PersistSafetyData))
    blank = RecoveredState([], None, None, 0, CHAIN.genesis_id)
    resent = _started_actions(1, blank, safety)
    assert timeouts_in(resent) == [timeout]  # still round 1: the same timeout again
    later = RecoveredState([], CHAIN.qc_of(CHAIN.chain([1])[0]), None, 0, CHAIN.genesis_id)
    assert not timeouts_in(_started_actions(1, later, safety))  # round 2 now: nothing stale


# 3. The commit rule needs consecutive rounds (relab/hotstuff#249).


def test_handle_commits_only_on_consecutive_rounds() -> None:
    b1 = CHAIN.child(GENESIS, 1)
    tc2 = sign_tc(KEYS, 2, CHAIN.qc_of(b1), {0: 1, 1: 1, 2: 1})
    b3 = CHAIN.child(b1, 3, tc=tc2)  # round 3 after a TC: B3.parent_round + 1 != B3.round
    b4 = CHAIN.child(b3, 4)
    b5 = CHAIN.child(b4, 5)
    core = core_for(2)
    for block in (b1, b3, b4):
        actions = propose(core, block)
        assert not [a for a in actions if isinstance(a, Commit)], "QC(B3) must not commit B1"
    actions = propose(core, b5)  # carries QC(B4): rounds 3 -> 4 are consecutive
    (commit,) = [a for a in actions if isinstance(a, Commit)]
    assert commit.blocks == [b1, b3]
    assert commit.proof == b5.header.qc


# 6. Never jump rounds on an unauthenticated claim (FISCO-BCOS#2211).

HUGE = 1_000_000


def test_handle_ignores_huge_round_in_single_messages() -> None:
    core = core_for(3)
    b1 = CHAIN.child(GENESIS, 1)
    propose(core, b1)
    assert core.round == 1
    far = vote_data_for(KEYS.suite, b1.header).__class__(
        channel=CHANNEL, epoch=0, round=HUGE, block_id=b"\x05" * 32, height=2,
        parent_id=CHAIN.block_id(b1), parent_round=1,
    )  # fmt: skip
    lone_timeout = sign_timeout(KEYS, 1, HUGE, CHAIN.qc_of(GENESIS))
    for message in (sign_vote(KEYS, far, 1), lone_timeout):
        check(message)
        deliver(core, message, sender=1)
        assert core.round == 1
    assert not timeouts_in(deliver(core, sign_timeout(KEYS, 2, HUGE, CHAIN.qc_of(GENESIS)), 2))


def test_verify_message_rejects_huge_round_with_bogus_certificates() -> None:
    core = core_for(3)
    b1 = CHAIN.child(GENESIS, 1)
    forged_tc = sign_tc(KEYS, 4, CHAIN.qc_of(GENESIS), {0: 0, 1: 0, 2: 0})
    forged_tc = forged_tc.__class__(CHANNEL, 0, HUGE, forged_tc.high_qc, forged_tc.entries)
    jump = CHAIN.child(b1, HUGE + 1, tc=forged_tc, proposer=(HUGE + 1) % 4)
    with pytest.raises(InvalidCertificate):  # the verifier stage stops it at the door
        check(CHAIN.proposal(jump))
    no_tc = CHAIN.child(b1, HUGE, proposer=HUGE % 4)
    with pytest.raises(InvalidBlock):
        check(CHAIN.proposal(no_tc))
    deliver(core, CHAIN.proposal(no_tc), sender=HUGE % 4)  # even if it slipped through
    assert core.round == 2 and core.rejections["proposal_malformed"] == 1


def test_handle_times_out_early_on_f_plus_one_never_jumps() -> None:
    keys = make_keys(7)  # f = 2: f+1 = 3 weight times out early; a TC needs Q = 5
    chain = ChainBuilder(keys, make_genesis(keys))
    core = core_for(6, keys=keys)
    genesis_qc = chain.qc_of(chain.genesis)

    def timeout_from(signer: int, round: int) -> list[Action]:
        message = sign_timeout(keys, signer, round, genesis_qc)
        return core.handle(MessageReceived(START_MS, keys.addresses[signer], message))

    assert not timeouts_in(timeout_from(0, 1) + timeout_from(1, 1)), "f weight is not enough"
    (own,) = timeouts_in(timeout_from(2, 1))
    assert own.author == keys.addresses[6] and own.timeout.round == 1
    assert core.round == 1, "an early timeout is not a round jump"
    for signer in (3, 4):  # f+1 timeouts for a round the node is not in: nothing at all
        assert not timeout_from(signer, 9)
    assert core.round == 1


# 7. Epoch boundaries (Concordium#1197): never mix signatures from two epochs.


@pytest.mark.parametrize("mixed", ["entry", "high_qc", "certificate"])
def test_verify_message_rejects_tc_with_mixed_epochs(mixed: str) -> None:
    high_qc = CHAIN.qc_of(CHAIN.chain([1])[0])
    tc = sign_tc(KEYS, 3, high_qc, {0: 1, 1: 1, 2: 1}, entry_epochs={1: 1})
    if mixed == "high_qc":
        data = high_qc.vote_data.__class__(**{**_fields(high_qc.vote_data), "epoch": 1})
        other_qc = QuorumCert(data, high_qc.signers, high_qc.signatures)
        tc = sign_tc(KEYS, 3, other_qc, {0: 1, 1: 1, 2: 1})
    elif mixed == "certificate":
        tc = sign_tc(KEYS, 3, high_qc, {0: 1, 1: 1, 2: 1}, epoch=1)
    sync = SyncInfo(highest_qc=high_qc, highest_tc=tc, highest_commit=None)
    message = sign_timeout(KEYS, 3, 4, high_qc, sync)
    with pytest.raises(InvalidCertificate):
        check(message)


# 8. Input validation and aggregation (harmony#2610, CometBFT advisories).


def test_vote_aggregator_add_keeps_first_vote_per_signer() -> None:
    b1 = CHAIN.child(GENESIS, 1)
    rival = CHAIN.child(GENESIS, 1, transactions=[b"rival"])
    good, bad = vote_data_for(KEYS.suite, b1.header), vote_data_for(KEYS.suite, rival.header)
    votes = VoteAggregator(KEYS.validators)
    assert votes.add(sign_vote(KEYS, good, 0)) == (None, None)
    qc, evidence = votes.add(sign_vote(KEYS, bad, 0))
    assert qc is None and evidence is not None and evidence.kind == "vote"
    assert votes.add(sign_vote(KEYS, good, 0)) == (None, None), "a duplicate adds no weight"
    assert votes.add(sign_vote(KEYS, good, 1)) == (None, None)
    qc, _ = votes.add(sign_vote(KEYS, good, 2))
    assert qc is not None and qc.vote_data == good
    verify_qc(qc, KEYS.validators, KEYS.suite, channel=CHANNEL, epoch=0, genesis_id=b"")


def test_handle_reports_double_proposal_and_votes_first_only() -> None:
    core = core_for(3)
    first = CHAIN.child(GENESIS, 1)
    second = CHAIN.child(GENESIS, 1, transactions=[b"twin"])
    assert votes_in(propose(core, first))
    actions = propose(core, second)
    assert not votes_in(actions)
    (report,) = [a for a in actions if isinstance(a, ReportEvidence)]
    assert report.evidence.kind == "proposal" and report.evidence.round == 1
    assert isinstance(report.evidence.first, Proposal)


# Rule 3 after a TC: the attack that only a stale proposal exposed in a prototype.


def test_handle_refuses_stale_qc_after_tc() -> None:
    b1, b2 = CHAIN.chain([1, 2])
    tc3 = sign_tc(KEYS, 3, CHAIN.qc_of(b2), {0: 2, 1: 2, 2: 1})  # someone holds QC round 2
    stale = CHAIN.child(b1, 4, tc=tc3)  # extends B1 (QC round 1 < the TC's hqc round 2)
    core = core_for(3)
    propose(core, b1)
    propose(core, b2)
    actions = propose(core, stale)
    assert core.round == 4 and not votes_in(actions)
    assert "rule 3" in core.last_rejection
    good = CHAIN.child(b2, 4, tc=tc3)
    core_b = core_for(2)
    for block in (b1, b2):
        propose(core_b, block)
    assert votes_in(propose(core_b, good))


# Disk loss is Byzantine (amnesia): a wiped validator signs nothing.


def test_handle_wiped_validator_never_signs() -> None:
    cluster = Cluster(4)
    cluster.start()
    cluster.run_for(500)
    cluster.crash(2)
    cluster.nodes[2].disk = type(cluster.nodes[2].disk)(safety=None)  # everything lost
    cluster.restart(2)
    mark = len(cluster.nodes[2].log)
    before = cluster.committed_heights()
    cluster.run_for(3_000)
    me = cluster.keys.addresses[2]
    for action in cluster.nodes[2].log[mark:]:
        message = getattr(action, "message", None)
        if isinstance(message, Vote | TimeoutMsg):
            assert message.author != me
        if isinstance(message, Proposal):
            assert message.block.header.proposer != me
    heights = cluster.committed_heights()
    assert min(heights[i] for i in (0, 1, 3)) > max(before) + 10
    assert heights[2] >= min(heights) - 3, "it still follows the chain"
    cluster.check_agreement()


def test_handle_rebroadcasts_same_timeout_on_later_expiries() -> None:
    core = core_for(0)
    first = core.handle(TimerFired(START_MS + 1_000, ("round", 1)))
    second = core.handle(TimerFired(START_MS + 2_000, ("round", 1)))
    assert timeouts_in(first) == timeouts_in(second) and len(timeouts_in(first)) == 1
    assert [a for a in first if isinstance(a, PersistSafetyData)]
    assert not [a for a in second if isinstance(a, PersistSafetyData)]
    assert not votes_in(propose(core, CHAIN.child(GENESIS, 1))), "no vote after a timeout"


# 5. View-change liveness (relab/hotstuff#106, TigerBeetle's asymmetric partition livelock).


def test_handle_stays_live_through_asymmetric_partition() -> None:
    cluster = Cluster(4)
    cluster.start()
    cluster.run_for(300)
    cluster.cut |= {(1, 0), (2, 0), (3, 0)}  # node 0 still talks, but hears nobody
    cluster.run_for(3_000)
    heights = cluster.committed_heights()
    assert min(heights[1:]) >= 15, "the three that hear each other keep a quorum"
    cluster.cut.clear()
    cluster.run_for(2_000)
    assert cluster.committed_heights()[0] >= min(heights[1:])
    cluster.check_agreement()
    cluster.check_no_double_votes()


# 9. Sync corner cases (SmartBFT#663): after catching up, a node takes part again.


def test_handle_votes_again_after_catching_up() -> None:
    cluster = Cluster(4)
    cluster.start()
    cluster.run_for(300)
    cluster.crash(3)
    cluster.run_for(2_000)
    cluster.restart(3)
    mark = len(cluster.nodes[3].log)
    cluster.run_for(1_000)
    me = cluster.keys.addresses[3]
    votes = [v for v in votes_in(cluster.nodes[3].log[mark:]) if v.author == me]
    assert len(votes) >= 10, "proposals are not refused after a sync"
    committed = set(cluster.nodes[0].disk.ledger_ids)
    assert sum(v.vote_data.block_id in committed for v in votes) >= 5


# Helpers.


def _fields(value: object) -> dict[str, object]:
    return {name: getattr(value, name) for name in value.__struct_fields__}  # type: ignore[attr-defined]
