"""The consensus driver: the unmodified Jolteon core on real sockets, disks, clocks and threads.

Theory of operation. One asyncio task (`_step_loop`) owns the core. Everything that happens
becomes an event in one FIFO queue: verified messages from peers, timer expiries, executed
blocks. The loop takes one event, calls `core.handle`, and carries out the returned actions
*in order* before it takes the next event. Ordering is the safety rule of the spec:

  * `PersistBlock`, `PersistCert` and `PersistSafetyData` are gathered into one write batch,
    written synced (fsync) to RocksDB before the first later action runs, so no vote or
    timeout leaves the node before the data guarding it is durable;
  * `Commit` writes the committed blocks and their commit proof in one synced batch (with
    the retirement of the consensus records they replace), then queues them for execution;
  * `Send`/`Broadcast` hand frames to the transport (`taihang.net`), which never blocks;
  * `SetTimer`/`CancelTimer` arm loop timers that enqueue `TimerFired` with the wall clock.

Messages arrive from the transport on the loop, are decoded there (cheap, native msgspec) and
verified in a one-thread pool (signatures: native, GIL released), which keeps their order; a
message that fails either is dropped and charged to the peer. Block requests for committed
blocks the core no longer keeps (`consensus.committed_blocks_kept`, 256) are answered here
from the ledger store, so a peer that fell
behind by up to `consensus.catchup_blocks_max` blocks catches up from this node.

Recovery. At start the driver reads the consensus records (`store.consensus_records`) and
the ledger's committed head, and hands them to the core as a `RecoveredState`. The signing
guard gets the stored SafetyData; with none stored it gets a fresh record only when the
safety file beside the key says this key never signed (`node/safety.py`), otherwise none, and
then it refuses to sign (a wiped disk must not make the node equivocate).

The mempool is the core's payload source (`node/payload.py`): a leader's block never repeats
a transaction of the blocks it extends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Container
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from taihang.codec import decode
from taihang.consensus.config import ConsensusConfig
from taihang.consensus.core import ConsensusCore, RecoveredState
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
    BlockResponse,
    ConsensusMessage,
    Proposal,
    SafetyData,
    TimeoutMsg,
    Vote,
    decode_message,
    encode_message,
)
from taihang.consensus.safety import SigningGuard, build_initial_safety_data
from taihang.consensus.verify import MessageLimits, MessageVerifier
from taihang.crypto import CryptoSuite
from taihang.errors import ConfigurationError, InvalidInput
from taihang.ledger.block import Block, QuorumCert, compute_block_id
from taihang.ledger.genesis import Genesis
from taihang.ledger.transaction import compute_address
from taihang.net import FrameKind, Transport, TransportIdentity
from taihang.node.chain import Chain, ExecutedBlock
from taihang.node.logs import log, now_ms
from taihang.node.payload import MempoolPayload, PendingTxIds
from taihang.node.safety import load_safety_record, save_safety_record
from taihang.node.syncer import LedgerSyncer
from taihang.store.consensus_records import ConsensusRecords, StoredConsensus
from taihang.sync.messages import decode_sync_message

if TYPE_CHECKING:
    from taihang.node.runtime import Node

logger = logging.getLogger("taihang.consensus")

VERIFY_BACKLOG_MAX: Final = 10_000  # messages waiting for verification before new ones drop
STORE_SERVES_PER_PEER_MAX: Final = 2  # block requests read from disk at once, per peer
STARTUP_PEER_WAIT_S: Final = 2.0  # how long a starting node waits for a peer to ask its tip
RESYNC_INTERVAL_S: Final = 5.0  # at most one ledger sync per interval while running


class ConsensusDriver:
    def __init__(self, node: Node, chain: Chain) -> None:
        self.node = node
        self.chain = chain
        self.suite = chain.suite
        self.records = ConsensusRecords(chain.kv)
        self.config = build_consensus_config(node)
        genesis = chain.genesis
        by_key = {v.public_key: v for v in chain.validators.members}
        self.address_of: dict[str, str] = {}
        for spec in genesis.validators:
            member = by_key.get(bytes.fromhex(spec.public_key))
            if member is not None:
                self.address_of[spec.name] = member.address
        self.observer_addresses = find_observer_addresses(genesis, self.suite)
        self.address_of.update(
            (spec.name, address)
            for spec, address in zip(genesis.observers, self.observer_addresses, strict=True)
        )
        self.name_of = {address: name for name, address in self.address_of.items()}
        self.verifier = MessageVerifier(
            chain.validators,
            self.suite,
            channel=genesis.channel,
            epoch=0,
            genesis_id=chain.genesis_id,
            limits=MessageLimits(
                self.config.block_txs_max,
                self.config.block_bytes_max,
                self.config.blocks_request_max,
            ),
        )
        self.transport = Transport(
            TransportIdentity.load(node.home.path, node.config, genesis),
            node.config.p2p,
            self._on_frame,
            self._on_peer,
        )
        self.core: ConsensusCore | None = None
        self.syncer = LedgerSyncer(
            chain,
            self.transport,
            threshold=node.config.consensus.catchup_blocks_max,
            charge=self._reject,
            on_committed=self._on_synced_block,
            is_stopping=lambda: node.is_stopping,
        )
        self._resync_wanted = False
        self._last_resync = 0.0
        self.last_commit_ms: int | None = None
        self.rejected: dict[str, int] = {}
        self._events: deque[Event] = deque()
        self._wakeup = asyncio.Event()
        self._timers: dict[TimerId, asyncio.TimerHandle] = {}
        self._verify_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cverify")
        self._verifying = 0
        self._serving: dict[str, int] = {}  # peer -> block requests being read from the store
        self._stored_blocks: dict[bytes, int] = {}  # kB records: block id -> height
        self._stored_qc_round = -1
        self._stored_tc_round = -1
        self._safety_recorded = False  # the safety file says this key has signed
        self.pending = PendingTxIds(self.suite)

    # --- lifecycle ------------------------------------------------------------------------
    async def run(self) -> None:
        for height in self.chain.store.committed_heights():
            raw = self.chain.store.find_committed_block(height)
            if raw is not None:
                block_id = compute_block_id(self.suite, decode(raw, Block).header)
                self.pending.committed(height, block_id)
        await self.transport.start()
        await self.syncer.sync(wait_for_peers_s=STARTUP_PEER_WAIT_S)
        self.core = self._build_core(await asyncio.to_thread(self.records.load))
        self._drop_stale_events()
        log(
            logger,
            "consensus_started",
            round=self.core.round,
            committed_height=self.core.committed_height,
            validators=len(self.chain.validators.members),
            can_sign=self.core.guard is not None and self.core.guard.can_sign,
        )
        self._events.appendleft(Started(now_ms()))
        self._wakeup.set()
        try:
            await self._step_loop()
        finally:
            for handle in self._timers.values():
                handle.cancel()
            self._timers.clear()
            await self.transport.close()
            self._verify_pool.shutdown(wait=True, cancel_futures=True)

    async def _resync(self) -> None:
        """Far behind: pause the core, sync the ledger, and restart the core from disk."""
        self._resync_wanted = False
        self._last_resync = time.monotonic()
        result = await self.syncer.sync()
        if result is None:
            return  # within reach of block requests after all: the core goes on
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.core = self._build_core(await asyncio.to_thread(self.records.load))
        self._drop_stale_events()
        self._events.appendleft(Started(now_ms()))

    def _drop_stale_events(self) -> None:
        """Before a new core starts: messages and timers are stale, executions are not (the
        core learns of heights executed after it read the store only from these)."""
        executed = [e for e in self._events if isinstance(e, BlockExecuted)]
        self._events.clear()
        self._events.extend(executed)

    def _on_synced_block(self, height: int, block_id: bytes) -> None:
        self.pending.committed(height, block_id)
        self.last_commit_ms = now_ms()
        self.node.enqueue_execution(height)

    def _note_height(self, message: ConsensusMessage) -> None:
        """Ask for a ledger sync when a verified message shows the chain far above us."""
        core = self.core
        if core is None or self._resync_wanted:
            return
        if isinstance(message, Proposal):
            height = message.block.header.height
        elif isinstance(message, Vote):
            height = message.vote_data.height
        elif isinstance(message, TimeoutMsg):
            height = message.high_qc.vote_data.height
        else:
            return
        threshold = self.node.config.consensus.catchup_blocks_max
        recently = time.monotonic() - self._last_resync < RESYNC_INTERVAL_S
        if height > core.committed_height + threshold and not recently:
            log(logger, "far_behind", height=height, committed_height=core.committed_height)
            self._resync_wanted = True
            self._wakeup.set()

    def wake(self) -> None:
        """Let the step loop notice a stop request."""
        self._wakeup.set()

    def info(self) -> dict[str, Any]:
        core = self.core
        round_ = core.round if core is not None else 0
        return {
            "round": round_,
            "leader": core.leader.leader(round_) if core is not None else None,
            "peers": self.transport.connected_peers(),
            "last_commit_ms": self.last_commit_ms,
        }

    def _build_core(self, stored: StoredConsensus) -> ConsensusCore:
        chain = self.chain
        self._stored_blocks = {i: b.header.height for i, b in stored.blocks.items()}
        if stored.highest_qc is not None:
            self._stored_qc_round = stored.highest_qc.vote_data.round
        if stored.highest_tc is not None:
            self._stored_tc_round = stored.highest_tc.round
        genesis_raw = chain.store.find_block(0)
        assert genesis_raw is not None, "an initialized store holds the genesis block"
        me = self.node.signer.address
        guard = (
            SigningGuard(
                self.node.signer,
                me,
                self._load_safety(stored),
                channel=self.config.channel,
                epoch=self.config.epoch,
            )
            if me in chain.validators.by_address
            else None  # an observer: it follows and never signs
        )
        return ConsensusCore(
            config=self.config,
            validators=chain.validators,
            suite=self.suite,
            genesis_block=decode(genesis_raw, Block),
            me=self.node.signer.address,
            guard=guard,
            payload=MempoolPayload(self.node, self.find_excluded),
            recovered=self._build_recovered(stored),
        )

    def _load_safety(self, stored: StoredConsensus) -> SafetyData | None:
        home = self.node.home.path
        try:
            recorded_round = load_safety_record(home)
        except ConfigurationError as exc:
            log(logger, "signing_refused", logging.ERROR, reason=exc.message)
            return None
        self._safety_recorded = recorded_round > 0
        if stored.safety is not None:
            return stored.safety
        if recorded_round == 0:
            return build_initial_safety_data(0)  # this key never signed: a first start
        log(
            logger,
            "signing_refused",
            logging.ERROR,
            reason=(
                f"this key signed up to round {recorded_round} but the consensus safety data "
                "is gone (the data directory was wiped or restored); signing again could "
                "equivocate, so this node follows the chain without voting"
            ),
        )
        return None

    def _build_recovered(self, stored: StoredConsensus) -> RecoveredState | None:
        chain = self.chain
        if chain.tip_height == 0 and not stored.blocks and stored.highest_qc is None:
            return None
        head_raw = chain.store.find_block(chain.tip_height)
        assert head_raw is not None, "the committed head is stored"
        head = decode(head_raw, Block)
        executed = [
            chain.exec_root_for(height)
            for height in range(head.header.exec_root.height, chain.executed_height + 1)
        ]
        return RecoveredState(
            blocks=[*stored.blocks.values(), head],
            highest_qc=stored.highest_qc,
            highest_tc=stored.highest_tc,
            committed_height=chain.tip_height,
            committed_block_id=chain.tip_id,
            executed=executed,
        )

    # --- the step loop --------------------------------------------------------------------
    def _push(self, event: Event) -> None:
        self._events.append(event)
        self._wakeup.set()

    async def _step_loop(self) -> None:
        while not self.node.is_stopping:
            if self._resync_wanted:
                await self._resync()
                continue
            if not self._events:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            event = self._events.popleft()
            core = self.core
            assert core is not None
            try:
                actions = core.handle(event)
            except AssertionError as exc:  # a broken invariant: halt rather than go on
                log(logger, "consensus_invariant_broken", logging.CRITICAL, error=str(exc))
                self.node.stop()
                raise
            await self._carry_out(actions)

    async def _carry_out(self, actions: list[Action]) -> None:
        puts: dict[bytes, bytes | None] = {}
        first_signature: SafetyData | None = None
        for action in actions:
            if isinstance(action, PersistBlock):
                block_id = compute_block_id(self.suite, action.block.header)
                puts.update(self.records.build_block_puts(block_id, action.block))
                self._stored_blocks[block_id] = action.block.header.height
            elif isinstance(action, PersistCert):
                puts.update(self._build_cert_puts(action))
            elif isinstance(action, PersistSafetyData):
                puts.update(self.records.build_safety_puts(action.data))
                if not self._safety_recorded:
                    first_signature = action.data
            else:
                if puts:
                    await self._flush(puts, first_signature)
                    puts, first_signature = {}, None
                await self._perform(action)
        if puts:
            await self._flush(puts, first_signature)

    def _build_cert_puts(self, action: PersistCert) -> dict[bytes, bytes | None]:
        cert = action.cert
        if isinstance(cert, QuorumCert):
            if cert.vote_data.round <= self._stored_qc_round:
                return {}
            self._stored_qc_round = cert.vote_data.round
        else:
            if cert.round <= self._stored_tc_round:
                return {}
            self._stored_tc_round = cert.round
        return self.records.build_cert_puts(cert)

    async def _flush(
        self, puts: dict[bytes, bytes | None], first_signature: SafetyData | None
    ) -> None:
        await asyncio.to_thread(self.chain.store.write, puts)
        if first_signature is not None:
            # From now on a lost data directory must read as "lost", not "first start".
            signed_round = max(first_signature.last_voted_round, 1)
            await asyncio.to_thread(save_safety_record, self.node.home.path, signed_round)
            self._safety_recorded = True

    async def _perform(self, action: Action) -> None:
        if isinstance(action, Send):
            self._send(action.to, action.message)
        elif isinstance(action, Broadcast):
            self.transport.broadcast(FrameKind.CONSENSUS, encode_message(action.message))
        elif isinstance(action, SetTimer):
            self._set_timer(action.timer, action.at_ms)
        elif isinstance(action, CancelTimer):
            handle = self._timers.pop(action.timer, None)
            if handle is not None:
                handle.cancel()
        elif isinstance(action, Commit):
            await self._commit(action)
        elif isinstance(action, RequestBlocks):
            request = BlockRequest(block_id=action.block_id, count=action.count)
            self._send(action.peer, request)
        elif isinstance(action, ReportEvidence):
            evidence = action.evidence
            log(
                logger,
                "equivocation",
                logging.WARNING,
                author=evidence.author,
                round=evidence.round,
                kind=evidence.kind,
            )
        else:  # the union is closed
            raise AssertionError(f"unknown action {type(action).__name__}")

    def _send(self, to: str, message: ConsensusMessage) -> None:
        name = self.name_of.get(to)
        if name is not None:
            self.transport.send(name, FrameKind.CONSENSUS, encode_message(message))

    def _set_timer(self, timer: TimerId, at_ms: int) -> None:
        previous = self._timers.pop(timer, None)
        if previous is not None:
            previous.cancel()
        delay_s = max(0, at_ms - now_ms()) / 1000
        loop = asyncio.get_running_loop()
        self._timers[timer] = loop.call_later(delay_s, self._fire_timer, timer)

    def _fire_timer(self, timer: TimerId) -> None:
        self._timers.pop(timer, None)
        self._push(TimerFired(now_ms(), timer))

    async def _commit(self, action: Commit) -> None:
        blocks: list[tuple[bytes, Block]] = [
            (compute_block_id(self.suite, b.header), b) for b in action.blocks
        ]
        new_height = blocks[-1][1].header.height
        retired = [i for i, h in self._stored_blocks.items() if h <= new_height]
        retired_puts = self.records.build_retire_puts(retired)
        committed_ids = {block_id for block_id, _ in blocks}
        abandoned = [i for i in retired if i not in committed_ids]
        lost = await asyncio.to_thread(self.records.find_blocks, abandoned)
        started = time.monotonic()
        await asyncio.to_thread(self.chain.commit_blocks, blocks, action.proof, retired_puts)
        duration_s = time.monotonic() - started
        for block_id in retired:
            del self._stored_blocks[block_id]
        for block_id in abandoned:
            self.pending.forget(block_id)  # a fork that lost: nothing of it will execute
        for block in lost:  # its transactions may still go into a later block
            self.node.restore_transactions(block.transactions)
        self.last_commit_ms = now_ms()
        for block_id, block in blocks:
            height = block.header.height
            self.pending.committed(height, block_id)
            self.node.metrics.block_committed(height, len(block.transactions), duration_s)
            self.node.enqueue_execution(height)
        log(logger, "committed", logging.DEBUG, height=new_height, blocks=len(blocks))

    def on_executed(self, executed: ExecutedBlock) -> None:
        """Called on the loop once the executor wrote height h's ledger batch."""
        self.pending.executed(executed.height)
        root = executed.exec_root
        self._push(BlockExecuted(now_ms(), root.height, root.state_root, root.receipts_root))

    # --- messages in ----------------------------------------------------------------------
    def _on_peer(self, peer: str, connected: bool) -> None:
        log(logger, "peer_connected" if connected else "peer_disconnected", peer=peer)

    def _on_frame(self, peer: str, kind: FrameKind, body: bytes) -> None:
        if kind == FrameKind.TXS:
            self.node.receive_gossip(peer, body)
            return
        if kind == FrameKind.SYNC:
            try:
                sync_message = decode_sync_message(body)
            except InvalidInput as exc:
                self._reject(peer, f"undecodable sync message: {exc.message}")
                return
            self.syncer.on_message(peer, sync_message)
            return
        if kind != FrameKind.CONSENSUS:
            return
        address = self.address_of.get(peer)
        if address is None:
            self._reject(peer, "consensus message from a node that is not a validator")
            return
        try:
            message = decode_message(body)
        except InvalidInput as exc:
            self._reject(peer, f"undecodable consensus message: {exc.message}")
            return
        if isinstance(message, BlockRequest) and self._serves_from_store(message):
            if self._serving.get(peer, 0) < STORE_SERVES_PER_PEER_MAX:  # else: it asks again
                self._serving[peer] = self._serving.get(peer, 0) + 1
                asyncio.get_running_loop().create_task(self._serve_from_store(peer, message))
            return
        if self._verifying >= VERIFY_BACKLOG_MAX:
            self.rejected["verify_backlog"] = self.rejected.get("verify_backlog", 0) + 1
            return
        self._verifying += 1
        future = asyncio.get_running_loop().run_in_executor(
            self._verify_pool, self._verify, message
        )
        future.add_done_callback(
            lambda done: self._on_verified(peer, address, message, done.result())
        )

    def _verify(self, message: ConsensusMessage) -> str | None:
        """Runs in the verify thread: None when valid, else why not."""
        try:
            self.verifier.verify(message)
        except InvalidInput as exc:
            return exc.message
        except Exception as exc:  # input from the network must never kill the node
            return f"verification failed: {exc!r}"
        return None

    def _on_verified(
        self, peer: str, address: str, message: ConsensusMessage, problem: str | None
    ) -> None:
        self._verifying -= 1
        if problem is not None:
            self._reject(peer, f"invalid {type(message).__name__}: {problem}")
            return
        self._note_height(message)
        self._push(MessageReceived(now_ms(), address, message))

    def _reject(self, peer: str, reason: str) -> None:
        self.rejected[peer] = self.rejected.get(peer, 0) + 1
        self.transport.charge(peer, reason)

    # --- serving committed blocks from the ledger, and the leader's payload ----------------
    def _serves_from_store(self, request: BlockRequest) -> bool:
        core = self.core
        if core is None or core.tree.has_block(request.block_id):
            return False
        return self.chain.store.find_height_by_id(request.block_id) is not None

    async def _serve_from_store(self, peer: str, request: BlockRequest) -> None:
        count = min(request.count, self.config.blocks_request_max)
        try:
            response = await asyncio.to_thread(self._read_ancestors, request.block_id, count)
        finally:
            self._serving[peer] -= 1
        if response is not None:
            self.transport.send(peer, FrameKind.CONSENSUS, encode_message(response))

    def _read_ancestors(self, block_id: bytes, count: int) -> BlockResponse | None:
        blocks, qcs = self.chain.store.read_certified_ancestors(block_id, count)
        if not blocks:
            return None
        return BlockResponse(request_id=block_id, blocks=blocks, qcs=qcs)

    def find_excluded(self, parent_id: bytes) -> Container[bytes]:
        """Ids in the blocks a new block on `parent_id` extends, down to the executed state."""
        assert self.core is not None
        return self.pending.find_excluded(self.core.tree, parent_id, self.chain.executed_height)


def build_consensus_config(node: Node) -> ConsensusConfig:
    """The core's parameters from the node config and the channel's genesis limits."""
    config = node.config
    params = node.genesis.params
    catchup = config.consensus.catchup_blocks_max
    consensus = ConsensusConfig(
        channel=node.genesis.channel,
        epoch=0,
        round_timeout_base_ms=config.consensus.round_timeout_base_ms,
        min_block_interval_ms=config.block.min_block_interval_ms,
        idle_block_interval_ms=config.block.idle_block_interval_ms,
        network_allowance_ms=config.consensus.network_allowance_ms,
        max_clock_drift_ms=config.consensus.max_clock_drift_ms,
        block_txs_max=params.block_txs_max,
        block_bytes_max=params.block_bytes_max,
        block_request_retry_ms=config.consensus.block_request_retry_ms,
        committed_blocks_kept=config.consensus.committed_blocks_kept,
        orphan_blocks_max=max(2_048, catchup + 256),
    )
    consensus.validate()
    return consensus


def find_observer_addresses(genesis: Genesis, suite: CryptoSuite) -> list[str]:
    """The addresses of the genesis observers' keys, in genesis order."""
    return [compute_address(suite, bytes.fromhex(o.public_key)) for o in genesis.observers]
