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
ones) and their behaviours are drawn last, so the rest of the plan is the same as without;
whether a Byzantine node also runs a `twin` instance is drawn after that from a side RNG
(`fork_rng`), which leaves the run's RNG untouched, so a seed that draws no twin runs as it did
before the behaviour existed.
Half the restarts are "blinks" of at most 100 ms, which bring a node back inside the round it
left, where forgotten safety data would bite.

A plan can also be given explicitly (`FaultPlan.from_json`, a scenario file, the shrinker):
`validate_plan` then refuses what the engine cannot run as written, above all a fault outside
the faulty phase. The runner still draws the seed's own plan first, so every later draw of the
run (latencies, message faults, ...) comes from the same RNG state as in the seed's run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Final

from taihang.errors import ConfigurationError
from taihang.sim.byzantine import BEHAVIOURS, TWIN, draw_byzantine, draw_twins, fork_rng


class InvalidPlan(ConfigurationError):
    """An explicit fault plan or Twins scenario (a scenario file's) the engine cannot run."""

    code = "invalid_plan"


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
# The keys of `FaultPlan.to_json`; "byzantine" is there only with Byzantine nodes.
PLAN_KEYS: Final = (
    "nodes",
    "latency_ms_max",
    "drop",
    "duplicate",
    "reorder",
    "partitions",
    "crashes",
    "faulty_ms",
    "txs_waiting",
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
    def twinned_nodes(self) -> tuple[int, ...]:
        """Byzantine nodes that run a second instance with their key (`twin`), in order."""
        return tuple(node for node, kinds in self.byzantine if TWIN in kinds)

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

    @classmethod
    def from_json(cls, data: Any) -> FaultPlan:
        """The plan `to_json` wrote; `InvalidPlan` for anything else (`validate_plan`)."""
        if not isinstance(data, dict):
            raise InvalidPlan(f"a plan is a JSON object, not {type(data).__name__}")
        unknown = sorted(set(data) - set(PLAN_KEYS) - {"byzantine"})
        missing = sorted(set(PLAN_KEYS) - set(data))
        if unknown or missing:
            raise InvalidPlan(f"plan keys: unknown {unknown}, missing {missing}")
        plan = cls(
            nodes=read_int(data["nodes"], "nodes"),
            latency_ms_max=read_int(data["latency_ms_max"], "latency_ms_max"),
            drop=_read_probability(data["drop"], "drop"),
            duplicate=_read_probability(data["duplicate"], "duplicate"),
            reorder=_read_probability(data["reorder"], "reorder"),
            partitions=tuple(
                _read_partition(p) for p in read_list(data["partitions"], "partitions")
            ),
            crashes=tuple(_read_crash(c) for c in read_list(data["crashes"], "crashes")),
            faulty_ms=read_int(data["faulty_ms"], "faulty_ms"),
            txs_waiting=tuple(
                read_int(t, "txs_waiting") for t in read_list(data["txs_waiting"], "txs_waiting")
            ),
            byzantine=tuple(
                _read_byzantine(b) for b in read_list(data.get("byzantine", []), "byzantine")
            ),
        )
        validate_plan(plan)
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
    if chosen:  # from a side RNG: the run's own draws stay those of a seed without twins
        chosen = draw_twins(fork_rng(rng, b"taihang-sim-twin"), chosen)
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


# --- explicit plans (scenario files, shrinking) ---------------------------------------------
def validate_plan(plan: FaultPlan) -> None:
    """Refuse a plan the engine would run wrongly: faults outside the faulty phase (a crash
    after healing would schedule its restart in the past), unknown nodes or behaviours, or
    more Byzantine plus wiped nodes than f."""
    n = plan.nodes
    if n < 4:
        raise InvalidPlan(f"nodes = {n}: n = 3f + 1 needs at least 4")
    if plan.latency_ms_max < 1 or plan.faulty_ms < 1:
        raise InvalidPlan("latency_ms_max and faulty_ms must be at least 1 ms")
    if len(plan.txs_waiting) != n or min(plan.txs_waiting) < 0:
        raise InvalidPlan(f"txs_waiting needs {n} counts >= 0, one per node")
    for p in plan.partitions:
        sides = set(p.side_a) | set(p.side_b)
        if not p.side_a or not p.side_b or set(p.side_a) & set(p.side_b) or max(sides) >= n:
            raise InvalidPlan(f"partition {p}: two disjoint, non-empty sides of nodes 0..{n - 1}")
        if not 0 <= p.start_ms < p.end_ms <= plan.faulty_ms:
            raise InvalidPlan(f"partition {p}: needs 0 <= start < end <= {plan.faulty_ms}")
    for c in plan.crashes:
        if not 0 <= c.node < n or not 0 <= c.at_ms < plan.faulty_ms or c.down_ms < 1:
            raise InvalidPlan(
                f"crash {c}: needs a node 0..{n - 1}, 0 <= at < {plan.faulty_ms}, down >= 1"
            )
        if c.wipe and c.mid_step:
            raise InvalidPlan(f"crash {c}: a wipe strikes at an event boundary, not mid-step")
    _validate_byzantine(plan)


def _validate_byzantine(plan: FaultPlan) -> None:
    nodes = [node for node, _ in plan.byzantine]
    if len(set(nodes)) != len(nodes) or any(not 0 <= node < plan.nodes for node in nodes):
        raise InvalidPlan(f"byzantine nodes {nodes}: distinct nodes 0..{plan.nodes - 1}")
    for node, kinds in plan.byzantine:
        unknown = sorted(set(kinds) - set(BEHAVIOURS))
        if unknown:
            raise InvalidPlan(f"node {node}: unknown behaviours {unknown}; known: {BEHAVIOURS}")
    if set(nodes) & set(plan.wiped_nodes):
        raise InvalidPlan("a wiped node cannot also be Byzantine")
    if len(nodes) + len(plan.wiped_nodes) > (plan.nodes - 1) // 3:
        raise InvalidPlan(f"Byzantine plus wiped nodes exceed f = {(plan.nodes - 1) // 3}")


# JSON readers for explicit plans and Twins scenarios: each names the field it refuses.
def read_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPlan(f"{name}: expected an integer, got {value!r}")
    return value


def read_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidPlan(f"{name}: expected true or false, got {value!r}")
    return value


def _read_probability(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidPlan(f"{name}: expected a probability in [0, 1], got {value!r}")
    return float(value)


def read_list(value: Any, name: str, length: int | None = None) -> list[Any]:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        expected = "a list" if length is None else f"a list of {length}"
        raise InvalidPlan(f"{name}: expected {expected}, got {value!r}")
    return value


def _read_partition(value: Any) -> Partition:
    start_ms, end_ms, side_a, side_b, one_way = read_list(value, "partition", 5)
    return Partition(
        start_ms=read_int(start_ms, "partition start_ms"),
        end_ms=read_int(end_ms, "partition end_ms"),
        side_a=tuple(read_int(i, "partition side") for i in read_list(side_a, "side_a")),
        side_b=tuple(read_int(i, "partition side") for i in read_list(side_b, "side_b")),
        one_way=read_bool(one_way, "partition one_way"),
    )


def _read_crash(value: Any) -> Crash:
    node, at_ms, down_ms, mid_step, wipe = read_list(value, "crash", 5)
    return Crash(
        node=read_int(node, "crash node"),
        at_ms=read_int(at_ms, "crash at_ms"),
        down_ms=read_int(down_ms, "crash down_ms"),
        mid_step=read_bool(mid_step, "crash mid_step"),
        wipe=read_bool(wipe, "crash wipe"),
    )


def _read_byzantine(value: Any) -> tuple[int, tuple[str, ...]]:
    node, kinds = read_list(value, "byzantine entry", 2)
    behaviours = read_list(kinds, "behaviours")
    if not all(isinstance(kind, str) for kind in behaviours):
        raise InvalidPlan(f"behaviours: expected names, got {behaviours!r}")
    return read_int(node, "byzantine node"), tuple(behaviours)
