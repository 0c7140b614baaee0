"""The simulated network: per-message latency and the plan's message faults.

Theory of operation: `route` decides, at send time, what becomes of one message on the link
`src -> dst`: a list of delays after which a copy arrives (empty: lost; two: duplicated).
Every decision is a draw from the run's single RNG, in a fixed order (partition check, drop,
latency, spike, duplicate), so the same seed routes the same messages the same way. Faults
apply only before `heal()`; afterwards each message arrives once after U[1, L] ms. Messages a
node sends to itself skip the network: they arrive after 0 ms, in order, and are never lost.

A partition cuts a link for messages *sent* while it is active; messages already on the wire
still arrive, as they would on a real network where the cut is at the sender's side.

A validator with a second instance (the `twin` behaviour) puts that instance, node `n + k`, on
the other side of every partition from its first one (`compute_instance_cut_links`), so each
side can count the key's vote, as in the Twins attack; links are then numbered over all the
instances. Without one, the links and every draw are exactly as before.
"""

from __future__ import annotations

import random
from dataclasses import replace

from taihang.sim.plan import REORDER_SPIKE_MS_MAX, FaultPlan, Partition


def compute_instance_cut_links(
    partition: Partition, instances: tuple[int, ...], nodes: int
) -> frozenset[int]:
    """The links `partition` cuts among `instances` (instance i runs as validator
    `instances[i]`; i >= nodes is a second instance, placed on the side its validator is not
    on), encoded as `src * len(instances) + dst`."""
    if len(instances) == nodes:
        return partition.compute_cut_links(nodes)
    side_a = set(partition.side_a)
    a = tuple(i for i, v in enumerate(instances) if (v in side_a) != (i >= nodes))
    b = tuple(i for i in range(len(instances)) if i not in a)
    return replace(partition, side_a=a, side_b=b).compute_cut_links(len(instances))


class SimNetwork:
    __slots__ = ("_cuts", "_plan", "_rng", "_stride", "counts", "healed")

    def __init__(
        self,
        plan: FaultPlan,
        rng: random.Random,
        counts: dict[str, int],
        instances: tuple[int, ...] = (),
    ) -> None:
        self._plan = plan
        self._rng = rng
        instances = instances or tuple(range(plan.nodes))
        self._stride = len(instances)  # links are numbered src * stride + dst
        # (start, end, cut links, kind) per partition, in plan order.
        self._cuts = [
            (p.start_ms, p.end_ms, compute_instance_cut_links(p, instances, plan.nodes), p.one_way)
            for p in plan.partitions
        ]
        self.counts = counts
        self.healed = False

    def heal(self) -> None:
        self.healed = True

    def route(self, elapsed_ms: int, src: int, dst: int) -> list[int]:
        """Delays (ms) after which copies of a message sent now on `src -> dst` arrive."""
        if src == dst:
            return [0]
        plan = self._plan
        rng = self._rng
        if self.healed:
            return [rng.randint(1, plan.latency_ms_max)]
        if self._is_cut(elapsed_ms, src * self._stride + dst):
            self.counts["partition_cut"] += 1
            return []
        if plan.drop and rng.random() < plan.drop:
            self.counts["drop"] += 1
            return []
        delays = [self._draw_delay()]
        if plan.duplicate and rng.random() < plan.duplicate:
            self.counts["duplicate"] += 1
            delays.append(self._draw_delay())
        return delays

    def _draw_delay(self) -> int:
        plan = self._plan
        delay_ms = self._rng.randint(1, plan.latency_ms_max)
        if plan.reorder and self._rng.random() < plan.reorder:
            self.counts["reorder"] += 1
            delay_ms += self._rng.randint(0, REORDER_SPIKE_MS_MAX)
        return delay_ms

    def _is_cut(self, elapsed_ms: int, link: int) -> bool:
        for start_ms, end_ms, cut, _ in self._cuts:
            if start_ms <= elapsed_ms < end_ms and link in cut:
                return True
        return False
