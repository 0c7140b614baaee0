"""Twins mode: a twinned validator runs two cores with one key and identity (consensus spec,
"Test plan" -> `twins`; the Twins paper by Bano et al.).

Theory of operation
-------------------
* **Scenarios are data.** `generate_scenario` draws, from the run's single RNG, which
  validators are twinned (1 at n = 4, 2 at n = 7), then per scenario round a leader (50% a
  twinned validator) and a partition of the *instances* into at most 3 groups, one of which
  holds instances of a quorum of distinct validators. Instances `0..n-1` are the validators;
  instance `n + k` is the second core of `twinned[k]`. `Scenario.to_json` is what the trace's
  second line records.
* **Rounds.** Scenario round `r` is consensus round `r`: a proposal, vote or timeout of round
  `r` in `1..R` crosses only within a group of round `r`'s partition (`TwinsNetwork`, a
  partition table per round; nothing else is dropped); block sync messages go by the sender's
  current round; messages of later rounds cross freely. The cores' `LeaderElection` follows the
  scenario: `leader(r)` is round `r`'s scenario leader for `r` in `1..R`, round robin after.
  At `R * round_ms` the network heals (one group, whatever round the cores are in) and the
  engine's healed phase runs: each honest node's first commit after healing must be within
  `LIVENESS_ROUNDS` rounds, and every honest node must commit `LIVENESS_COMMITS_MIN` blocks.
* **Judging.** Both instances of a twinned validator are Byzantine: never judged (their
  commits and signed messages are not checked). Honest nodes are judged as in random mode.
* **Reuse.** `TwinsSimulation` is the random-mode engine given the twinned validators (it adds
  their instances and fans sends out to them, as for the random mode's `twin` behaviour), with
  the network swapped; `TwinsBinding` is the `InstanceBinding` with the scenario's leaders.
* **Explicit scenarios.** `run_twins_seed` may be handed a scenario (`Scenario.from_json`, a
  scenario file, the shrinker): the seed's scenario is still drawn first, so the run's later
  draws start from the same RNG state. A binding other than the production one (a test
  mutant) must subclass `JolteonBinding`; it is mixed under `TwinsBinding`.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from taihang.consensus.events import Commit
from taihang.consensus.leader import LeaderElection, RoundRobin
from taihang.consensus.messages import (
    ConsensusMessage,
    Proposal,
    TimeoutMsg,
    Vote,
)
from taihang.sim.checkers import Violation
from taihang.sim.cluster import (
    Cluster,
    build_cluster,
    compute_healed_ms,
    get_sim_suite,
)
from taihang.sim.engine import Simulation
from taihang.sim.jolteon import InstanceBinding, mix_binding
from taihang.sim.node import SimNode
from taihang.sim.plan import (
    LATENCY_MS_MAX_CHOICES,
    TXS_WAITING_CHOICES,
    FaultPlan,
    InvalidPlan,
    read_int,
    read_list,
)
from taihang.sim.runner import SeedResult, SimOptions, build_seed_result, open_trace
from taihang.sim.trace import TraceSink

TWINS_NODES: Final = (4, 7)
SCENARIO_ROUNDS: Final = 7
ROUND_MS: Final = 500  # the scenario phase lasts ROUND_MS per scenario round, then heals
GROUPS_MAX: Final = 3
TWIN_LEADER_PROBABILITY: Final = 0.5
LIVENESS_ROUNDS: Final = 10  # after healing, every honest node commits within this many rounds


@dataclass(frozen=True, slots=True)
class ScenarioRound:
    leader: int  # a validator index
    groups: tuple[tuple[int, ...], ...]  # instances; messages cross only within a group


@dataclass(frozen=True, slots=True)
class Scenario:
    nodes: int
    twinned: tuple[int, ...]  # validators that run two instances
    rounds: tuple[ScenarioRound, ...]
    round_ms: int
    latency_ms_max: int
    txs_waiting: tuple[int, ...]  # per validator (both instances of a twin share it)

    @property
    def instances(self) -> tuple[int, ...]:
        """The validator each instance runs as."""
        return tuple(range(self.nodes)) + self.twinned

    @property
    def scenario_ms(self) -> int:
        return self.round_ms * len(self.rounds)

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "twinned": list(self.twinned),
            "instances": list(self.instances),
            "round_ms": self.round_ms,
            "latency_ms_max": self.latency_ms_max,
            "txs_waiting": list(self.txs_waiting),
            "rounds": [
                {"leader": r.leader, "groups": [list(g) for g in r.groups]} for r in self.rounds
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> Scenario:
        """The scenario `to_json` wrote; `InvalidPlan` for anything else (`validate_scenario`)."""
        keys = {"nodes", "twinned", "instances", "round_ms", "latency_ms_max", "txs_waiting"}
        if not isinstance(data, dict) or set(data) != keys | {"rounds"}:
            raise InvalidPlan(f"a Twins scenario is an object with the keys {sorted(keys)}, rounds")
        scenario = cls(
            nodes=read_int(data["nodes"], "nodes"),
            twinned=tuple(read_int(v, "twinned") for v in read_list(data["twinned"], "twinned")),
            rounds=tuple(_read_round(r) for r in read_list(data["rounds"], "rounds")),
            round_ms=read_int(data["round_ms"], "round_ms"),
            latency_ms_max=read_int(data["latency_ms_max"], "latency_ms_max"),
            txs_waiting=tuple(
                read_int(t, "txs_waiting") for t in read_list(data["txs_waiting"], "txs_waiting")
            ),
        )
        if data["instances"] != list(scenario.instances):
            raise InvalidPlan(f"instances: expected {list(scenario.instances)}")
        validate_scenario(scenario)
        return scenario


def _read_round(value: Any) -> ScenarioRound:
    if not isinstance(value, dict) or set(value) != {"leader", "groups"}:
        raise InvalidPlan(f"a scenario round is an object with a leader and groups: {value!r}")
    groups = read_list(value["groups"], "groups")
    return ScenarioRound(
        leader=read_int(value["leader"], "leader"),
        groups=tuple(tuple(read_int(i, "group") for i in read_list(g, "group")) for g in groups),
    )


def validate_scenario(scenario: Scenario) -> None:
    """Refuse a scenario the engine would run wrongly: every round's groups must split the
    instances exactly, its leader must be a validator, and twins are f validators."""
    n = scenario.nodes
    if n not in TWINS_NODES:
        raise InvalidPlan(f"nodes = {n}: twins mode runs n in {TWINS_NODES}")
    twinned = scenario.twinned
    if len(set(twinned)) != (n - 1) // 3 or any(not 0 <= v < n for v in twinned):
        raise InvalidPlan(f"twinned {list(twinned)}: {(n - 1) // 3} distinct validators of {n}")
    if scenario.round_ms < 1 or scenario.latency_ms_max < 1 or not scenario.rounds:
        raise InvalidPlan("round_ms and latency_ms_max must be >= 1, with at least one round")
    if len(scenario.txs_waiting) != n or min(scenario.txs_waiting) < 0:
        raise InvalidPlan(f"txs_waiting needs {n} counts >= 0, one per validator")
    instances = list(range(len(scenario.instances)))
    for index, round_ in enumerate(scenario.rounds, start=1):
        if not 0 <= round_.leader < n:
            raise InvalidPlan(f"round {index}: leader {round_.leader} is not a validator")
        members = sorted(i for group in round_.groups for i in group)
        if members != instances or not all(round_.groups):
            raise InvalidPlan(f"round {index}: groups must split the instances {instances}")


def compute_quorum(nodes: int) -> int:
    return 2 * nodes // 3 + 1


@lru_cache(maxsize=16)
def list_partitions(instances: tuple[int, ...]) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """Every partition of the instances into <= 3 groups with a quorum group, in a fixed order.

    `instances[i]` is the validator instance `i` runs as; a group's quorum counts distinct
    validators (two instances of one twin count once).
    """
    count = len(instances)
    quorum = compute_quorum(len(set(instances)))
    found: set[tuple[tuple[int, ...], ...]] = set()
    for labels in itertools.product(range(GROUPS_MAX), repeat=count):
        groups = [tuple(i for i in range(count) if labels[i] == g) for g in range(GROUPS_MAX)]
        groups = [g for g in groups if g]
        if any(len({instances[i] for i in g}) >= quorum for g in groups):
            found.add(tuple(sorted(groups)))
    return tuple(sorted(found))


def generate_scenario(rng: random.Random, nodes: int) -> Scenario:
    """Draw a scenario (all draws from `rng`, in a fixed order)."""
    assert nodes in TWINS_NODES, f"twins mode runs n in {TWINS_NODES}"
    twins = (nodes - 1) // 3
    twinned = tuple(sorted(rng.sample(range(nodes), twins)))
    others = [v for v in range(nodes) if v not in twinned]
    latency_ms_max = rng.choice(LATENCY_MS_MAX_CHOICES)
    txs_waiting = tuple(rng.choice(TXS_WAITING_CHOICES) for _ in range(nodes))
    partitions = list_partitions(tuple(range(nodes)) + twinned)
    rounds = []
    for _ in range(SCENARIO_ROUNDS):
        pool = twinned if rng.random() < TWIN_LEADER_PROBABILITY else others
        leader = rng.choice(pool)
        rounds.append(ScenarioRound(leader, rng.choice(partitions)))
    return Scenario(nodes, twinned, tuple(rounds), ROUND_MS, latency_ms_max, txs_waiting)


def build_twins_plan(scenario: Scenario) -> FaultPlan:
    """The engine's plan for a Twins run: no random faults, heal after the scenario."""
    return FaultPlan(
        nodes=scenario.nodes,
        latency_ms_max=scenario.latency_ms_max,
        drop=0.0,
        duplicate=0.0,
        reorder=0.0,
        partitions=(),
        crashes=(),
        faulty_ms=scenario.scenario_ms,
        txs_waiting=scenario.txs_waiting,
    )


class ScenarioLeader:
    """`LeaderElection` that follows the scenario's leaders for rounds 1..R, then round robin."""

    __slots__ = ("_fallback", "_leaders")

    def __init__(self, cluster: Cluster, scenario: Scenario) -> None:
        self._leaders = tuple(cluster.address(r.leader) for r in scenario.rounds)
        self._fallback = RoundRobin(cluster.validators)

    def leader(self, round: int) -> str:
        if 1 <= round <= len(self._leaders):
            return self._leaders[round - 1]
        return self._fallback.leader(round)


class TwinsBinding(InstanceBinding):
    """The Jolteon binding with instance -> validator mapping and the scenario's leaders."""

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario.instances)
        self.scenario = scenario

    def build_leader(self, cluster: Cluster) -> LeaderElection | None:
        return ScenarioLeader(cluster, self.scenario)


class TwinsNetwork:
    """A message of consensus round r in 1..R crosses only within a group of scenario round r;
    other messages, and all after healing, cross freely."""

    __slots__ = ("_group_of", "_latency_ms_max", "_rng", "counts", "healed", "scenario_index")

    def __init__(self, scenario: Scenario, rng: random.Random, counts: dict[str, int]) -> None:
        self._group_of = [
            {i: g for g, group in enumerate(r.groups) for i in group} for r in scenario.rounds
        ]
        self._latency_ms_max = scenario.latency_ms_max
        self._rng = rng
        self.counts = counts
        self.healed = False
        self.scenario_index: int | None = None

    def heal(self) -> None:
        self.healed = True

    def route(self, elapsed_ms: int, src: int, dst: int) -> list[int]:
        """Route a message of scenario round `self.scenario_index` (None: unpartitioned)."""
        if src == dst:
            return [0]
        index = self.scenario_index
        if not self.healed and index is not None:
            group_of = self._group_of[index]
            if group_of[src] != group_of[dst]:
                self.counts["partition_cut"] += 1
                return []
        return [self._rng.randint(1, self._latency_ms_max)]


def find_message_round(message: ConsensusMessage) -> int | None:
    """The consensus round a message belongs to; None for block sync messages."""
    if isinstance(message, Proposal):
        return message.block.header.round
    if isinstance(message, Vote):
        return message.vote_data.round
    if isinstance(message, TimeoutMsg):
        return message.timeout.round
    return None


class TwinsSimulation(Simulation):
    """The random-mode engine with n + t instances; twin instances are never judged."""

    def __init__(self, *, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(twinned=scenario.twinned, **kwargs)  # the engine adds the instances
        assert self.instances == scenario.instances
        self.twins_network = TwinsNetwork(scenario, self.rng, self.counts)
        self.network = self.twins_network  # type: ignore[assignment]
        self.scenario_rounds = len(scenario.rounds)
        self.heal_round = 0  # the highest round of an honest core when the network healed
        self.committed_after_heal: set[int] = set()
        self.counts["twin_leader_round"] = sum(
            r.leader in scenario.twinned for r in scenario.rounds
        )

    def _heal(self) -> None:
        self.heal_round = max(
            (getattr(n.core, "round", 0) for n in self.live_nodes if n.core is not None), default=0
        )
        super()._heal()

    def _commit(self, node: SimNode, action: Commit) -> None:
        """Twins liveness: an honest node's first commit after healing is within 10 rounds."""
        if self.healed and self.honest[node.index] and node.index not in self.committed_after_heal:
            self.committed_after_heal.add(node.index)
            committed_round = action.blocks[-1].header.round if action.blocks else 0
            if committed_round > self.heal_round + LIVENESS_ROUNDS:
                raise Violation(
                    "liveness",
                    f"node {node.index}: first commit after healing is of round "
                    f"{committed_round}, more than {LIVENESS_ROUNDS} rounds after "
                    f"round {self.heal_round}",
                    node=node.index,
                )
        super()._commit(node, action)

    def _transmit(self, node: SimNode, message: ConsensusMessage, targets: list[int]) -> None:
        """The engine's send (twins unjudged), routed by the message's scenario round."""
        round_ = find_message_round(message)
        if round_ is None:  # block sync: the sender's current round decides
            round_ = getattr(node.core, "round", 0)
        index = round_ - 1
        self.twins_network.scenario_index = index if 0 <= index < self.scenario_rounds else None
        super()._transmit(node, message, targets)


def build_twins_binding(scenario: Scenario, spec: str) -> TwinsBinding:
    """The Twins binding; a test mutant (a `JolteonBinding` subclass) goes under it."""
    return mix_binding(spec, TwinsBinding, scenario)


def run_twins_seed(
    seed: int,
    options: SimOptions,
    sink: TraceSink | None = None,
    scenario: Scenario | None = None,
) -> SeedResult:
    """Run one Twins seed (n = `options.nodes`, default 4); the trace records the scenario.

    With `scenario`, the run plays it instead of the one drawn from the seed; the seed's is
    drawn all the same, so the run's later draws are the seed's. It must have the drawn n.
    """
    started = time.perf_counter()
    rng = random.Random(seed)
    drawn = generate_scenario(rng, options.nodes or TWINS_NODES[0])
    if scenario is None:
        scenario = drawn
    else:
        validate_scenario(scenario)
        if scenario.nodes != drawn.nodes:
            raise InvalidPlan(
                f"the scenario has n = {scenario.nodes}; seed {seed} drew {drawn.nodes}"
            )
    plan = build_twins_plan(scenario)
    binding = build_twins_binding(scenario, options.binding)
    cluster = build_cluster(seed, plan.nodes, get_sim_suite(options.crypto), options.timing)
    healed_ms = compute_healed_ms(
        options.timing, binding.compute_round_timeout_max_ms(options.timing)
    )
    setup = {"scenario": scenario.to_json(), "healed_ms": healed_ms}
    trace = open_trace(sink, seed, options, setup)
    outcome = TwinsSimulation(
        scenario=scenario,
        cluster=cluster,
        plan=plan,
        binding=binding,
        rng=rng,
        healed_ms=healed_ms,
        trace=trace,
        early_stop=options.early_stop,
    ).run()
    return build_seed_result(seed, plan.nodes, outcome, scenario.to_json(), sink, started)
