"""The simulator itself, driven by a toy core: determinism, faults, checkers and the CLI.

These tests do not depend on the Jolteon core (see `sim_toy_core`), so a simulator bug and a
consensus bug never hide behind each other.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from taihang.consensus.messages import SyncInfo, TimeoutMsg, TimeoutSign, Vote
from taihang.crypto import CryptoSuite
from taihang.ledger.block import QuorumCert, VoteData, build_genesis_qc
from taihang.sim.checkers import Progress, SafetyMonitor, Violation, check_liveness
from taihang.sim.cli import register
from taihang.sim.cluster import HEALED_TIMEOUTS_MIN, SimTiming, compute_healed_ms
from taihang.sim.fake_crypto import FAKE
from taihang.sim.network import SimNetwork
from taihang.sim.plan import (
    DOWN_MS_MAX,
    FAULT_KINDS,
    LATENCY_MS_MAX_CHOICES,
    PARTITION_MS_MAX,
    FaultPlan,
    generate_plan,
)
from taihang.sim.runner import SimOptions, run_seed, run_seed_hashed, run_seeds
from taihang.sim.trace import HashSink

TOY = SimOptions(binding="sim_toy_core:ToyBinding", without=frozenset({"wipe"}))


def toy(bug: str, **changes: object) -> SimOptions:
    return replace(TOY, binding=f"sim_toy_core:{bug}Binding", **changes)  # type: ignore[arg-type]


# --- fake crypto ------------------------------------------------------------------------------
def test_fake_suite_signs_and_verifies_like_a_suite() -> None:
    suite: CryptoSuite = FAKE  # satisfies the protocol
    seed = bytes(range(32))
    public_key = suite.public_key_from_seed(seed)
    signature = suite.sign(seed, b"message")
    assert suite.verify(public_key, b"message", signature)
    assert not suite.verify(public_key, b"other", signature)
    assert not suite.verify(suite.public_key_from_seed(bytes(32)), b"message", signature)
    assert not suite.verify(public_key, b"message", signature[:-1])
    assert suite.sign(seed, b"message") == signature  # deterministic


# --- plan and network -------------------------------------------------------------------------
def test_generate_plan_same_seed_same_plan() -> None:
    def plan(seed: int) -> FaultPlan:
        return generate_plan(random.Random(seed), nodes=None, byzantine=0, faulty_ms=8_000)

    assert plan(11) == plan(11)
    assert any(plan(s) != plan(11) for s in range(12, 20))


def test_generate_plan_stays_in_its_ranges() -> None:
    for seed in range(300):
        plan = generate_plan(random.Random(seed), nodes=None, byzantine=0, faulty_ms=8_000)
        assert plan.nodes in (4, 7)
        assert plan.latency_ms_max in LATENCY_MS_MAX_CHOICES
        assert len(plan.partitions) <= 3
        assert len([c for c in plan.crashes if not c.wipe]) <= 4
        assert len(plan.wiped_nodes) <= (plan.nodes - 1) // 3
        for p in plan.partitions:
            assert 0 <= p.start_ms < p.end_ms <= 8_000
            assert p.end_ms - p.start_ms <= PARTITION_MS_MAX
            assert set(p.side_a).isdisjoint(p.side_b) and p.side_a and p.side_b
        for c in plan.crashes:
            assert 0 <= c.at_ms < 8_000 and 0 < c.down_ms <= DOWN_MS_MAX


def test_generate_plan_pinned_nodes_replays_the_drawn_plan() -> None:
    free = generate_plan(random.Random(5), nodes=None, byzantine=0, faulty_ms=8_000)
    pinned = generate_plan(random.Random(5), nodes=free.nodes, byzantine=0, faulty_ms=8_000)
    assert pinned == free


def test_generate_plan_without_masks_one_kind_and_keeps_the_rest() -> None:
    seed = next(
        s
        for s in range(100)
        if (p := generate_plan(random.Random(s), nodes=None, byzantine=0, faulty_ms=8_000)).drop
        and p.partitions
        and p.crashes
    )
    full = generate_plan(random.Random(seed), nodes=None, byzantine=0, faulty_ms=8_000)
    masked = generate_plan(
        random.Random(seed), nodes=None, byzantine=0, faulty_ms=8_000, without=frozenset({"drop"})
    )
    assert masked.drop == 0
    assert masked.partitions == full.partitions and masked.crashes == full.crashes
    with pytest.raises(ValueError, match="unknown fault kinds"):
        generate_plan(
            random.Random(1), nodes=4, byzantine=0, faulty_ms=8_000, without=frozenset({"x"})
        )


def test_network_after_healing_delivers_every_message_once() -> None:
    plan = FaultPlan(4, 20, 1.0, 1.0, 1.0, (), (), 8_000, (0,) * 4)  # every fault certain
    counts = dict.fromkeys(FAULT_KINDS, 0)
    network = SimNetwork(plan, random.Random(1), counts)
    assert network.route(0, 0, 1) == []  # dropped
    network.heal()
    delays = [network.route(9_000, 0, 1) for _ in range(100)]
    assert all(len(d) == 1 and 1 <= d[0] <= 20 for d in delays)
    assert network.route(9_000, 2, 2) == [0]  # to itself: no wire


# --- runs -------------------------------------------------------------------------------------
def test_toy_core_runs_clean_under_faults() -> None:
    summary = run_seeds(list(range(40)), TOY)
    assert summary.violations == 0, [r.violation for r in summary.failed]
    assert summary.commits > 0
    for kind in ("drop", "duplicate", "reorder", "partition", "one_way_partition", "crash"):
        assert summary.faults[kind] > 0, kind
    assert summary.faults["crash_mid_step"] > 0


def test_same_seed_same_trace_and_another_seed_another() -> None:
    first = run_seed_hashed(7, TOY)
    assert run_seed_hashed(7, TOY).trace_sha256 == first.trace_sha256
    assert run_seed_hashed(8, TOY).trace_sha256 != first.trace_sha256


def test_items_due_at_one_instant_run_in_the_order_they_were_scheduled() -> None:
    lines: list[bytes] = []

    class ListSink:
        def write(self, line: bytes) -> None:
            lines.append(line)

    options = replace(
        TOY, binding="sim_toy_core:TimerOrderBinding", nodes=4, without=frozenset({"wipe", "crash"})
    )
    run_seed(1, options, ListSink())
    fired = [
        (record["n"], record["ev"][1])
        for record in map(json.loads, lines)
        if record.get("ev", [None])[0] == "timer"
    ]
    # Nodes start in index order; each node's timers fire in the order armed; a re-armed
    # timer goes to the back, and the cancelled arming never fires.
    assert fired == [(n, kind) for n in range(4) for kind in ("z", "m", "a")]


def test_trace_first_line_records_the_flags() -> None:
    lines: list[bytes] = []

    class ListSink:
        def write(self, line: bytes) -> None:
            lines.append(line)

    run_seed(3, TOY, ListSink())
    first = json.loads(lines[0])
    assert first["flags"]["seed"] == 3 and first["flags"]["binding"] == TOY.binding
    assert "plan" in json.loads(lines[1])
    assert "end" in json.loads(lines[-1])


@pytest.mark.parametrize(
    ("bug", "kind"),
    [
        ("DoubleVote", "double_vote"),
        ("Fork", "agreement"),
        ("Assert", "core_assertion"),
        ("Stall", "liveness"),
        ("BadSignature", "rejected_message"),
        ("VoteAfterTimeout", "vote_after_timeout"),
    ],
)
def test_checkers_catch_each_broken_property(bug: str, kind: str) -> None:
    result = run_seed(1, toy(bug))
    assert result.violation is not None
    assert result.violation["kind"] == kind


def test_wiped_follower_that_signs_is_caught() -> None:
    options = toy("WipedSigns", without=frozenset())
    found = []
    for seed in range(60):
        plan = generate_plan(random.Random(seed), nodes=None, byzantine=0, faulty_ms=8_000)
        if plan.wiped_nodes and 0 not in plan.wiped_nodes:  # node 0 is the toy's leader
            found.append(run_seed(seed, options).violation)
        if len(found) == 3:
            break
    assert found and all(v is not None and v["kind"] == "wiped_node_signed" for v in found)


def test_healed_phase_lasts_four_round_timeouts() -> None:
    timing = SimTiming()
    assert compute_healed_ms(timing, 100) == timing.healed_ms_min
    assert compute_healed_ms(timing, 5_000) == HEALED_TIMEOUTS_MIN * 5_000


def test_sm_trace_masks_randomised_signatures() -> None:
    pytest.importorskip("taihang.crypto.sm")
    options = replace(TOY, crypto="sm")
    try:
        first = run_seed(2, options, HashSink())
    except Exception as exc:  # a system OpenSSL without SM2
        pytest.skip(f"sm suite unavailable: {exc}")
    assert first.violation is None
    assert run_seed(2, options, HashSink()).trace_sha256 == first.trace_sha256


# --- checkers ---------------------------------------------------------------------------------
def _vote(author: str, round_: int, block: bytes) -> Vote:
    data = VoteData("sim", 0, round_, block, round_, bytes(32), round_ - 1)
    return Vote(vote_data=data, author=author, signature=b"s")


def _timeout(author: str, round_: int, hqc_round: int = 0) -> TimeoutMsg:
    qc: QuorumCert = build_genesis_qc("sim", bytes(32))
    sync = SyncInfo(highest_qc=qc, highest_tc=None, highest_commit=None)
    sign = TimeoutSign(channel="sim", epoch=0, round=round_, hqc_round=hqc_round)
    return TimeoutMsg(timeout=sign, high_qc=qc, author=author, signature=b"s", sync=sync)


def test_monitor_allows_resending_a_vote_and_refuses_another() -> None:
    monitor = SafetyMonitor()
    monitor.check_outgoing(0, "a", _vote("a", 3, b"x" * 32), wiped=False)
    monitor.check_outgoing(0, "a", _vote("a", 3, b"x" * 32), wiped=False)
    monitor.check_outgoing(0, "a", _timeout("a", 3, hqc_round=2), wiped=False)
    monitor.check_outgoing(0, "a", _vote("a", 3, b"x" * 32), wiped=False)  # re-send after it
    with pytest.raises(Violation, match="double_vote"):
        monitor.check_outgoing(0, "a", _vote("a", 3, b"y" * 32), wiped=False)


def test_monitor_refuses_a_new_vote_after_a_timeout_and_signing_when_wiped() -> None:
    monitor = SafetyMonitor()
    monitor.check_outgoing(1, "b", _timeout("b", 5), wiped=False)
    with pytest.raises(Violation, match="vote_after_timeout"):
        monitor.check_outgoing(1, "b", _vote("b", 4, b"x" * 32), wiped=False)
    with pytest.raises(Violation, match="wiped_node_signed"):
        monitor.check_outgoing(2, "c", _timeout("c", 1), wiped=True)


def test_monitor_refuses_signing_below_earlier_rounds_or_the_lock() -> None:
    monitor = SafetyMonitor()
    monitor.check_outgoing(0, "a", _vote("a", 6, b"x" * 32), wiped=False)  # lock: round 5
    with pytest.raises(Violation, match="vote_round_regression"):
        monitor.check_outgoing(0, "a", _vote("a", 4, b"y" * 32), wiped=False)
    with pytest.raises(Violation, match="timeout_round_regression"):
        monitor.check_outgoing(0, "a", _timeout("a", 5, hqc_round=5), wiped=False)
    with pytest.raises(Violation, match="timeout_below_lock"):
        monitor.check_outgoing(0, "a", _timeout("a", 7, hqc_round=4), wiped=False)
    monitor.check_outgoing(0, "a", _timeout("a", 7, hqc_round=6), wiped=False)


def test_monitor_refuses_two_blocks_at_one_height() -> None:
    monitor = SafetyMonitor()
    monitor.check_commit(0, 1, b"a")
    monitor.check_commit(1, 1, b"a")
    with pytest.raises(Violation, match="agreement"):
        monitor.check_commit(2, 1, b"b")


def test_liveness_needs_three_new_commits_per_node() -> None:
    check_liveness([Progress(0, 5, 8), Progress(1, 0, 3)])
    with pytest.raises(Violation, match=r"node 1: 4 -> 6"):
        check_liveness([Progress(0, 5, 8), Progress(1, 4, 6)])


# --- CLI --------------------------------------------------------------------------------------
def _cli_app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    return app


def test_cli_campaign_ends_with_one_json_line() -> None:
    args = ["sim", "--mode", "random", "--seeds", "4", "--json", "--without", "wipe"]
    result = CliRunner().invoke(_cli_app(), [*args, "--core", TOY.binding])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {"seeds", "violations", "faults", "commits", "seeds_per_s"}
    assert summary["seeds"] == 4 and summary["violations"] == 0


def test_cli_violation_exits_nonzero_with_the_replay_command() -> None:
    args = ["sim", "--seeds", "1", "--first-seed", "5", "--core", "sim_toy_core:ForkBinding"]
    result = CliRunner().invoke(_cli_app(), args)
    assert result.exit_code == 1
    assert "seed 5 FAILED: agreement" in result.stderr
    assert "replay: taihang sim --mode random --seed 5" in result.stderr


def test_cli_rejects_more_byzantine_validators_than_f() -> None:
    result = CliRunner().invoke(_cli_app(), ["sim", "--seeds", "1", "--byzantine", "2"])
    assert result.exit_code == 2
    assert "exceeds f = 1" in result.stderr
    result = CliRunner().invoke(_cli_app(), ["sim", "--seeds", "2", "--byzantine", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["violations"] == 0


def test_cli_trace_writes_the_flags_first(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    args = ["sim", "--seed", "2", "--trace", str(path), "--without", "wipe", "--core", TOY.binding]
    result = CliRunner().invoke(_cli_app(), args)
    assert result.exit_code == 0, result.output
    assert json.loads(path.read_text().splitlines()[0])["flags"]["seed"] == 2
