"""Unit and property tests for `taihang.sync.plan.SyncPlan`, the sans-IO download plan.

The peers are simulated in memory: each serves ranges from one genuine certified chain
(`sync_support.BLOCKS`), some of them tampering. A small driver loop plays the node's syncer:
ask for `next_requests`, deliver one outstanding response in a chosen order, charge the peer a
`BadRange` names.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sync_support import (
    BLOCKS,
    IDS,
    SUITE,
    TIP_HEIGHT_MAX,
    build_response,
    build_tip,
    get_range,
    tamper_range,
)

from taihang.errors import InvalidInput
from taihang.ledger.block import Block
from taihang.sync import plan as plan_module
from taihang.sync.messages import RangeRequest, RangeResponse, Tip
from taihang.sync.plan import BadRange, ForkDetected, SyncPlan, Window

Verified = list[tuple[int, list[Block]]]


def make_plan(
    local_height: int, target_height: int, window: int, local_id: bytes = b""
) -> SyncPlan:
    return SyncPlan(
        local_height,
        local_id or IDS[local_height],
        build_tip(target_height),
        SUITE,
        window=window,
    )


def genuine(start: int, count: int) -> tuple[int, list[Block]]:
    return (start, get_range(start, count))


def request_of(window: Window) -> RangeRequest:
    return RangeRequest(start=window.start, count=window.count)


def tampered_response(request: RangeRequest, offset: int = 0) -> RangeResponse:
    blocks = tamper_range(get_range(request.start, request.count), offset)
    return RangeResponse(start=request.start, blocks=blocks)


# Windows.


@pytest.mark.parametrize(
    ("local_height", "target_height", "window"),
    [(0, 48, 8), (0, 48, 7), (5, 6, 64), (10, 48, 1), (47, 48, 3), (0, 20, 20), (0, 20, 21)],
)
def test_sync_plan_windows_cover_heights_top_first(
    local_height: int, target_height: int, window: int
) -> None:
    plan = make_plan(local_height, target_height, window)
    check_windows(plan.windows, local_height, target_height, window)
    assert not plan.done
    assert plan.frontier_id == IDS[target_height]
    assert plan.assigned == {} and plan.held == {} and plan.dropped == set()


def test_sync_plan_windows_exact_cut() -> None:
    plan = make_plan(3, 20, 5)
    assert plan.windows == [Window(16, 5), Window(11, 5), Window(6, 5), Window(4, 2)]
    assert [w.top for w in plan.windows] == [20, 15, 10, 5]


def check_windows(windows: list[Window], local_height: int, target_height: int, size: int) -> None:
    """The windows cut local_height+1..target_height into `size`-block pieces, from the top."""
    assert windows, "at least one window"
    assert windows[0].top == target_height
    assert windows[-1].start == local_height + 1
    for upper, lower in itertools.pairwise(windows):
        assert lower.top == upper.start - 1
    assert all(w.count == size for w in windows[:-1])
    assert 1 <= windows[-1].count <= size
    heights = [h for w in windows for h in range(w.start, w.top + 1)]
    assert sorted(heights) == list(range(local_height + 1, target_height + 1))


@settings(max_examples=200, deadline=None)
@given(
    local_height=st.integers(0, 1_000_000),
    span=st.integers(1, 3_000),
    window=st.integers(1, 200),
)
def test_sync_plan_windows_cover_any_span(local_height: int, span: int, window: int) -> None:
    # Only the tip's height matters for the cut, so no chain this long is needed.
    tip = build_tip(1)
    tip = Tip(nonce=1, height=local_height + span, block_id=IDS[1], proof=tip.proof)
    plan = SyncPlan(local_height, IDS[0], tip, SUITE, window=window)
    check_windows(plan.windows, local_height, local_height + span, window)
    assert len(plan.windows) == -(-span // window)


@pytest.mark.parametrize("window", [0, -1])
def test_sync_plan_rejects_non_positive_window(
    window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = 0

    def bounded_window(start: int, count: int) -> Window:  # stops the endless loop
        nonlocal made
        made += 1
        if made > 1_000:
            raise RuntimeError("SyncPlan keeps cutting windows")
        return Window(start, count)

    monkeypatch.setattr(plan_module, "Window", bounded_window)
    with pytest.raises((AssertionError, ValueError)):
        make_plan(0, 10, window)


# next_requests.


def test_next_requests_one_window_per_peer_top_first() -> None:
    plan = make_plan(0, 32, 8)  # windows 25-32, 17-24, 9-16, 1-8
    requests = plan.next_requests({"a": 32, "b": 32, "c": 32})
    assert requests == [
        ("a", RangeRequest(start=25, count=8)),
        ("b", RangeRequest(start=17, count=8)),
        ("c", RangeRequest(start=9, count=8)),
    ]
    assert plan.next_requests({"a": 32, "b": 32, "c": 32}) == []  # all busy
    assert plan.next_requests({"a": 32, "b": 32, "c": 32, "d": 32}) == [
        ("d", RangeRequest(start=1, count=8))
    ]
    assert plan.next_requests({"e": 32}) == []  # every window is out


def test_next_requests_single_peer_gets_next_window_after_answering() -> None:
    plan = make_plan(0, 24, 8)
    tips = {"a": 24}
    verified: Verified = []
    for expected_start in (17, 9, 1):
        [(peer, request)] = plan.next_requests(tips)
        assert (peer, request.start) == ("a", expected_start)
        assert plan.next_requests(tips) == []  # one outstanding window per peer
        verified += plan.on_response(peer, build_response(request))
    assert verified == [genuine(17, 8), genuine(9, 8), genuine(1, 8)]
    assert plan.done


def test_next_requests_only_to_peers_whose_tip_covers_window() -> None:
    plan = make_plan(0, 24, 8)  # windows 17-24, 9-16, 1-8
    tips = {"a": 12, "b": 24, "c": 16, "d": 5}
    requests = dict(plan.next_requests(tips))
    assert requests == {
        "b": RangeRequest(start=17, count=8),
        "c": RangeRequest(start=9, count=8),
        "a": RangeRequest(start=1, count=8),
    }
    for peer, request in requests.items():
        assert tips[peer] >= request.start + request.count - 1


def test_next_requests_leaves_window_no_peer_covers() -> None:
    plan = make_plan(0, 24, 8)
    assert plan.next_requests({"a": 23, "b": 10}) == [
        ("a", RangeRequest(start=9, count=8)),
        ("b", RangeRequest(start=1, count=8)),
    ]
    assert Window(17, 8) not in plan.assigned.values()
    assert plan.next_requests({"c": 24}) == [("c", RangeRequest(start=17, count=8))]


def test_next_requests_never_to_dropped_peers() -> None:
    plan = make_plan(0, 24, 8)
    tips = {"a": 24, "b": 24}
    assert dict(plan.next_requests(tips)) == {
        "a": RangeRequest(start=17, count=8),
        "b": RangeRequest(start=9, count=8),
    }
    plan.on_failure("a")  # timed out
    assert plan.dropped == {"a"}
    assert plan.next_requests(tips) == []  # a's window waits for an idle peer; a is out
    tips["c"] = 24
    assert plan.next_requests(tips) == [("c", RangeRequest(start=17, count=8))]
    for _ in range(3):
        assert all(peer != "a" for peer, _ in plan.next_requests(tips))


def test_next_requests_skips_held_windows() -> None:
    plan = make_plan(0, 16, 8)
    requests = dict(plan.next_requests({"a": 16, "b": 16}))
    assert plan.on_response("b", build_response(requests["b"])) == []  # 1-8 held
    assert plan.next_requests({"a": 16, "b": 16, "c": 16}) == []


# on_response: verification in order.


def test_on_response_verifies_out_of_order_responses_in_order() -> None:
    plan = make_plan(0, 24, 8)
    requests = dict(plan.next_requests({"a": 24, "b": 24, "c": 24}))
    assert [requests[p].start for p in "abc"] == [17, 9, 1]
    assert plan.on_response("c", build_response(requests["c"])) == []  # bottom first: held
    assert plan.on_response("b", build_response(requests["b"])) == []
    assert not plan.done and sorted(plan.held) == [1, 9]
    verified = plan.on_response("a", build_response(requests["a"]))
    assert verified == [genuine(17, 8), genuine(9, 8), genuine(1, 8)]
    assert plan.done and plan.held == {} and plan.assigned == {}
    assert plan.frontier_id == IDS[0]


def test_on_response_verifies_middle_arrival_with_top_then_rest() -> None:
    plan = make_plan(4, 30, 9)  # windows 22-30, 13-21, 5-12
    requests = dict(plan.next_requests({"a": 30, "b": 30, "c": 30}))
    assert plan.on_response("b", build_response(requests["b"])) == []
    assert plan.on_response("a", build_response(requests["a"])) == [
        genuine(22, 9),
        genuine(13, 9),
    ]
    assert not plan.done
    assert plan.on_response("c", build_response(requests["c"])) == [genuine(5, 8)]
    assert plan.done


def test_done_only_after_last_window() -> None:
    plan = make_plan(47, 48, 64)
    [(peer, request)] = plan.next_requests({"a": 48})
    assert request == RangeRequest(start=48, count=1)
    assert not plan.done
    assert plan.on_response(peer, build_response(request)) == [genuine(48, 1)]
    assert plan.done
    assert plan.next_requests({"a": 48, "b": 48}) == []


# on_response: bad ranges.


def test_on_response_tampered_range_names_sender_and_reassigns_window() -> None:
    plan = make_plan(0, 16, 8)
    tips = {"a": 16, "b": 16, "c": 16}
    requests = dict(plan.next_requests(tips))
    with pytest.raises(BadRange) as caught:
        plan.on_response("a", tampered_response(requests["a"], offset=3))
    assert caught.value.peer == "a"
    assert isinstance(caught.value, InvalidInput)
    assert plan.dropped == {"a"} and "a" not in plan.assigned
    assert plan.frontier_id == IDS[16] and len(plan.windows) == 2  # nothing verified
    assert plan.next_requests(tips) == [("c", RangeRequest(start=9, count=8))]
    assert plan.on_response("b", build_response(requests["b"])) == []
    assert plan.on_response("c", build_response(RangeRequest(start=9, count=8))) == [
        genuine(9, 8),
        genuine(1, 8),
    ]
    assert plan.done


@pytest.mark.parametrize("offset", [0, 4, 7])
def test_on_response_held_tampered_range_names_its_sender_not_the_responder(
    offset: int,
) -> None:
    plan = make_plan(0, 24, 8)
    tips = {"a": 24, "b": 24, "c": 24}
    requests = dict(plan.next_requests(tips))  # a: 17-24, b: 9-16, c: 1-8
    assert plan.on_response("c", build_response(requests["c"])) == []
    assert plan.on_response("b", tampered_response(requests["b"], offset)) == []  # held
    with pytest.raises(BadRange) as caught:
        plan.on_response("a", build_response(requests["a"]))  # 9-16 now checkable
    assert caught.value.peer == "b"
    assert plan.dropped == {"b"}
    requests_after = plan.next_requests(tips)
    assert requests_after == [("a", RangeRequest(start=9, count=8))]  # handed to another
    peer, request = requests_after[0]
    assert plan.on_response(peer, build_response(request)) == [genuine(9, 8), genuine(1, 8)]
    assert plan.done


def test_on_response_held_tampered_range_drops_sender_from_its_new_window() -> None:
    plan = make_plan(0, 32, 8)  # 25-32, 17-24, 9-16, 1-8
    tips = {"a": 32, "b": 32, "c": 32}
    requests = dict(plan.next_requests(tips))  # a: 25, b: 17, c: 9
    assert plan.on_response("b", tampered_response(requests["b"])) == []  # held
    assert plan.next_requests(tips) == [("b", RangeRequest(start=1, count=8))]
    with pytest.raises(BadRange) as caught:
        plan.on_response("a", build_response(requests["a"]))
    assert caught.value.peer == "b"
    assert "b" not in plan.assigned and "b" in plan.dropped
    with pytest.raises(BadRange) as late:  # b's answer for 1-8 is no longer wanted
        plan.on_response("b", build_response(RangeRequest(start=1, count=8)))
    assert late.value.peer == "b"
    assert {request.start for _, request in plan.next_requests(tips)} == {17}  # to a


def collect_until_done(plan: SyncPlan, tips: dict[str, int], verified: Verified) -> Verified:
    """Serve every request genuinely until the plan is done; return everything verified."""
    for _ in range(100):
        if plan.done:
            return verified
        requests = plan.next_requests(tips)
        assert requests or plan.assigned, "stalled"
        for peer, request in requests:
            verified = verified + plan.on_response(peer, build_response(request))
    raise AssertionError("the plan never finished")


def test_on_response_keeps_windows_verified_before_a_held_bad_one() -> None:
    plan = make_plan(0, 24, 8)
    tips = {"a": 24, "b": 24, "c": 24}
    requests = dict(plan.next_requests(tips))
    verified: Verified = []
    verified += plan.on_response("c", build_response(requests["c"]))
    verified += plan.on_response("b", tampered_response(requests["b"]))
    try:
        verified += plan.on_response("a", build_response(requests["a"]))
    except BadRange as exc:
        assert exc.peer == "b"
        verified += getattr(exc, "verified", [])  # a fix may hand them over with the error
    verified = collect_until_done(plan, tips, verified)
    assert sorted(verified) == sorted([genuine(17, 8), genuine(9, 8), genuine(1, 8)])


WRONG_SIZES: dict[str, Callable[[RangeRequest], list[Block]]] = {
    "empty": lambda r: [],
    "short": lambda r: get_range(r.start, r.count - 1),
    "long": lambda r: get_range(r.start, r.count + 1),
}


@pytest.mark.parametrize("blocks_of", WRONG_SIZES.values(), ids=WRONG_SIZES.keys())
def test_on_response_wrong_size_raises_bad_range(
    blocks_of: Callable[[RangeRequest], list[Block]],
) -> None:
    plan = make_plan(0, 16, 8)
    tips = {"a": 16, "b": 16, "c": 16}
    requests = dict(plan.next_requests(tips))
    windows_before = list(plan.windows)
    with pytest.raises(BadRange, match="blocks for a range of 8") as caught:
        plan.on_response(
            "a", RangeResponse(start=requests["a"].start, blocks=blocks_of(requests["a"]))
        )
    assert caught.value.peer == "a"
    assert plan.windows == windows_before and plan.held == {}
    assert plan.dropped == {"a"}
    assert plan.next_requests(tips) == [("c", requests["a"])]


def test_on_response_unrequested_range_raises_bad_range() -> None:
    plan = make_plan(0, 16, 8)
    tips = {"a": 16, "b": 16}
    requests = dict(plan.next_requests(tips))
    with pytest.raises(BadRange, match="unrequested") as caught:  # never asked
        plan.on_response("z", build_response(requests["a"]))
    assert caught.value.peer == "z"
    with pytest.raises(BadRange, match="unrequested") as caught:  # asked for another start
        plan.on_response("a", build_response(requests["b"]))
    assert caught.value.peer == "a"
    assert plan.dropped == {"a", "z"} and list(plan.assigned) == ["b"]
    assert plan.held == {} and plan.frontier_id == IDS[16]
    tips["c"] = 16
    assert plan.next_requests(tips) == [("c", requests["a"])]


def test_on_response_after_failure_raises_bad_range() -> None:
    plan = make_plan(0, 16, 8)
    requests = dict(plan.next_requests({"a": 16}))
    plan.on_failure("a")  # timed out
    with pytest.raises(BadRange, match="unrequested") as caught:  # the late answer
        plan.on_response("a", build_response(requests["a"]))
    assert caught.value.peer == "a"
    assert plan.held == {} and len(plan.windows) == 2


def test_on_response_twice_for_one_request_raises_bad_range() -> None:
    plan = make_plan(0, 16, 8)
    requests = dict(plan.next_requests({"a": 16, "b": 16}))
    assert plan.on_response("b", build_response(requests["b"])) == []
    with pytest.raises(BadRange) as caught:
        plan.on_response("b", build_response(requests["b"]))
    assert caught.value.peer == "b"


# ForkDetected.


def test_on_response_fork_detected_when_chain_misses_local_head() -> None:
    sibling_id = bytes(reversed(IDS[10]))  # this node committed something else at height 10
    plan = make_plan(10, 30, 8, local_id=sibling_id)
    requests = dict(plan.next_requests({"a": 30, "b": 30, "c": 30}))
    assert plan.on_response("c", build_response(requests["c"])) == []
    assert plan.on_response("b", build_response(requests["b"])) == []
    with pytest.raises(ForkDetected, match="height 11"):
        plan.on_response("a", build_response(requests["a"]))


def test_on_response_fork_detected_for_single_window() -> None:
    plan = make_plan(5, 6, 64, local_id=IDS[4])
    [(peer, request)] = plan.next_requests({"a": 6})
    with pytest.raises(ForkDetected):
        plan.on_response(peer, build_response(request))
    assert not isinstance(ForkDetected("x"), InvalidInput)  # a safety failure, not a bad peer


# The property: a driver loop with random orders and tampering peers.

MODES = ("header", "heights", "short", "long", "shift", "silent", "sometimes")


@dataclass(frozen=True)
class Scenario:
    window: int
    local_height: int
    target_height: int
    tips: dict[str, int]  # every peer's reported height
    tamperers: dict[str, str]  # peer -> how it misbehaves (MODES)
    choices: list[int] = field(default_factory=list)  # which outstanding answer comes next


@dataclass
class Outcome:
    verified: Verified
    charged: list[str]
    plan: SyncPlan


def serve(scenario: Scenario, peer: str, request: RangeRequest, answered: int) -> RangeResponse:
    """The peer's answer to `request` (its `answered`-th)."""
    mode = scenario.tamperers.get(peer)
    if mode == "sometimes":  # every other answer is good: bad data after good is caught too
        mode = "header" if answered % 2 else None
    start, count = request.start, request.count
    if mode == "header":
        return RangeResponse(
            start=start, blocks=tamper_range(get_range(start, count), start % count)
        )
    if mode == "heights":  # the range one higher, labelled as asked
        return RangeResponse(start=start, blocks=get_range(start + 1, count))
    if mode == "short":
        return RangeResponse(start=start, blocks=get_range(start, count - 1))
    if mode == "long":
        return RangeResponse(start=start, blocks=get_range(start, count + 1))
    if mode == "shift":
        return RangeResponse(start=start + 1, blocks=get_range(start + 1, count))
    return build_response(request)


def drive(scenario: Scenario) -> Outcome:
    plan = make_plan(scenario.local_height, scenario.target_height, scenario.window)
    windows = {(w.start, w.count) for w in plan.windows}
    pending: dict[str, RangeRequest] = {}
    answered = dict.fromkeys(scenario.tips, 0)
    verified: Verified = []
    charged: list[str] = []
    choices = iter(scenario.choices)
    steps_max = (len(windows) + 1) * (len(scenario.tips) + 1) * 4
    for _ in range(steps_max):
        if plan.done:
            return Outcome(verified, charged, plan)
        for peer, request in plan.next_requests(scenario.tips):
            assert peer not in pending, "one outstanding window per peer"
            assert peer not in charged and peer not in plan.dropped
            assert scenario.tips[peer] >= request.start + request.count - 1
            assert (request.start, request.count) in windows
            pending[peer] = request
        assert pending, "stalled: no request outstanding while an honest peer is idle"
        peer = sorted(pending)[next(choices, 0) % len(pending)]
        request = pending.pop(peer)
        if scenario.tamperers.get(peer) == "silent":
            plan.on_failure(peer)  # the syncer's timeout
            charged.append(peer)
            continue
        answered[peer] += 1
        try:
            verified += plan.on_response(peer, serve(scenario, peer, request, answered[peer]))
        except BadRange as exc:
            charged.append(exc.peer)
            pending.pop(exc.peer, None)  # its outstanding request is void
            verified += getattr(exc, "verified", [])  # a fix may hand them over with the error
    raise AssertionError(f"not done after {steps_max} steps: the plan keeps going round")


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    target_height = draw(st.integers(1, TIP_HEIGHT_MAX))
    local_height = draw(st.integers(0, target_height - 1))
    window = draw(st.integers(1, 12))
    peer_count = draw(st.integers(1, 5))
    peers = [f"p{i}" for i in range(peer_count)]
    honest = draw(st.sampled_from(peers))  # at least one honest peer has the whole chain
    tips: dict[str, int] = {}
    tamperers: dict[str, str] = {}
    for peer in peers:
        if peer == honest:
            tips[peer] = target_height
            continue
        tips[peer] = draw(st.integers(local_height, target_height))
        if draw(st.booleans()):
            tamperers[peer] = draw(st.sampled_from(MODES))
    choices = draw(st.lists(st.integers(0, 4), max_size=80))
    return Scenario(window, local_height, target_height, tips, tamperers, choices)


def check_safety(scenario: Scenario, outcome: Outcome) -> None:
    """Everything handed out is genuine, once, top down; only tamperers are charged."""
    plan = outcome.plan
    assert plan.done
    assert plan.frontier_id == IDS[scenario.local_height]
    starts = [start for start, _ in outcome.verified]
    assert starts == sorted(set(starts), reverse=True)
    for start, blocks in outcome.verified:
        assert blocks == get_range(start, len(blocks))
        assert 1 <= len(blocks) <= scenario.window
        assert scenario.local_height < start <= scenario.target_height
    assert set(outcome.charged) <= set(scenario.tamperers)


def check_complete(scenario: Scenario, outcome: Outcome) -> None:
    """Every block from the local head to the target is handed out, each exactly once."""
    blocks = [block for _, window in sorted(outcome.verified) for block in window]
    assert blocks == BLOCKS[scenario.local_height + 1 : scenario.target_height + 1]


# Three peers, the honest top answers last, after a tampered window below it was held.
CASCADE = Scenario(
    window=2,
    local_height=0,
    target_height=6,
    tips={"p0": 6, "p1": 6, "p2": 6},
    tamperers={"p1": "header"},
    choices=[2, 1, 0],
)


@settings(max_examples=150, deadline=None)
@given(scenario=scenarios())
@example(scenario=CASCADE)
def test_sync_plan_driver_hands_out_only_genuine_blocks(scenario: Scenario) -> None:
    outcome = drive(scenario)
    check_safety(scenario, outcome)


@settings(max_examples=150, deadline=None)
@given(scenario=scenarios())
@example(scenario=CASCADE)
def test_sync_plan_driver_hands_out_every_genuine_block(scenario: Scenario) -> None:
    outcome = drive(scenario)
    check_safety(scenario, outcome)
    check_complete(scenario, outcome)


@settings(max_examples=100, deadline=None)
@given(scenario=scenarios())
def test_sync_plan_driver_completes_with_honest_peers(scenario: Scenario) -> None:
    honest = Scenario(
        scenario.window,
        scenario.local_height,
        scenario.target_height,
        scenario.tips,
        tamperers={},
        choices=scenario.choices,
    )
    outcome = drive(honest)
    check_safety(honest, outcome)
    check_complete(honest, outcome)
    assert outcome.charged == []
