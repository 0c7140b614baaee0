"""Unit tests for `taihang.consensus.core`: cores wired together in memory.

The driver (`consensus_support.Cluster`) delivers messages after a fixed delay, runs the
verifier stage on each, fires timers, persists to a per-node disk, and executes committed
blocks at once. Everything is deterministic, so every run of a test sees the same trace.
"""

from __future__ import annotations

import pytest
from consensus_support import (
    CHANNEL,
    START_MS,
    ChainBuilder,
    Cluster,
    CountingPayload,
    make_config,
    make_core,
    make_genesis,
    make_keys,
    votes_in,
)

from taihang.consensus.config import ConsensusConfig
from taihang.consensus.core import ConsensusCore, RecoveredState
from taihang.consensus.events import (
    BlockExecuted,
    Broadcast,
    Commit,
    MessageReceived,
    PersistBlock,
    PersistSafetyData,
    Send,
    SetTimer,
    Started,
    TimerFired,
)
from taihang.consensus.messages import BlockRequest, BlockResponse, Proposal, Vote
from taihang.consensus.pacemaker import compute_round_timeout_max_ms, compute_round_timeout_ms
from taihang.errors import ConfigurationError
from taihang.ledger.block import ExecRoot, TimeoutCert, compute_block_id


def test_handle_four_cores_commit_a_chain() -> None:
    cluster = Cluster(4)
    cluster.start()
    cluster.run_for(2_000)
    heights = cluster.committed_heights()
    assert min(heights) >= 20
    cluster.check_agreement()
    cluster.check_no_double_votes()
    for node in cluster.nodes:
        commits = [a for a in node.log if isinstance(a, Commit)]
        for commit in commits:
            proof = commit.proof.vote_data
            assert proof.parent_round + 1 == proof.round, "a commit proof has consecutive rounds"
            last = commit.blocks[-1]
            assert proof.parent_id == compute_block_id(cluster.suite, last.header)
    assert not cluster.rejected
    assert all(not node.core.rejections for node in cluster.nodes if node.core)


def test_handle_commits_transactions_once_each() -> None:
    cluster = Cluster(4, txs_per_block=5, txs_waiting=200)
    cluster.start()
    cluster.run_for(2_000)
    cluster.check_agreement()
    ledger = max((node.disk.ledger for node in cluster.nodes), key=len)
    txs = [tx for block in ledger for tx in block.transactions]
    assert len(txs) == len(set(txs)) >= 100


def test_handle_crashed_leader_leads_to_tc_and_progress() -> None:
    cluster = Cluster(4)
    cluster.start([0, 2, 3])  # validator 1 never comes up: it leads rounds 1, 5, 9, ...
    cluster.run_for(4_000)
    heights = cluster.committed_heights()
    assert heights[1] == 0
    assert min(heights[i] for i in (0, 2, 3)) >= 10
    tcs = [c for c in cluster.nodes[0].disk.certs if isinstance(c, TimeoutCert)]
    assert tcs, "rounds of the crashed leader end with a TC"
    assert all(tc.round % 4 == 1 for tc in tcs)
    proposers = {b.header.proposer for b in cluster.nodes[0].disk.ledger}
    assert cluster.keys.addresses[1] not in proposers
    cluster.check_agreement()
    cluster.check_no_double_votes()


def test_handle_recovers_from_recovered_state_and_catches_up() -> None:
    cluster = Cluster(4, txs_per_block=2, txs_waiting=10_000)
    cluster.start()
    cluster.run_for(500)
    cluster.crash(2)
    cluster.run_for(1_500)
    behind = cluster.committed_heights()[2]
    assert behind < min(cluster.committed_heights()[i] for i in (0, 1, 3))
    recovered = cluster.recovered_state(2)
    cluster.restart(2)
    core = cluster.nodes[2].core
    assert core is not None
    hqc_round = recovered.highest_qc.vote_data.round if recovered.highest_qc else 0
    htc_round = recovered.highest_tc.round if recovered.highest_tc else 0
    assert core.round >= max(hqc_round, htc_round) + 1
    cluster.run_for(2_000)
    heights = cluster.committed_heights()
    assert heights[2] > behind + 20
    assert max(heights) - heights[2] <= 3
    cluster.check_agreement()
    cluster.check_no_double_votes()


def test_handle_survives_partition_and_heals() -> None:
    cluster = Cluster(4)
    cluster.start()
    cluster.run_for(500)
    for a in (0, 1):
        for b in (2, 3):
            cluster.cut |= {(a, b), (b, a)}
    cluster.run_for(2_000)
    stalled = cluster.committed_heights()
    assert max(stalled) - min(stalled) <= 2, "no side has a quorum"
    cluster.cut.clear()
    cluster.run_for(6_000)
    assert min(cluster.committed_heights()) > max(stalled) + 10
    cluster.check_agreement()
    cluster.check_no_double_votes()


def test_handle_tolerates_drops_duplicates_and_jitter() -> None:
    cluster = Cluster(7, seed=7, jitter_ms=30, drop=0.05, duplicate=0.1)
    cluster.start()
    cluster.run_for(5_000)
    assert min(cluster.committed_heights()) >= 15
    cluster.check_agreement()
    cluster.check_no_double_votes()


def test_handle_sends_votes_to_next_leader_only_for_large_sets() -> None:
    cluster = Cluster(4, config=make_config(vote_broadcast_validators_max=3))
    cluster.start()
    cluster.run_for(2_000)
    assert min(cluster.committed_heights()) >= 15
    for node in cluster.nodes:
        for action in node.log:
            if isinstance(action, Broadcast):
                assert not isinstance(action.message, Vote)
            if isinstance(action, Send) and isinstance(action.message, Vote):
                data = action.message.vote_data
                assert action.to == cluster.keys.addresses[(data.round + 1) % 4]
    cluster.check_agreement()


def test_handle_observer_follows_the_chain() -> None:
    cluster = Cluster(4)
    cluster.start()
    cluster.run_for(1_000)
    observer = ConsensusCore(
        config=cluster.config,
        validators=cluster.keys.validators,
        suite=cluster.suite,
        genesis_block=cluster.genesis,
        me=None,
        guard=None,
        payload=CountingPayload("observer"),
    )
    assert observer.handle(Started(START_MS)) == []  # no timers: it never times out
    proposals = [
        (node.index, a.message)
        for node in cluster.nodes
        for a in node.log
        if isinstance(a, Broadcast) and isinstance(a.message, Proposal)
    ]
    proposals.sort(key=lambda p: p[1].block.header.round)
    committed = []
    for sender, proposal in proposals:
        address = cluster.keys.addresses[sender]
        for action in observer.handle(MessageReceived(START_MS + 1, address, proposal)):
            assert not isinstance(action, Send | Broadcast)
            if isinstance(action, Commit):
                committed += action.blocks
    ledger = cluster.nodes[0].disk.ledger
    assert len(committed) >= len(ledger) - 2
    assert committed == ledger[: len(committed)]


def test_handle_holds_vote_until_block_executed() -> None:
    keys = make_keys(4)
    genesis = make_genesis(keys)
    chain = ChainBuilder(keys, genesis)
    blocks = chain.chain([1, 2, 3])
    roots = ExecRoot(height=1, state_root=b"\x07" * 32, receipts_root=b"\x08" * 32)
    block4 = chain.child(blocks[-1], 4, exec_root=roots)
    core = make_core(keys, genesis, index=1)
    core.handle(Started(START_MS))
    for block in [*blocks, block4]:
        actions = core.handle(
            MessageReceived(START_MS, block.header.proposer, chain.proposal(block))
        )
    assert core.round == 4 and core.committed_height == 2  # QC(3) in block 4 commits block 2
    assert not votes_in(actions), "height 1 is not executed here yet: the vote waits"
    assert core.pending_vote == chain.block_id(block4)
    wrong = core.handle(BlockExecuted(START_MS, 1, b"\x09" * 32, b"\x08" * 32))
    assert not votes_in(wrong) and core.rejections["exec_root_mismatch"] == 1


def test_handle_votes_once_execution_matches() -> None:
    keys = make_keys(4)
    genesis = make_genesis(keys)
    chain = ChainBuilder(keys, genesis)
    blocks = chain.chain([1, 2, 3])
    roots = ExecRoot(height=1, state_root=b"\x07" * 32, receipts_root=b"\x08" * 32)
    block4 = chain.child(blocks[-1], 4, exec_root=roots)
    core = make_core(keys, genesis, index=1)
    core.handle(Started(START_MS))
    for block in [*blocks, block4]:
        core.handle(MessageReceived(START_MS, block.header.proposer, chain.proposal(block)))
    actions = core.handle(BlockExecuted(START_MS, 1, roots.state_root, roots.receipts_root))
    votes = votes_in(actions)
    assert len(votes) == 1 and votes[0].vote_data.block_id == chain.block_id(block4)


def test_handle_fetches_missing_parent_and_redrives_proposal() -> None:
    keys = make_keys(4)
    genesis = make_genesis(keys)
    chain = ChainBuilder(keys, genesis)
    blocks = chain.chain([1, 2])
    core = make_core(keys, genesis, index=3)
    core.handle(Started(START_MS))
    sender = blocks[1].header.proposer
    actions = core.handle(MessageReceived(START_MS, sender, chain.proposal(blocks[1])))
    requests = [a for a in actions if type(a).__name__ == "RequestBlocks"]
    assert len(requests) == 1 and requests[0].block_id == chain.block_id(blocks[0])
    assert requests[0].peer == sender
    assert not votes_in(actions)
    response = BlockResponse(
        request_id=chain.block_id(blocks[0]), blocks=[blocks[0]], qcs=[blocks[1].header.qc]
    )
    actions = core.handle(MessageReceived(START_MS + 5, sender, response))
    persisted = [a.block for a in actions if isinstance(a, PersistBlock)]
    assert persisted == [blocks[0], blocks[1]]
    assert [v.vote_data.round for v in votes_in(actions)] == [2]


def test_handle_answers_block_requests_newest_first_with_qcs() -> None:
    cluster = Cluster(4)
    cluster.start()
    cluster.run_for(1_000)
    core = cluster.nodes[0].core
    assert core is not None
    tip = core.hqc.vote_data.block_id
    actions = core.handle(
        MessageReceived(cluster.now_ms, cluster.keys.addresses[1], BlockRequest(tip, 5))
    )
    (send,) = actions
    assert isinstance(send, Send) and isinstance(send.message, BlockResponse)
    response = send.message
    assert len(response.blocks) == 5
    heights = [b.header.height for b in response.blocks]
    assert heights == sorted(heights, reverse=True)
    for block, qc in zip(response.blocks, response.qcs, strict=True):
        assert qc.vote_data.block_id == compute_block_id(cluster.suite, block.header)


def test_handle_rejects_response_that_does_not_hash_to_request() -> None:
    keys = make_keys(4)
    genesis = make_genesis(keys)
    chain = ChainBuilder(keys, genesis)
    blocks = chain.chain([1, 2])
    other = chain.child(genesis, 1, transactions=[b"forged"])
    core = make_core(keys, genesis, index=3)
    core.handle(Started(START_MS))
    sender = blocks[1].header.proposer
    core.handle(MessageReceived(START_MS, sender, chain.proposal(blocks[1])))
    forged = BlockResponse(
        request_id=chain.block_id(blocks[0]), blocks=[other], qcs=[chain.qc_of(other)]
    )
    actions = core.handle(MessageReceived(START_MS + 5, sender, forged))
    assert not [a for a in actions if isinstance(a, PersistBlock)]
    retry = [a for a in actions if type(a).__name__ == "RequestBlocks"]
    assert retry and retry[0].peer != sender, "a useless answer moves on to another peer"


def test_compute_round_timeout_ms_backs_off_and_caps() -> None:
    config = make_config(round_timeout_base_ms=1_000, leader_timeout_multiplier=2)
    timeouts = [compute_round_timeout_ms(config, r, 0, is_leader=False) for r in range(1, 14)]
    assert timeouts[:3] == [1_000, 1_000, 1_000]
    assert timeouts[3] == 1_500 and timeouts[4] == 2_250
    assert timeouts[-1] == timeouts[-2] == int(1_000 * 1.5**6)
    assert compute_round_timeout_ms(config, 2, 0, is_leader=True) == 2_000
    assert compute_round_timeout_max_ms(config) == 2 * int(1_000 * 1.5**6)


def test_consensus_config_validate_rejects_idle_interval_too_long() -> None:
    with pytest.raises(ConfigurationError, match="idle"):
        ConsensusConfig(channel=CHANNEL, round_timeout_base_ms=2_000).validate()
    ConsensusConfig(channel=CHANNEL).validate()  # the defaults: 2,500 >= 2 x 1,000 + 500


def test_handle_start_from_recovered_state_rejects_missing_head() -> None:
    keys = make_keys(4)
    genesis = make_genesis(keys)
    recovered = RecoveredState(
        blocks=[],
        highest_qc=None,
        highest_tc=None,
        committed_height=5,
        committed_block_id=b"\x01" * 32,
    )
    with pytest.raises(ConfigurationError, match="committed block"):
        make_core(keys, genesis, index=0, recovered=recovered)


def test_handle_is_deterministic() -> None:
    def trace() -> list[str]:
        cluster = Cluster(4, seed=3, jitter_ms=20, drop=0.05)
        cluster.start()
        cluster.run_for(1_500)
        return [repr(a) for node in cluster.nodes for a in node.log]

    assert trace() == trace()


def test_handle_waits_for_clock_before_voting_on_future_block() -> None:
    keys = make_keys(4)
    genesis = make_genesis(keys)
    chain = ChainBuilder(keys, genesis)
    core = make_core(keys, genesis, index=0)  # max_clock_drift_ms = 500
    core.handle(Started(START_MS))
    early = chain.child(genesis, 1, timestamp_ms=START_MS + 800)
    actions = core.handle(MessageReceived(START_MS, early.header.proposer, chain.proposal(early)))
    assert not votes_in(actions)
    assert SetTimer(("vote", 1), START_MS + 300) in actions
    assert votes_in(core.handle(TimerFired(START_MS + 300, ("vote", 1))))


def test_handle_stays_live_with_clocks_skewed_beyond_drift() -> None:
    cluster = Cluster(4)
    cluster.skew_ms = [0, 450, -450, 200]  # 900 ms apart: more than max_clock_drift_ms
    cluster.start()
    cluster.run_for(3_000)
    assert min(cluster.committed_heights()) >= 10
    cluster.check_agreement()


def test_handle_restarted_leader_reproposes_its_block_unchanged() -> None:
    keys = make_keys(4)
    genesis = make_genesis(keys)
    chain = ChainBuilder(keys, genesis)
    leader = make_core(keys, genesis, index=1)  # leads round 1; idle interval 50 ms
    leader.handle(Started(START_MS))
    first = leader.handle(TimerFired(START_MS + 50, ("propose", 1)))
    (proposal,) = [a.message for a in first if isinstance(a, Broadcast)][:1]
    assert isinstance(proposal, Proposal)
    safety = next(a.data for a in first if isinstance(a, PersistSafetyData))
    # It crashes and restarts within the round, and builds the very same block again.
    recovered = RecoveredState([proposal.block], None, None, 0, chain.genesis_id)
    again = make_core(keys, genesis, index=1, recovered=recovered, safety=safety)
    assert votes_in(again.handle(Started(START_MS))) == votes_in(first), "same vote re-sent"
    second = again.handle(TimerFired(START_MS + 80, ("propose", 1)))  # another clock reading
    assert [a for a in second if isinstance(a, Broadcast) and a.message == proposal]
    assert not [a for a in second if isinstance(a, PersistSafetyData | PersistBlock)]


def test_recovered_core_serves_committed_blocks_below_its_head() -> None:
    """Simulator seed 450: a core rebuilt from disk must still answer requests for committed
    blocks below its head, or a peer that lost one of them stays behind forever."""
    from taihang.consensus.block_tree import BlockTree
    from taihang.consensus.recovery import _committed_ancestors

    keys = make_keys(4)
    builder = ChainBuilder(keys, make_genesis(keys))
    chain = [(builder.block_id(b), b) for b in builder.chain([1, 2, 3, 4, 5, 6])]
    by_id = dict(chain)
    head_id, head = chain[-1]
    tree = BlockTree(head, head_id, None, committed_kept=16)
    tree.restore_committed_ancestors(_committed_ancestors(by_id, head, 16))
    blocks, qcs = tree.get_ancestors(chain[-2][0], 3)
    assert [b.header.height for b in blocks] == [5, 4, 3]
    assert [qc.vote_data.height for qc in qcs] == [5, 4, 3]


def test_block_tree_commits_a_path_longer_than_the_blocks_it_keeps() -> None:
    """Found by the 4-node e2e catch-up test: a node 300 blocks behind commits them at once;
    pruning must drop the part below the kept window instead of looking it up (KeyError)."""
    from taihang.consensus.block_tree import BlockTree

    keys = make_keys(4)
    genesis = make_genesis(keys)
    builder = ChainBuilder(keys, genesis)
    chain = [(builder.block_id(b), b) for b in builder.chain(list(range(1, 41)))]
    tree = BlockTree(genesis, builder.genesis_id, None, committed_kept=8)
    for block_id, block in chain:
        tree.insert(block, block_id)
    committed = tree.commit(chain[-1][0])
    assert [b.header.height for b in committed] == list(range(1, 41))
    assert tree.committed_height == 40
    assert tree.find_committed_id(32) == chain[31][0]  # the kept window: heights 32..40
    assert tree.find_committed_id(31) is None and not tree.has_block(chain[30][0])
    assert len(tree) == 9
