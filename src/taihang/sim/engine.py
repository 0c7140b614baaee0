"""The discrete-event engine: N unmodified cores, one simulated clock, one seeded RNG.

Theory of operation
-------------------
* **Time and order.** Pending work is a heap of `(time_ms, sequence, kind, node, a, b)`. The
  sequence number grows with every scheduled item, so two items due at the same millisecond
  run in the order they were scheduled: the tie-break is total and never looks at the payload.
  Time only moves forward, to the next item's time.
* **Randomness** comes from one `random.Random(seed)` owned by the run (the plan was drawn
  from it first); cores get none. Latencies, message faults, execution delays and the action at
  which a mid-step crash strikes are all drawn from it in processing order.
* **The driver.** A node's step hands one event to its core and carries out the returned
  actions in order: Persist* writes the node's simulated disk at once (a synced write), Send and
  Broadcast encode the message (`encode_message`) and give it to the network, timers go on the
  heap, Commit appends to the ledger and wakes the executor, RequestBlocks sends a
  `BlockRequest`. A receiver decodes the bytes (`decode_message`) and runs the binding's
  verifier before the core sees a `MessageReceived`, so encoding and signature bugs surface.
* **Crashes** drop the core and every volatile thing (armed timers, the executor's work) and
  bump the node's incarnation; stale timer and execution items carry the old incarnation and
  are ignored. A mid-step crash waits for the node's next step with actions and strikes after
  a random number of them, e.g. after a Persist and before the Send it guards. A restart builds
  a new core from the disk and hands it `Started`.
* **Phases.** Faults happen in `[0, faulty_ms)`; then the network heals and every downed node
  restarts, and the healed phase runs until `end_ms` or, with `early_stop`, until every node
  that keeps its keys and disk has committed enough new blocks.
* **Instances.** A validator may run as two nodes with one key (`twinned`: the plan's `twin`
  nodes in random mode, the scenario's in Twins mode): node `n + k` is the second instance of
  `twinned[k]`, with its own disk, core, timers and payload source. A `Send` to an identity goes
  to each of its instances (but the sender), a `Broadcast` to every instance of another
  identity; the binding's `validator_of` gives the instance its key. Both are Byzantine: a
  second instance's sends leave untampered and unjudged (`_transmit_unjudged`).
* **Checks** run inside the driver (`SafetyMonitor`); the first violation ends the run.
"""

from __future__ import annotations

import heapq
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from taihang.consensus.events import (
    Action,
    BlockExecuted,
    Broadcast,
    CancelTimer,
    Commit,
    Event,
    MessageReceived,
    PersistBlock,
    PersistCert,
    PersistSafetyData,
    ReportEvidence,
    RequestBlocks,
    Send,
    SetTimer,
    Started,
    TimerFired,
    TimerId,
)
from taihang.consensus.messages import (
    BlockRequest,
    ConsensusMessage,
    Proposal,
    decode_message,
    encode_message,
)
from taihang.errors import DecodeError, InvalidInput
from taihang.ledger.block import compute_block_id
from taihang.sim.byzantine import BYZANTINE_KINDS, REJECTED, ByzantineWrapper, TwinCounter
from taihang.sim.checkers import (
    LIVENESS_COMMITS_MIN,
    Progress,
    SafetyMonitor,
    Violation,
    check_liveness,
)
from taihang.sim.cluster import SIM_START_MS, Cluster, ConsensusBinding, compute_genesis_state_root
from taihang.sim.network import SimNetwork
from taihang.sim.node import SimNode, build_nodes, compute_sim_exec_root, compute_targets
from taihang.sim.plan import FAULT_KINDS, TXS_PER_BLOCK, Crash, FaultPlan
from taihang.sim.trace import Trace

EXECUTION_MS_MIN: Final = 1
EXECUTION_MS_MAX: Final = 5
EVENTS_MAX: Final = 3_000_000  # a core that keeps scheduling work at one instant livelocks

# Kinds of scheduled items.
_START: Final = 0
_DELIVER: Final = 1  # a = sender index, b = message bytes
_TIMER: Final = 2  # a = (incarnation, token), b = timer id
_EXECUTE: Final = 3  # a = incarnation, b = height
_CRASH: Final = 4  # a = Crash
_RESTART: Final = 5  # a = incarnation the restart belongs to
_HEAL: Final = 6
_END: Final = 7
_PARTITION: Final = 8  # a = Partition; the network cuts by time, this only counts and traces


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one run did: its violation (if any), fault counts and per-node progress."""

    violation: Violation | None
    faults: dict[str, int]
    progress: tuple[Progress, ...]  # nodes that keep keys and disk (the liveness set)
    committed_heights: tuple[int, ...]  # every node's final ledger height
    elapsed_ms: int
    events: int
    evidence: int


class Simulation:
    """One seeded run of a cluster under a fault plan; `run()` once."""

    def __init__(
        self,
        *,
        cluster: Cluster,
        plan: FaultPlan,
        binding: ConsensusBinding,
        rng: random.Random,
        healed_ms: int,
        trace: Trace | None = None,
        early_stop: bool = True,
        twinned: tuple[int, ...] | None = None,
    ) -> None:
        """`twinned`: validators with a second instance; None: the plan's `twin` nodes."""
        assert plan.nodes == cluster.size, "the plan and the cluster disagree on n"
        self.cluster = cluster
        self.plan = plan
        self.binding = binding
        self.two_chain_commits = bool(getattr(binding, "two_chain_commits", False))
        self.rng = rng
        self.trace = trace
        self.early_stop = early_stop
        self.heal_ms = plan.faulty_ms
        self.end_ms = plan.faulty_ms + healed_ms
        self.counts = dict.fromkeys(FAULT_KINDS, 0)
        self.twinned = plan.twinned_nodes if twinned is None else twinned
        self.instances = tuple(range(cluster.size)) + self.twinned  # node -> its validator
        self.byzantine, self.twin_counter = self._build_byzantine(trace is not None)
        unjudged = plan.byzantine_nodes | set(self.twinned)
        self.honest = [validator not in unjudged for validator in self.instances]
        self.network = SimNetwork(plan, rng, self.counts, self.instances)
        self.monitor = SafetyMonitor()
        self.nodes = build_nodes(cluster, plan, self.instances, TXS_PER_BLOCK)
        self.index_of = {node.address: node.index for node in self.nodes[: cluster.size]}
        self.targets_of = compute_targets(self.nodes)  # identity -> the nodes holding it
        self.live_nodes = [  # honest nodes that keep keys and disk: the liveness set
            n for n in self.nodes if n.index not in plan.wiped_nodes and self.honest[n.index]
        ]
        self.genesis_state_root = compute_genesis_state_root(cluster.suite)
        self.now_ms = SIM_START_MS
        self.healed = False
        self.done = False
        self.events = 0
        self.evidence = 0
        self._queue: list[tuple[int, int, int, int, Any, Any]] = []
        self._sequence = 0
        self._timer_tokens = 0
        self._handlers: dict[type, Callable[[SimNode, Any], None]] = {
            PersistSafetyData: self._persist_safety,
            PersistBlock: self._persist_block,
            PersistCert: self._persist_cert,
            Send: self._send,
            Broadcast: self._broadcast,
            SetTimer: self._set_timer,
            CancelTimer: self._cancel_timer,
            Commit: self._commit,
            RequestBlocks: self._request_blocks,
            ReportEvidence: self._report_evidence,
        }
        if trace is not None:
            trace.names = dict(self.index_of)

    def _build_byzantine(self, traced: bool) -> tuple[ByzantineWrapper | None, TwinCounter | None]:
        """The wrapper, and the counter of the random mode's `twin`, only where the plan has
        them: honest runs, and Byzantine runs without a twin, count and trace as before."""
        plan = self.plan
        if not plan.byzantine:
            return None, None
        self.counts.update(dict.fromkeys(BYZANTINE_KINDS, 0))
        record = self._record_injection if traced else None
        wrapper = ByzantineWrapper(plan.byzantine, self.cluster, self.rng, self.counts, record)
        if not plan.twinned_nodes:
            return wrapper, None
        return wrapper, TwinCounter(self.cluster, self.counts, len(self.twinned))

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> RunOutcome:
        for node in self.nodes:
            self._schedule(0, _START, node.index)
        for crash in self.plan.crashes:
            self._schedule(crash.at_ms, _CRASH, crash.node, crash)
        for partition in self.plan.partitions:
            self._schedule(partition.start_ms, _PARTITION, -1, partition)
        self._schedule(self.heal_ms, _HEAL, -1)
        self._schedule(self.end_ms, _END, -1)
        violation = None
        try:
            self._loop()
            check_liveness(self._progress())
        except Violation as found:
            found.elapsed_ms = self.elapsed_ms
            violation = found
        if self.trace is not None:
            self._record_end(violation)
        return RunOutcome(
            violation=violation,
            faults=dict(self.counts),
            progress=tuple(self._progress()),
            committed_heights=tuple(n.disk.committed_height for n in self.nodes),
            elapsed_ms=self.elapsed_ms,
            events=self.events,
            evidence=self.evidence,
        )

    @property
    def elapsed_ms(self) -> int:
        return self.now_ms - SIM_START_MS

    def _loop(self) -> None:
        queue = self._queue
        while queue and not self.done:
            at_ms, _, kind, index, a, b = heapq.heappop(queue)
            self.now_ms = at_ms
            self.events += 1
            if self.events > EVENTS_MAX:
                raise Violation("runaway", f"more than {EVENTS_MAX} events: time stopped moving")
            if kind == _DELIVER:
                self._deliver(self.nodes[index], a, b)
            elif kind == _TIMER:
                self._fire_timer(self.nodes[index], a, b)
            elif kind == _EXECUTE:
                self._finish_execution(self.nodes[index], a, b)
            else:
                self._control(kind, index, a)

    def _control(self, kind: int, index: int, a: Any) -> None:
        if kind == _START:
            self._start(self.nodes[index])
        elif kind == _CRASH:
            self._crash_event(a)
        elif kind == _RESTART:
            node = self.nodes[index]
            if node.incarnation == a and not node.is_up:
                self._record_fault("restart", index)
                self._start(node)
        elif kind == _HEAL:
            self._heal()
        elif kind == _PARTITION:
            kind_name = "one_way_partition" if a.one_way else "partition"
            self.counts[kind_name] += 1
            self._record_fault(kind_name, -1, a=list(a.side_a), b=list(a.side_b), end=a.end_ms)
        else:
            self.done = True

    def _schedule(self, delay_ms: int, kind: int, index: int, a: Any = None, b: Any = None) -> None:
        self._sequence += 1
        at_ms = self.now_ms + delay_ms
        heapq.heappush(self._queue, (at_ms, self._sequence, kind, index, a, b))

    # --- steps ----------------------------------------------------------------------------
    def _step(self, node: SimNode, event: Event) -> None:
        """Hand `event` to the node's core and carry out its actions in order."""
        core = node.core
        assert core is not None, "a step on a node that is down"
        try:
            actions = core.handle(event)
        except AssertionError as exc:
            raise Violation(
                "core_assertion",
                f"{exc!r} at {_locate(exc)} handling {_describe(event)}",
                node=node.index,
            ) from exc
        except Exception as exc:
            raise Violation(
                "core_exception",
                f"{type(exc).__name__}: {exc} at {_locate(exc)} handling {_describe(event)}",
                node=node.index,
            ) from exc
        crash_after = None
        if node.armed_crash_down_ms is not None and actions:
            crash_after = self.rng.randrange(len(actions))  # actions carried out before it
        if self.trace is not None:
            self._record_step(node, event, actions)
        handlers = self._handlers
        for position, action in enumerate(actions):
            if position == crash_after:
                self._crash_mid_step(node, position)
                return
            handlers[type(action)](node, action)

    def _start(self, node: SimNode) -> None:
        try:
            node.core = self.binding.build_core(self.cluster, node.index, node.disk, node.payload)
        except Exception as exc:  # a core that cannot recover from its own records is a bug
            raise Violation(
                "core_exception",
                f"building the core failed: {type(exc).__name__}: {exc} at {_locate(exc)}",
                node=node.index,
            ) from exc
        incarnation = node.incarnation
        self._step(node, Started(now_ms=self.now_ms))
        if node.incarnation == incarnation:
            self._schedule_execution(node)  # committed blocks the executor had not reached

    def _deliver(self, node: SimNode, sender: int, data: bytes) -> None:
        if not node.is_up:
            return  # lost with the node; its peers will retransmit or it will sync
        honest_sender = self.honest[sender]
        try:
            message = decode_message(data)
        except DecodeError as exc:
            if not honest_sender:
                self._reject(node, sender)
                return
            raise Violation("decode_error", f"from node {sender}: {exc}", node=node.index) from exc
        try:
            self.binding.verify_message(self.cluster, message)
        except InvalidInput as exc:
            if not honest_sender:  # dropped before the core, as a node's verifier stage does
                self._reject(node, sender)
                return
            raise Violation(
                "rejected_message",
                f"node {node.index} rejected a {type(message).__name__} of node {sender}: {exc}",
                node=sender,
            ) from exc
        except Exception as exc:
            raise Violation(
                "core_exception", f"verifier: {type(exc).__name__}: {exc}", node=node.index
            ) from exc
        if self.byzantine is not None and self.byzantine.is_byzantine(node.index):
            self.byzantine.observe(node.index, message)
        sender_address = self.nodes[sender].address
        self._step(
            node, MessageReceived(now_ms=self.now_ms, sender=sender_address, message=message)
        )

    def _reject(self, node: SimNode, sender: int) -> None:
        self.counts[REJECTED] += 1
        self._record_fault(REJECTED, node.index, sender=sender)

    def _fire_timer(self, node: SimNode, token: tuple[int, int], timer: TimerId) -> None:
        incarnation, armed = token
        if node.incarnation != incarnation or node.timers.get(timer) != armed:
            return  # cancelled, re-armed, or set by an earlier life of the node
        del node.timers[timer]
        self._step(node, TimerFired(now_ms=self.now_ms, timer=timer))

    # --- actions --------------------------------------------------------------------------
    def _persist_safety(self, node: SimNode, action: PersistSafetyData) -> None:
        node.disk.safety = action.data

    def _persist_block(self, node: SimNode, action: PersistBlock) -> None:
        block = action.block
        node.disk.blocks[compute_block_id(self.cluster.suite, block.header)] = block

    def _persist_cert(self, node: SimNode, action: PersistCert) -> None:
        node.disk.certs.append(action.cert)

    def _send(self, node: SimNode, action: Send) -> None:
        targets = self.targets_of.get(action.to)
        if targets is None:
            raise Violation("core_exception", f"send to unknown peer {action.to}", node=node.index)
        if len(targets) > 1:  # a twinned identity: each of its instances but the sender
            targets = [i for i in targets if i != node.index]
        self._transmit(node, action.message, targets)

    def _broadcast(self, node: SimNode, action: Broadcast) -> None:
        targets = [n.index for n in self.nodes if n.address != node.address]
        self._transmit(node, action.message, targets)

    def _request_blocks(self, node: SimNode, action: RequestBlocks) -> None:
        request = BlockRequest(block_id=action.block_id, count=action.count)
        self._send(node, Send(to=action.peer, message=request))

    def _transmit(self, node: SimNode, message: ConsensusMessage, targets: list[int]) -> None:
        if not self.honest[node.index]:
            if self.twin_counter is not None and self.instances[node.index] in self.twinned:
                self.twin_counter.observe(node.index, node.address, message)
            if self.byzantine is not None and self.byzantine.is_byzantine(node.index):
                self._transmit_byzantine(node, message, targets)
            else:
                self._transmit_unjudged(node, message, targets)
            return
        self._observe_proposal(message)
        self.monitor.check_outgoing(node.index, node.address, message, wiped=node.wiped)
        self._route(node, encode_message(message), targets)

    def _transmit_byzantine(
        self, node: SimNode, message: ConsensusMessage, targets: list[int]
    ) -> None:
        """A Byzantine node's send: the wrapper decides what leaves; no checks judge it."""
        assert self.byzantine is not None
        for sent, sent_targets in self.byzantine.mutate(node.index, message, targets):
            self._observe_proposal(sent)
            self._route(node, encode_message(sent), sent_targets)

    def _transmit_unjudged(
        self, node: SimNode, message: ConsensusMessage, targets: list[int]
    ) -> None:
        """A second instance's send: what its core sends, untampered; no checks judge it."""
        if self.twin_counter is not None:
            self.twin_counter.count_sent()
        self._observe_proposal(message)  # a twin signs conflicting messages: not judged
        self._route(node, encode_message(message), targets)

    def _route(self, node: SimNode, data: bytes, targets: list[int]) -> None:
        elapsed_ms = self.elapsed_ms
        for target in targets:  # in index order, so the RNG draws happen in a fixed order
            for delay_ms in self.network.route(elapsed_ms, node.index, target):
                self._schedule(delay_ms, _DELIVER, target, node.index, data)

    def _observe_proposal(self, message: ConsensusMessage) -> None:
        """Show the monitor a TC-justified proposal, for the rule-3 check of votes for it."""
        if isinstance(message, Proposal) and message.block.header.tc is not None:
            header = message.block.header
            self.monitor.observe_proposal(compute_block_id(self.cluster.suite, header), header)

    def _set_timer(self, node: SimNode, action: SetTimer) -> None:
        self._timer_tokens += 1
        node.timers[action.timer] = self._timer_tokens
        delay_ms = max(0, action.at_ms - self.now_ms)  # a deadline in the past fires now
        self._schedule(
            delay_ms, _TIMER, node.index, (node.incarnation, self._timer_tokens), action.timer
        )

    def _cancel_timer(self, node: SimNode, action: CancelTimer) -> None:
        node.timers.pop(action.timer, None)

    def _report_evidence(self, node: SimNode, action: ReportEvidence) -> None:
        self.evidence += 1  # kept for the regulator; the monitor judges signers itself

    def _commit(self, node: SimNode, action: Commit) -> None:
        disk = node.disk
        suite = self.cluster.suite
        for block in action.blocks:
            height = block.header.height
            block_id = compute_block_id(suite, block.header)
            honest = self.honest[node.index]
            if honest:  # only honest nodes are judged
                self.monitor.check_commit(node.index, height, block_id)
            if height <= disk.committed_height:
                continue  # committed before (a restarted core may repeat it): agreement held
            parent_id = disk.ledger_ids[-1] if disk.ledger_ids else self.cluster.genesis_id
            if height != disk.committed_height + 1 or block.header.parent_id != parent_id:
                if not honest:
                    continue
                raise Violation(
                    "commit_gap",
                    f"node {node.index} committed height {height} on a ledger at "
                    f"{disk.committed_height} (or not on its tip)",
                    node=node.index,
                )
            disk.ledger.append(block)
            disk.ledger_ids.append(block_id)
        if self.two_chain_commits and self.honest[node.index] and action.blocks:
            head_id = compute_block_id(suite, action.blocks[-1].header)
            self.monitor.check_commit_proof(node.index, head_id, action.proof)
        disk.commit_proof = action.proof
        self._schedule_execution(node)
        if self.healed and self.early_stop and self._is_live():
            self.done = True

    # --- execution ------------------------------------------------------------------------
    def _schedule_execution(self, node: SimNode) -> None:
        disk = node.disk
        if node.executing or disk.executed_height >= disk.committed_height:
            return
        node.executing = True
        delay_ms = self.rng.randint(EXECUTION_MS_MIN, EXECUTION_MS_MAX)
        self._schedule(delay_ms, _EXECUTE, node.index, node.incarnation, disk.executed_height + 1)

    def _finish_execution(self, node: SimNode, incarnation: int, height: int) -> None:
        if node.incarnation != incarnation:
            return  # the node crashed while executing: the result never reached its disk
        node.executing = False
        disk = node.disk
        assert height == disk.executed_height + 1 <= disk.committed_height, "executor order"
        previous = disk.executed[-1].state_root if disk.executed else self.genesis_state_root
        root = compute_sim_exec_root(
            self.cluster.suite, height, previous, disk.ledger_ids[height - 1]
        )
        disk.executed.append(root)
        self._step(
            node,
            BlockExecuted(
                now_ms=self.now_ms,
                height=height,
                state_root=root.state_root,
                receipts_root=root.receipts_root,
            ),
        )
        if node.incarnation == incarnation:
            self._schedule_execution(node)

    # --- faults and phases ----------------------------------------------------------------
    def _crash_event(self, crash: Crash) -> None:
        node = self.nodes[crash.node]
        if crash.wipe:
            self._crash(node, crash.down_ms, wipe=True)
        elif not node.is_up:
            return  # already down: this crash and its restart fold into the earlier one
        elif crash.mid_step:
            node.armed_crash_down_ms = crash.down_ms
            self._record_fault("arm_crash", node.index)
        else:
            self._crash(node, crash.down_ms, wipe=False)

    def _crash_mid_step(self, node: SimNode, carried_out: int) -> None:
        down_ms = node.armed_crash_down_ms
        assert down_ms is not None
        self.counts["crash_mid_step"] += 1
        self._crash(node, down_ms, wipe=False, carried_out=carried_out)

    def _crash(self, node: SimNode, down_ms: int, *, wipe: bool, carried_out: int = -1) -> None:
        was_up = node.is_up
        node.core = None
        node.incarnation += 1
        node.timers.clear()
        node.executing = False
        node.armed_crash_down_ms = None
        if wipe:
            node.disk.wipe()
            node.wiped = True
        self.counts["wipe" if wipe else "crash"] += 1
        self._record_fault("wipe" if wipe else "crash", node.index, carried_out=carried_out)
        if was_up or wipe:
            restart_ms = min(self.elapsed_ms + down_ms, self.heal_ms)  # healing restarts all
            self._schedule(restart_ms - self.elapsed_ms, _RESTART, node.index, node.incarnation)

    def _heal(self) -> None:
        self.healed = True
        self.network.heal()
        for node in self.nodes:
            node.armed_crash_down_ms = None  # a crash that never struck is called off
            node.commits_at_heal = node.disk.committed_height
        self._record_fault("heal", -1)
        if self.early_stop and self._is_live():
            self.done = True

    def _progress(self) -> list[Progress]:
        return [
            Progress(n.index, n.commits_at_heal, n.disk.committed_height)
            for n in self.live_nodes
            if self.healed
        ]

    def _is_live(self) -> bool:
        return all(
            n.disk.committed_height - n.commits_at_heal >= LIVENESS_COMMITS_MIN
            for n in self.live_nodes
        )

    # --- trace ----------------------------------------------------------------------------
    def _record_step(self, node: SimNode, event: Event, actions: list[Action]) -> None:
        trace = self.trace
        assert trace is not None
        described = trace.describe_event(event)
        if isinstance(event, BlockExecuted):
            described.append(event.height)
        trace.record(
            {
                "t": self.elapsed_ms,
                "n": node.index,
                "ev": described,
                "acts": [trace.describe_action(a) for a in actions],
            }
        )

    def _record_injection(self, kind: str, index: int) -> None:
        self._record_fault(kind, index)

    def _record_fault(self, kind: str, index: int, **fields: Any) -> None:
        if self.trace is not None:
            self.trace.record({"t": self.elapsed_ms, "n": index, "fault": kind, **fields})

    def _record_end(self, violation: Violation | None) -> None:
        assert self.trace is not None
        self.trace.record(
            {
                "end": {
                    "t": self.elapsed_ms,
                    "events": self.events,
                    "faults": self.counts,
                    "heights": [n.disk.committed_height for n in self.nodes],
                    "violation": None if violation is None else violation.to_json(),
                }
            }
        )


def _locate(exc: BaseException) -> str:
    """Where `exc` was raised, as `file.py:line in function` (no directories: traces compare)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


def _describe(event: Event) -> str:
    """A short description of an event for a violation report (messages can be large)."""
    if isinstance(event, MessageReceived):
        return f"{type(event.message).__name__} from {event.sender[:8]} at {event.now_ms}"
    return repr(event)
