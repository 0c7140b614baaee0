"""A simulated node's durable and volatile state: its disk, ledger, executor and timers.

Theory of operation: the disk (`SimDisk`) is what survives a crash. Persist actions write it
immediately and completely, which models a synced write: the driver carries out a step's
actions in order, so a crash between two actions leaves exactly the earlier writes on disk.
The disk holds the consensus records (safety data, blocks, certificates, in the order they were
persisted) and the ledger (committed blocks and the roots of the executed ones). A wipe loses
all of it; the node then starts from genesis with no safety data and its signing guard refuses
to sign (amnesia is Byzantine, so such a node counts against f).

Everything else (`SimNode`: the core object, armed timers, the executor's busy flag) is
volatile and lost at a crash; `incarnation` goes up with every crash, so events scheduled for
an earlier life (timers, executions) are recognised and ignored.

The executor is a stand-in for contract execution: it executes committed blocks in height
order, each after a small delay, and its roots form a hash chain over the block ids, so every
node that executes the same blocks gets the same roots, as real deterministic execution would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from taihang.consensus.events import TimerId
from taihang.consensus.messages import SafetyData
from taihang.consensus.safety import build_initial_safety_data
from taihang.crypto import CryptoSuite
from taihang.ledger.block import Block, ExecRoot, QuorumCert, TimeoutCert

if TYPE_CHECKING:
    from taihang.sim.cluster import Cluster, Core
    from taihang.sim.plan import FaultPlan

TAG_SIM_STATE = b"taihang/sim/state"
TAG_SIM_RECEIPTS = b"taihang/sim/receipts"


def build_first_safety_data() -> SafetyData:
    """What key creation writes: "never signed", so a first start is told from a lost disk."""
    return build_initial_safety_data(0)


@dataclass(slots=True)
class SimDisk:
    """One node's durable records; a Persist action completes before the next action runs."""

    safety: SafetyData | None = field(default_factory=build_first_safety_data)
    blocks: dict[bytes, Block] = field(default_factory=dict)  # by id, in persist order
    certs: list[QuorumCert | TimeoutCert] = field(default_factory=list)  # in persist order
    ledger: list[Block] = field(default_factory=list)  # committed; ledger[h - 1] is height h
    ledger_ids: list[bytes] = field(default_factory=list)
    commit_proof: QuorumCert | None = None  # the proof of the last commit
    executed: list[ExecRoot] = field(default_factory=list)  # executed[h - 1] is height h

    @property
    def committed_height(self) -> int:
        return len(self.ledger)

    @property
    def executed_height(self) -> int:
        return len(self.executed)

    def wipe(self) -> None:
        """Lose everything, including the safety data: the node may not sign again."""
        self.safety = None
        self.blocks = {}
        self.certs = []
        self.ledger = []
        self.ledger_ids = []
        self.commit_proof = None
        self.executed = []


def compute_sim_exec_root(
    suite: CryptoSuite, height: int, previous_state_root: bytes, block_id: bytes
) -> ExecRoot:
    """The roots of executing `block_id` (at `height`) on top of `previous_state_root`."""
    return ExecRoot(
        height=height,
        state_root=suite.tagged_hash(TAG_SIM_STATE, previous_state_root + block_id),
        receipts_root=suite.tagged_hash(TAG_SIM_RECEIPTS, block_id),
    )


class SimPayload:
    """A node's stand-in mempool: `waiting` synthetic transactions, a few per block.

    The transactions are unique per node (`sim/<node>/<n>`), so no block repeats one, and the
    backlog is drawn with the fault plan, so some seeds start with a burst of full blocks (the
    `min_block_interval_ms` path) and every seed ends idle (the `idle_block_interval_ms` path).
    It survives crashes, like clients that keep re-submitting.
    """

    __slots__ = ("_node", "_taken", "txs_per_block", "waiting")

    def __init__(self, node: int, waiting: int, txs_per_block: int) -> None:
        self._node = node
        self._taken = 0
        self.waiting = waiting
        self.txs_per_block = txs_per_block

    def has_payload(self) -> bool:
        return self.waiting > 0

    def get_payload(
        self, height: int, parent_id: bytes, max_txs: int, max_bytes: int
    ) -> list[bytes]:
        count = min(self.waiting, self.txs_per_block, max_txs)
        txs = [f"sim/{self._node}/{self._taken + i}".encode() for i in range(count)]
        self.waiting -= count
        self._taken += count
        return txs


@dataclass(slots=True)
class SimNode:
    """A node's volatile side; `core is None` while it is down."""

    index: int
    address: str
    payload: SimPayload
    disk: SimDisk = field(default_factory=SimDisk)
    core: Core | None = None
    incarnation: int = 0
    timers: dict[TimerId, int] = field(default_factory=dict)  # armed timer -> its token
    executing: bool = False  # an execution is scheduled and not yet finished
    wiped: bool = False  # this node lost its disk at some point in the run
    armed_crash_down_ms: int | None = None  # a mid-step crash waits for the next step
    commits_at_heal: int = 0

    @property
    def is_up(self) -> bool:
        return self.core is not None


def build_nodes(
    cluster: Cluster, plan: FaultPlan, instances: tuple[int, ...], txs_per_block: int
) -> list[SimNode]:
    """Node i runs as validator `instances[i]`, with its own disk and payload source."""
    return [
        SimNode(i, cluster.address(v), SimPayload(i, plan.txs_waiting[v], txs_per_block))
        for i, v in enumerate(instances)
    ]


def compute_targets(nodes: list[SimNode]) -> dict[str, list[int]]:
    """The nodes holding each identity, in index order."""
    targets: dict[str, list[int]] = {}
    for node in nodes:
        targets.setdefault(node.address, []).append(node.index)
    return targets
