"""The pacemaker: rounds, round timers and the proposal rhythm (consensus spec, "Pacemaker").

Theory of operation: the round is `max(highest_qc.round, highest_tc.round) + 1`; the core
calls `enter` only when a verified QC or TC raised that maximum, so rounds never move on a
number read from a message alone (FISCO#2211). Entering a round cancels the previous round's
timers and arms two kinds, by `TimerId`:

* `("round", r)`: the round timer, `base * backoff ** min(max(0, r - committed_round - 3),
  exponent_max)` ms, times `leader_timeout_multiplier` on the round's leader. The backoff
  grows while rounds pass without commits, so the timers of nodes that drifted apart meet
  again after a partition, and it is capped so a healed network recovers quickly. On expiry
  the core signs (or re-sends) its timeout and re-arms the same duration.
* `("propose", r)`, on the leader only: wakes it to propose. With transactions waiting (or an
  uncommitted block with transactions to push through its 2-chain) it proposes once
  `min_block_interval_ms` has passed since the round began; otherwise it checks again every
  `min_block_interval_ms` until `idle_block_interval_ms` has passed and then proposes an empty
  block. A leader proposes exactly once per round (`proposed`).
* `("vote", r)`, armed by the core itself: a proposal whose timestamp is beyond this node's
  clock plus `max_clock_drift_ms` is voted for once the clock gets there (within the round).

The arithmetic is exact (`Fraction`), so every node and every run arms the same deadlines.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Final

from taihang.consensus.config import ConsensusConfig
from taihang.consensus.events import Action, CancelTimer, SetTimer, TimerId
from taihang.consensus.leader import LeaderElection

ROUND_TIMER: Final = "round"
PROPOSE_TIMER: Final = "propose"
VOTE_TIMER: Final = "vote"  # re-check a vote held until the local clock reaches a timestamp
# Rounds after the last commit before the round timer starts to back off: a healthy pipeline
# runs 2-3 rounds ahead of its last commit (commit of h happens in round h + 2).
BACKOFF_GRACE_ROUNDS: Final = 3


def compute_round_timeout_ms(
    config: ConsensusConfig, round: int, committed_round: int, *, is_leader: bool
) -> int:
    exponent = min(
        max(0, round - committed_round - BACKOFF_GRACE_ROUNDS),
        config.round_timeout_backoff_exponent_max,
    )
    backoff = Fraction(config.round_timeout_backoff) ** exponent
    timeout_ms = int(config.round_timeout_base_ms * backoff)
    if is_leader:
        timeout_ms *= config.leader_timeout_multiplier
    return timeout_ms


def compute_round_timeout_max_ms(config: ConsensusConfig) -> int:
    """The longest round timer the pacemaker ever arms (backoff at its cap, on a leader)."""
    return compute_round_timeout_ms(
        config, config.round_timeout_backoff_exponent_max + BACKOFF_GRACE_ROUNDS, 0, is_leader=True
    )


class Pacemaker:
    """The current round, when it began, and its timers."""

    __slots__ = ("_armed", "config", "leader", "me", "proposed", "round", "started_ms", "timed_out")

    def __init__(self, config: ConsensusConfig, leader: LeaderElection, me: str | None) -> None:
        self.config = config
        self.leader = leader
        self.me = me  # None: an observer, which arms no timers
        self.round = 0
        self.started_ms = 0
        self.proposed = False
        self.timed_out = False
        self._armed: list[TimerId] = []

    def is_leader(self, round: int) -> bool:
        return self.me is not None and self.leader.leader(round) == self.me

    def enter(self, round: int, now_ms: int, committed_round: int) -> list[Action]:
        """Move to `round` (> the current one): cancel old timers, arm the new ones."""
        assert round > self.round, f"rounds only go up ({self.round} -> {round})"
        actions: list[Action] = [CancelTimer(timer) for timer in self._armed]
        self._armed = []
        self.round = round
        self.started_ms = now_ms
        self.proposed = False
        self.timed_out = False
        if self.me is None:
            return actions
        actions.append(self.arm_round_timer(now_ms, committed_round))
        if self.is_leader(round):
            timer = (PROPOSE_TIMER, round)
            self._armed.append(timer)
            actions.append(SetTimer(timer, now_ms + self.config.min_block_interval_ms))
        return actions

    def arm_round_timer(self, now_ms: int, committed_round: int) -> SetTimer:
        """(Re-)arm the current round's timer for its full duration from `now_ms`."""
        timer = (ROUND_TIMER, self.round)
        if timer not in self._armed:
            self._armed.append(timer)
        timeout_ms = compute_round_timeout_ms(
            self.config, self.round, committed_round, is_leader=self.is_leader(self.round)
        )
        return SetTimer(timer, now_ms + timeout_ms)

    def is_proposal_due(self, now_ms: int, urgent: bool) -> bool:
        """Whether the leader should propose now (`urgent`: there is something to commit)."""
        waited_ms = now_ms - self.started_ms
        if urgent:
            return waited_ms >= self.config.min_block_interval_ms
        return waited_ms >= self.config.idle_block_interval_ms

    def rearm_propose_timer(self, now_ms: int) -> SetTimer:
        """Check again after another `min_block_interval_ms`, or at the idle deadline."""
        idle_at_ms = self.started_ms + self.config.idle_block_interval_ms
        at_ms = min(now_ms + self.config.min_block_interval_ms, max(idle_at_ms, now_ms + 1))
        return SetTimer((PROPOSE_TIMER, self.round), at_ms)
