"""The fault plan: every fault a run will inject, drawn from the run's seed before it starts.

Theory of operation: `generate_plan` makes all of its draws from the run's single
`random.Random(seed)` in a fixed order, before the first event, so a plan depends only on the
seed and the flags. `--without KIND` masks a kind *after* the draws: the rest of the plan
(partition windows, crash times) stays exactly the same, which is what shrinking a failing seed
by hand needs. Faults happen only in the faulty phase `[0, faulty_ms)`; at `faulty_ms` the
network heals (no drops, duplicates, spikes or partitions; latency stays) and every node that
is down restarts.

Ranges (consensus spec, test plan layer 1): one-way latency U[1, L] with L in {5, 20, 80} ms;
drop in {0, 1, 5, 20}%; duplicate in {0, 2, 10}%; reorder spikes (+0..200 ms) in {0, 5, 20}%;
0-3 partitions of 0.1-3 s, symmetric or one-way; 0-4 crash/restarts with disk, at an event
boundary or between two actions of one step; and, in 30% of seeds, crashes that wipe the disk
of 1 to f - byzantine nodes (f = (n-1)//3; such a node may not sign again: amnesia is
Byzantine, so it counts against f). With `byzantine > 0`, the Byzantine nodes (never wiped
ones) and their behaviours are drawn last, so the rest of the plan is the same as without.
Half the restarts are "blinks" of at most 100 ms, which bring a node back inside the round it
left, where forgotten safety data would bite.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Final

from taihang.sim.byzantine import BEHAVIOURS, draw_byzantine

NODES_CHOICES: Final = (4, 4, 7)
LATENCY_MS_MAX_CHOICES: Final = (5, 20, 80)
DROP_CHOICES: Final = (0.0, 0.01, 0.05, 0.20)
DUPLICATE_CHOICES: Final = (0.0, 0.02, 0.10)
REORDER_CHOICES: Final = (0.0, 0.05, 0.20)
REORDER_SPIKE_MS_MAX: Final = 200
PARTITIONS_MAX: Final = 3
PARTITION_MS_MIN: Final = 100
PARTITION_MS_MAX: Final = 3_000
CRASHES_MAX: Final = 4
DOWN_MS_MIN: Final = 10
DOWN_MS_MAX: Final = 2_000
BLINK_PROBABILITY: Final = 0.5
BLINK_MS_MAX: Final = 100
WIPE_PROBABILITY: Final = 0.3
MID_STEP_PROBABILITY: Final = 0.5
TXS_WAITING_CHOICES: Final = (0, 0, 20, 100)  # a node's initial backlog of transactions
TXS_PER_BLOCK: Final = 5

# Every fault kind the summary counts. Message faults count messages; partitions count
# windows (and `partition_cut` the messages they cut); node faults count events that happened.
FAULT_KINDS: Final = (
    "drop",
    "duplicate",
    "reorder",
    "partition",
    "one_way_partition",
    "partition_cut",
    "crash",
    "crash_mid_step",
    "wipe",
)
# What `--without` accepts: the plan-level kinds a person can switch off while shrinking.
MASKABLE_KINDS: Final = (
    "drop",
    "duplicate",
    "reorder",
    "partition",
    "one_way_partition",
    "crash",
    "crash_mid_step",
    "wipe",
    *BEHAVIOURS,  # a masked behaviour leaves its node Byzantine (unjudged) but quieter
)


@dataclass(frozen=True, slots=True)
class Partition:
    """Links from `side_a` to `side_b` (and back, unless `one_way`) cut in [start, end)."""

    start_ms: int
    end_ms: int
    side_a: tuple[int, ...]
    side_b: tuple[int, ...]
    one_way: bool

    def compute_cut_links(self, nodes: int) -> frozenset[int]:
        """Cut links encoded as `src * nodes + dst`: cheap to test, never iterated."""
        cut = {a * nodes + b for a in self.side_a for b in self.side_b}
        if not self.one_way:
            cut |= {b * nodes + a for a in self.side_a for b in self.side_b}
        return frozenset(cut)


@dataclass(frozen=True, slots=True)
class Crash:
    node: int
    at_ms: int
    down_ms: int
    mid_step: bool  # crash between two actions of the node's next step, not at a boundary
    wipe: bool  # the disk is lost: the node restarts from genesis and may not sign


@dataclass(frozen=True, slots=True)
class FaultPlan:
    nodes: int
    latency_ms_max: int
    drop: float
    duplicate: float
    reorder: float
    partitions: tuple[Partition, ...]
    crashes: tuple[Crash, ...]
    faulty_ms: int
    txs_waiting: tuple[int, ...]  # per node: transactions its payload source starts with
    # (node, its behaviours) per Byzantine node; empty unless `--byzantine K` with K > 0
    byzantine: tuple[tuple[int, tuple[str, ...]], ...] = ()

    @property
    def byzantine_nodes(self) -> frozenset[int]:
        return frozenset(node for node, _ in self.byzantine)

    @property
    def wiped_nodes(self) -> tuple[int, ...]:
        return tuple(sorted({c.node for c in self.crashes if c.wipe}))

    def to_json(self) -> dict[str, Any]:
        plan = {
            "nodes": self.nodes,
            "latency_ms_max": self.latency_ms_max,
            "drop": self.drop,
            "duplicate": self.duplicate,
            "reorder": self.reorder,
            "partitions": [
                [p.start_ms, p.end_ms, list(p.side_a), list(p.side_b), p.one_way]
                for p in self.partitions
            ],
            "crashes": [[c.node, c.at_ms, c.down_ms, c.mid_step, c.wipe] for c in self.crashes],
            "faulty_ms": self.faulty_ms,
            "txs_waiting": list(self.txs_waiting),
        }
        if self.byzantine:  # absent without Byzantine nodes: honest traces stay as they were
            plan["byzantine"] = [[node, list(kinds)] for node, kinds in self.byzantine]
        return plan


def generate_plan(
    rng: random.Random,
    *,
    nodes: int | None,
    byzantine: int,
    faulty_ms: int,
    without: frozenset[str] = frozenset(),
) -> FaultPlan:
    """Draw a plan; `nodes=None` draws n from {4, 4, 7}. Wipes stay within f - byzantine."""
    unknown = sorted(without - set(MASKABLE_KINDS))
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(MASKABLE_KINDS)}")
    if byzantine < 0:
        raise ValueError("byzantine must be >= 0")
    drawn_nodes = rng.choice(NODES_CHOICES)  # drawn even when pinned, so pinning the n a seed
    n = drawn_nodes if nodes is None else nodes  # drew replays that seed's plan exactly
    if byzantine > (n - 1) // 3:
        raise ValueError(f"{byzantine} Byzantine nodes exceed f = {(n - 1) // 3} at n = {n}")
    latency_ms_max = rng.choice(LATENCY_MS_MAX_CHOICES)
    drop = rng.choice(DROP_CHOICES)
    duplicate = rng.choice(DUPLICATE_CHOICES)
    reorder = rng.choice(REORDER_CHOICES)
    partitions = [_draw_partition(rng, n, faulty_ms) for _ in range(rng.randint(0, PARTITIONS_MAX))]
    crashes = [_draw_crash(rng, n, faulty_ms) for _ in range(rng.randint(0, CRASHES_MAX))]
    wipe_budget = max(0, (n - 1) // 3 - byzantine)
    if wipe_budget and rng.random() < WIPE_PROBABILITY:
        for wiped in sorted(rng.sample(range(n), rng.randint(1, wipe_budget))):
            crashes.append(
                Crash(
                    node=wiped,
                    at_ms=rng.randrange(faulty_ms),
                    down_ms=_draw_down_ms(rng),
                    mid_step=False,  # a lost disk loses the step's writes too: no mid-step
                    wipe=True,
                )
            )
    txs_waiting = tuple(rng.choice(TXS_WAITING_CHOICES) for _ in range(n))
    wiped_nodes = tuple(sorted({c.node for c in crashes if c.wipe}))
    chosen = draw_byzantine(rng, n, byzantine, wiped_nodes) if byzantine else ()  # drawn last
    chosen = tuple((node, tuple(k for k in kinds if k not in without)) for node, kinds in chosen)
    return FaultPlan(
        nodes=n,
        latency_ms_max=latency_ms_max,
        drop=0.0 if "drop" in without else drop,
        duplicate=0.0 if "duplicate" in without else duplicate,
        reorder=0.0 if "reorder" in without else reorder,
        partitions=tuple(p for p in partitions if not _is_masked_partition(p, without)),
        crashes=tuple(_mask_crash(c, without) for c in crashes if not _is_masked_crash(c, without)),
        faulty_ms=faulty_ms,
        txs_waiting=txs_waiting,
        byzantine=chosen,
    )


def _draw_partition(rng: random.Random, nodes: int, faulty_ms: int) -> Partition:
    start_ms = rng.randrange(faulty_ms)
    duration_ms = rng.randint(PARTITION_MS_MIN, PARTITION_MS_MAX)
    side_a = tuple(sorted(rng.sample(range(nodes), rng.randint(1, nodes - 1))))
    side_b = tuple(i for i in range(nodes) if i not in side_a)
    return Partition(
        start_ms=start_ms,
        end_ms=min(start_ms + duration_ms, faulty_ms),  # healing ends every partition
        side_a=side_a,
        side_b=side_b,
        one_way=rng.random() < 0.5,
    )


def _draw_crash(rng: random.Random, nodes: int, faulty_ms: int) -> Crash:
    return Crash(
        node=rng.randrange(nodes),
        at_ms=rng.randrange(faulty_ms),
        down_ms=_draw_down_ms(rng),
        mid_step=rng.random() < MID_STEP_PROBABILITY,
        wipe=False,
    )


def _draw_down_ms(rng: random.Random) -> int:
    """Half the restarts are blinks: back within the same round, the riskiest moment."""
    if rng.random() < BLINK_PROBABILITY:
        return rng.randint(DOWN_MS_MIN, BLINK_MS_MAX)
    return rng.randint(BLINK_MS_MAX, DOWN_MS_MAX)


def _is_masked_partition(partition: Partition, without: frozenset[str]) -> bool:
    return ("one_way_partition" if partition.one_way else "partition") in without


def _is_masked_crash(crash: Crash, without: frozenset[str]) -> bool:
    return ("wipe" if crash.wipe else "crash") in without


def _mask_crash(crash: Crash, without: frozenset[str]) -> Crash:
    if crash.mid_step and "crash_mid_step" in without:
        return Crash(crash.node, crash.at_ms, crash.down_ms, mid_step=False, wipe=crash.wipe)
    return crash
