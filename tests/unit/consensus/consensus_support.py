"""Helpers for the consensus tests: keys, certificates, and a tiny deterministic cluster driver.

`Cluster` wires n `ConsensusCore`s together in memory: a heap of timed events (ties broken by
a sequence number, so runs are reproducible), a fixed one-way delay, the verifier stage on
every delivery, a disk per node that the Persist actions write, and an executor that executes
committed blocks at once and reports `BlockExecuted`. Nodes can be crashed, restarted from
their disk, and cut off from each other. No simulator needed; the real one lives in
`taihang.sim`.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

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
)
from taihang.consensus.messages import (
    BlockRequest,
    ConsensusMessage,
    Proposal,
    SafetyData,
    SyncInfo,
    TimeoutMsg,
    TimeoutSign,
    Vote,
    compute_proposal_message,
    compute_timeout_message,
)
from taihang.consensus.safety import SigningGuard, build_initial_safety_data
from taihang.consensus.verify import MessageLimits, MessageVerifier
from taihang.constants import PROTOCOL_VERSION
from taihang.crypto import CryptoSuite, get_suite
from taihang.crypto.merkle import compute_root
from taihang.ledger.block import (
    ZERO_HASH,
    Block,
    BlockHeader,
    ExecRoot,
    QuorumCert,
    TimeoutCert,
    TimeoutEntry,
    Validator,
    ValidatorSet,
    VoteData,
    build_genesis_qc,
    compute_block_id,
    compute_tx_root,
    compute_vote_message,
    encode_signer_bitmap,
)
from taihang.ledger.transaction import compute_address

CHANNEL = "test"
START_MS = 1_700_000_000_000


class FastSuite:
    """A fake `CryptoSuite`: key = sha256(seed), signature = sha256(key || message)."""

    name = "fast"
    hash_name = "sha256"
    public_key_bytes = 32
    signature_bytes = 32
    signature_bytes_min = 32
    signature_bytes_max = 32
    seed_bytes = 32

    def hash(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def tagged_hash(self, tag: bytes, data: bytes) -> bytes:
        return hashlib.sha256(tag + data).digest()

    def public_key_from_seed(self, seed: bytes) -> bytes:
        return hashlib.sha256(seed).digest()

    def sign(self, seed: bytes, message: bytes) -> bytes:
        return hashlib.sha256(self.public_key_from_seed(seed) + message).digest()

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        return hashlib.sha256(public_key + message).digest() == signature


FAST = FastSuite()
ED25519 = get_suite("ed25519")


class SeedSigner:
    def __init__(self, suite: CryptoSuite, seed: bytes) -> None:
        self.suite = suite
        self.seed = seed

    def sign(self, message: bytes) -> bytes:
        return self.suite.sign(self.seed, message)


class Ed25519Signer:
    """Signs with a cached libsodium secret key (the suite re-derives it from the seed)."""

    def __init__(self, seed: bytes) -> None:
        from nacl import bindings

        self._bindings = bindings
        _, self._secret = bindings.crypto_sign_seed_keypair(seed)

    def sign(self, message: bytes) -> bytes:
        return bytes(self._bindings.crypto_sign(message, self._secret)[:64])


@dataclass
class Keys:
    """n validators: seeds and the set, both in address order (index i = validator i)."""

    suite: CryptoSuite
    seeds: list[bytes]
    validators: ValidatorSet

    @property
    def addresses(self) -> list[str]:
        return [v.address for v in self.validators.members]

    def signer(self, index: int) -> Any:
        if self.suite is ED25519:
            return Ed25519Signer(self.seeds[index])
        return SeedSigner(self.suite, self.seeds[index])

    def sign(self, index: int, message: bytes) -> bytes:
        return self.suite.sign(self.seeds[index], message)


def make_keys(n: int, suite: CryptoSuite = FAST, weights: list[int] | None = None) -> Keys:
    raw = [hashlib.sha256(b"key" + i.to_bytes(2, "big")).digest() for i in range(n)]
    weights = weights or [1] * n
    keyed = sorted(
        (compute_address(suite, suite.public_key_from_seed(s)), s, w)
        for s, w in zip(raw, weights, strict=True)
    )
    members = [
        Validator(address=a, public_key=suite.public_key_from_seed(s), weight=w)
        for a, s, w in keyed
    ]
    return Keys(suite, [s for _, s, _ in keyed], ValidatorSet(members, suite.tagged_hash))


def genesis_roots(suite: CryptoSuite) -> ExecRoot:
    empty = compute_root([], suite.hash)
    return ExecRoot(
        height=0, state_root=suite.tagged_hash(b"state", b"genesis"), receipts_root=empty
    )


def make_genesis(keys: Keys, channel: str = CHANNEL) -> Block:
    header = BlockHeader(
        protocol_version=PROTOCOL_VERSION,
        channel=channel,
        epoch=0,
        round=0,
        height=0,
        parent_id=ZERO_HASH,
        timestamp_ms=START_MS - 1_000,
        proposer="",
        tx_root=compute_root([], keys.suite.hash),
        exec_root=genesis_roots(keys.suite),
        validator_set_hash=keys.validators.hash,
        qc=build_genesis_qc(channel, ZERO_HASH),
    )
    return Block(header=header, transactions=[])


def make_config(**overrides: Any) -> ConsensusConfig:
    fields: dict[str, Any] = {
        "channel": CHANNEL,
        "round_timeout_base_ms": 300,
        "min_block_interval_ms": 10,
        "idle_block_interval_ms": 50,
        "network_allowance_ms": 100,
        "max_clock_drift_ms": 500,
        "block_request_retry_ms": 100,
    }
    fields.update(overrides)
    return ConsensusConfig(**fields)


# Certificates and messages built by hand (tests of the verifier, the guard, the pitfalls).


def sign_qc(keys: Keys, data: VoteData, signers: list[int]) -> QuorumCert:
    message = compute_vote_message(data)
    ordered = sorted(signers)
    return QuorumCert(
        vote_data=data,
        signers=encode_signer_bitmap(ordered, len(keys.seeds)),
        signatures=[keys.sign(i, message) for i in ordered],
    )


def sign_vote(keys: Keys, data: VoteData, signer: int) -> Vote:
    return Vote(
        vote_data=data,
        author=keys.addresses[signer],
        signature=keys.sign(signer, compute_vote_message(data)),
    )


def sign_tc(
    keys: Keys,
    round: int,
    high_qc: QuorumCert,
    hqc_rounds: dict[int, int],
    *,
    channel: str = CHANNEL,
    epoch: int = 0,
    entry_epochs: dict[int, int] | None = None,
) -> TimeoutCert:
    entries = []
    for signer in sorted(hqc_rounds):
        signed_epoch = (entry_epochs or {}).get(signer, epoch)
        timeout = TimeoutSign(
            channel=channel, epoch=signed_epoch, round=round, hqc_round=hqc_rounds[signer]
        )
        signature = keys.sign(signer, compute_timeout_message(timeout))
        entries.append(
            TimeoutEntry(signer=signer, hqc_round=hqc_rounds[signer], signature=signature)
        )
    return TimeoutCert(channel=channel, epoch=epoch, round=round, high_qc=high_qc, entries=entries)


def sign_timeout(
    keys: Keys, signer: int, round: int, high_qc: QuorumCert, sync: SyncInfo | None = None
) -> TimeoutMsg:
    hqc_round = high_qc.vote_data.round
    timeout = TimeoutSign(channel=CHANNEL, epoch=0, round=round, hqc_round=hqc_round)
    return TimeoutMsg(
        timeout=timeout,
        high_qc=high_qc,
        author=keys.addresses[signer],
        signature=keys.sign(signer, compute_timeout_message(timeout)),
        sync=sync or SyncInfo(highest_qc=high_qc, highest_tc=None, highest_commit=None),
    )


def vote_data_for(suite: CryptoSuite, header: BlockHeader) -> VoteData:
    return VoteData(
        channel=header.channel,
        epoch=header.epoch,
        round=header.round,
        block_id=compute_block_id(suite, header),
        height=header.height,
        parent_id=header.parent_id,
        parent_round=header.qc.vote_data.round,
    )


def make_child(
    keys: Keys,
    parent: Block,
    parent_qc: QuorumCert,
    *,
    round: int,
    proposer: int | None = None,
    tc: TimeoutCert | None = None,
    transactions: list[bytes] | None = None,
    timestamp_ms: int | None = None,
    exec_root: ExecRoot | None = None,
) -> Block:
    txs = transactions or []
    n = len(keys.seeds)
    header = BlockHeader(
        protocol_version=PROTOCOL_VERSION,
        channel=parent.header.channel,
        epoch=0,
        round=round,
        height=parent.header.height + 1,
        parent_id=parent_qc.vote_data.block_id,
        timestamp_ms=timestamp_ms or parent.header.timestamp_ms + 10,
        proposer=keys.addresses[proposer if proposer is not None else round % n],
        tx_root=compute_tx_root(keys.suite, txs),
        exec_root=exec_root or parent.header.exec_root,
        validator_set_hash=keys.validators.hash,
        qc=parent_qc,
        tc=tc,
    )
    return Block(header=header, transactions=txs)


# The cluster driver.


@dataclass
class Disk:
    safety: SafetyData | None = field(default_factory=lambda: build_initial_safety_data(0))
    blocks: dict[bytes, Block] = field(default_factory=dict)
    certs: list[QuorumCert | TimeoutCert] = field(default_factory=list)
    ledger: list[Block] = field(default_factory=list)
    ledger_ids: list[bytes] = field(default_factory=list)
    executed: list[ExecRoot] = field(default_factory=list)


class CountingPayload:
    """Offers `txs_per_block` synthetic transactions while `waiting` is positive."""

    def __init__(self, name: str, txs_per_block: int = 0, waiting: int = 0) -> None:
        self.name = name
        self.txs_per_block = txs_per_block
        self.waiting = waiting

    def has_payload(self) -> bool:
        return self.waiting > 0

    def get_payload(
        self, height: int, parent_id: bytes, max_txs: int, max_bytes: int
    ) -> list[bytes]:
        count = min(self.txs_per_block, self.waiting, max_txs)
        self.waiting -= count
        return [f"{self.name}/{height}/{i}".encode() for i in range(count)]


@dataclass
class Node:
    index: int
    disk: Disk = field(default_factory=Disk)
    core: ConsensusCore | None = None
    incarnation: int = 0
    timers: dict[tuple[str, int], int] = field(default_factory=dict)
    log: list[Action] = field(default_factory=list)  # every action, in order, all lives
    steps: list[list[Action]] = field(default_factory=list)  # the actions of each step
    evidence: list[ReportEvidence] = field(default_factory=list)
    payload: CountingPayload | None = None


class Cluster:
    def __init__(
        self,
        n: int = 4,
        *,
        suite: CryptoSuite = FAST,
        config: ConsensusConfig | None = None,
        delay_ms: int = 5,
        txs_per_block: int = 0,
        txs_waiting: int = 0,
        verify: bool = True,
        seed: int | None = None,
        jitter_ms: int = 0,
        drop: float = 0.0,
        duplicate: float = 0.0,
    ) -> None:
        self.keys = make_keys(n, suite)
        self.suite = suite
        self.config = config or make_config()
        self.genesis = make_genesis(self.keys, self.config.channel)
        self.genesis_id = compute_block_id(suite, self.genesis.header)
        self.delay_ms = delay_ms
        self.verify = verify
        self.now_ms = START_MS
        self.queue: list[tuple[int, int, int, int, Any]] = []
        self.seq = itertools.count()
        self.cut: set[tuple[int, int]] = set()  # (from, to) links that drop everything
        self.nodes = [Node(i) for i in range(n)]
        for node in self.nodes:
            node.payload = CountingPayload(f"n{node.index}", txs_per_block, txs_waiting)
        self.verifiers = [self._make_verifier() for _ in range(n)]
        self.rejected: list[tuple[int, str]] = []
        self.sent = 0
        self.rng = random.Random(seed)
        self.jitter_ms = jitter_ms
        self.drop = drop
        self.duplicate = duplicate
        self.skew_ms = [0] * n  # each node's clock runs this far ahead of the driver's

    @property
    def n(self) -> int:
        return len(self.nodes)

    def _make_verifier(self) -> MessageVerifier:
        return MessageVerifier(
            self.keys.validators,
            self.suite,
            channel=self.config.channel,
            epoch=self.config.epoch,
            genesis_id=self.genesis_id,
            limits=MessageLimits(
                self.config.block_txs_max,
                self.config.block_bytes_max,
                self.config.blocks_request_max,
            ),
        )

    def build_core(self, index: int, recovered: RecoveredState | None = None) -> ConsensusCore:
        node = self.nodes[index]
        address = self.keys.addresses[index]
        guard = SigningGuard(
            self.keys.signer(index),
            address,
            node.disk.safety,
            channel=self.config.channel,
            epoch=self.config.epoch,
        )
        assert node.payload is not None
        return ConsensusCore(
            config=self.config,
            validators=self.keys.validators,
            suite=self.suite,
            genesis_block=self.genesis,
            me=address,
            guard=guard,
            payload=node.payload,
            recovered=recovered,
        )

    def start(self, indices: list[int] | None = None) -> None:
        for index in indices if indices is not None else range(self.n):
            node = self.nodes[index]
            node.core = self.build_core(index)
            self._step(index, Started(self.clock(index)))

    def crash(self, index: int) -> None:
        node = self.nodes[index]
        node.core = None
        node.incarnation += 1
        node.timers = {}

    def recovered_state(self, index: int) -> RecoveredState:
        disk = self.nodes[index].disk
        qcs = [c for c in disk.certs if isinstance(c, QuorumCert)]
        tcs = [c for c in disk.certs if isinstance(c, TimeoutCert)]
        return RecoveredState(
            blocks=[*disk.blocks.values(), *disk.ledger],
            highest_qc=max(qcs, key=lambda q: q.vote_data.round) if qcs else None,
            highest_tc=max(tcs, key=lambda t: t.round) if tcs else None,
            committed_height=len(disk.ledger),
            committed_block_id=disk.ledger_ids[-1] if disk.ledger_ids else self.genesis_id,
            executed=list(disk.executed),
        )

    def restart(self, index: int) -> None:
        node = self.nodes[index]
        node.core = self.build_core(index, self.recovered_state(index))
        self._step(index, Started(self.clock(index)))

    # Running.

    def schedule(self, at_ms: int, index: int, event_kind: int, payload: Any) -> None:
        incarnation = self.nodes[index].incarnation
        heapq.heappush(
            self.queue, (at_ms, next(self.seq), index, incarnation, (event_kind, payload))
        )

    def run_until(self, end_ms: int) -> None:
        while self.queue and self.queue[0][0] <= end_ms:
            at_ms, _, index, incarnation, (kind, payload) = heapq.heappop(self.queue)
            self.now_ms = at_ms
            node = self.nodes[index]
            if node.core is None or incarnation != node.incarnation:
                continue
            if kind == 0:  # a message
                sender, message = payload
                self._deliver(index, sender, message)
            elif kind == 1:  # a timer
                timer, token = payload
                if node.timers.get(timer) == token:
                    del node.timers[timer]
                    self._step(index, TimerFired(self.clock(index), timer))
            else:  # an execution result
                self._step(index, payload)
        self.now_ms = max(self.now_ms, end_ms)

    def run_for(self, duration_ms: int) -> None:
        self.run_until(self.now_ms + duration_ms)

    def _deliver(self, index: int, sender: int, message: ConsensusMessage) -> None:
        if self.verify:
            try:
                self.verifiers[index].verify(message)
            except Exception as exc:  # the verifier stage drops it; tests inspect `rejected`
                self.rejected.append((index, f"{type(exc).__name__}: {exc}"))
                return
        self._step(index, MessageReceived(self.clock(index), self.keys.addresses[sender], message))

    def clock(self, index: int) -> int:
        """Node `index`'s clock: the driver's time plus its skew."""
        return self.now_ms + self.skew_ms[index]

    def inject(self, index: int, sender: int, message: ConsensusMessage) -> list[Action]:
        """Hand a message straight to a core (no verifier), returning its actions."""
        return self._step(index, MessageReceived(self.now_ms, self.keys.addresses[sender], message))

    def _step(self, index: int, event: Event) -> list[Action]:
        node = self.nodes[index]
        assert node.core is not None
        actions = node.core.handle(event)
        node.steps.append(actions)
        for action in actions:
            self._carry_out(index, action)
        return actions

    def _send(self, src: int, dst: int, message: ConsensusMessage) -> None:
        self.sent += 1
        if (src, dst) in self.cut:
            return
        copies = 1
        if self.drop or self.duplicate:  # draw only when asked, so plain runs stay identical
            if self.rng.random() < self.drop:
                return
            if self.rng.random() < self.duplicate:
                copies = 2
        for _ in range(copies):
            jitter = self.rng.randint(0, self.jitter_ms) if self.jitter_ms else 0
            self.schedule(self.now_ms + self.delay_ms + jitter, dst, 0, (src, message))

    def _carry_out(self, index: int, action: Action) -> None:
        node = self.nodes[index]
        node.log.append(action)
        disk = node.disk
        if isinstance(action, PersistSafetyData):
            disk.safety = action.data
        elif isinstance(action, PersistBlock):
            disk.blocks[compute_block_id(self.suite, action.block.header)] = action.block
        elif isinstance(action, PersistCert):
            disk.certs.append(action.cert)
        elif isinstance(action, Send):
            self._send(index, self.keys.addresses.index(action.to), action.message)
        elif isinstance(action, Broadcast):
            for other in range(self.n):
                if other != index:
                    self._send(index, other, action.message)
        elif isinstance(action, SetTimer):
            token = next(self.seq)
            node.timers[action.timer] = token
            at_ms = max(action.at_ms - self.skew_ms[index], self.now_ms)
            self.schedule(at_ms, index, 1, (action.timer, token))
        elif isinstance(action, CancelTimer):
            node.timers.pop(action.timer, None)
        elif isinstance(action, Commit):
            self._commit(index, action)
        elif isinstance(action, RequestBlocks):
            request = BlockRequest(block_id=action.block_id, count=action.count)
            self._send(index, self.keys.addresses.index(action.peer), request)
        elif isinstance(action, ReportEvidence):
            node.evidence.append(action)

    def _commit(self, index: int, action: Commit) -> None:
        disk = self.nodes[index].disk
        for block in action.blocks:
            assert block.header.height == len(disk.ledger) + 1, "commits continue the ledger"
            block_id = compute_block_id(self.suite, block.header)
            disk.ledger.append(block)
            disk.ledger_ids.append(block_id)
            previous = (
                disk.executed[-1].state_root
                if disk.executed
                else genesis_roots(self.suite).state_root
            )
            root = ExecRoot(
                height=block.header.height,
                state_root=self.suite.tagged_hash(b"state", previous + block_id),
                receipts_root=self.suite.tagged_hash(b"receipts", block_id),
            )
            disk.executed.append(root)
            event = BlockExecuted(
                self.clock(index) + 1, root.height, root.state_root, root.receipts_root
            )
            self.schedule(self.now_ms + 1, index, 2, event)

    # Checks.

    def committed_heights(self) -> list[int]:
        return [len(node.disk.ledger) for node in self.nodes]

    def check_agreement(self) -> None:
        """Every two ledgers agree on their common prefix."""
        longest = max((node.disk.ledger_ids for node in self.nodes), key=len)
        for node in self.nodes:
            ids = node.disk.ledger_ids
            assert ids == longest[: len(ids)], f"node {node.index} forked"

    def check_no_double_votes(self) -> None:
        seen: dict[tuple[str, int], VoteData] = {}
        for node in self.nodes:
            for action in node.log:
                message = getattr(action, "message", None)
                if isinstance(message, Vote):
                    key = (message.author, message.vote_data.round)
                    first = seen.setdefault(key, message.vote_data)
                    assert first == message.vote_data, f"double vote by {key}"


class ChainBuilder:
    """Certified blocks built by hand: each QC is signed by the first quorum of validators."""

    def __init__(self, keys: Keys, genesis: Block) -> None:
        self.keys = keys
        self.genesis = genesis
        self.genesis_id = compute_block_id(keys.suite, genesis.header)
        self.ids: dict[int, bytes] = {}  # id(block) -> block id, for blocks built here
        self.quorum = list(range(keys.validators.quorum_weight))

    def block_id(self, block: Block) -> bytes:
        return compute_block_id(self.keys.suite, block.header)

    def qc_of(self, block: Block, signers: list[int] | None = None) -> QuorumCert:
        if block.header.height == 0:
            return build_genesis_qc(block.header.channel, self.genesis_id)
        data = vote_data_for(self.keys.suite, block.header)
        return sign_qc(self.keys, data, signers if signers is not None else self.quorum)

    def child(self, parent: Block, round: int, **kwargs: Any) -> Block:
        return make_child(self.keys, parent, self.qc_of(parent), round=round, **kwargs)

    def chain(self, rounds: list[int]) -> list[Block]:
        """Blocks on genesis, one per round, each extending the previous with its QC."""
        blocks: list[Block] = []
        parent = self.genesis
        for round in rounds:
            parent = self.child(parent, round)
            blocks.append(parent)
        return blocks

    def proposal(self, block: Block, sync: SyncInfo | None = None) -> Proposal:
        proposer = self.keys.addresses.index(block.header.proposer)
        signature = self.keys.sign(proposer, compute_proposal_message(self.block_id(block)))
        sync = sync or SyncInfo(highest_qc=block.header.qc, highest_tc=None, highest_commit=None)
        return Proposal(block=block, signature=signature, sync=sync)


def make_core(
    keys: Keys,
    genesis: Block,
    *,
    index: int,
    recovered: RecoveredState | None = None,
    safety: SafetyData | str | None = "fresh",
    config: ConsensusConfig | None = None,
) -> ConsensusCore:
    """One validator's core outside any cluster (`safety=None`: it lost its safety data)."""
    address = keys.addresses[index]
    data = build_initial_safety_data(0) if safety == "fresh" else safety
    assert not isinstance(data, str)
    guard = SigningGuard(keys.signer(index), address, data, channel=CHANNEL, epoch=0)
    return ConsensusCore(
        config=config or make_config(),
        validators=keys.validators,
        suite=keys.suite,
        genesis_block=genesis,
        me=address,
        guard=guard,
        payload=CountingPayload(f"n{index}"),
        recovered=recovered,
    )


def votes_in(actions: list[Action]) -> list[Vote]:
    return [
        a.message
        for a in actions
        if isinstance(a, Send | Broadcast) and isinstance(a.message, Vote)
    ]


def timeouts_in(actions: list[Action]) -> list[TimeoutMsg]:
    return [
        a.message for a in actions if isinstance(a, Broadcast) and isinstance(a.message, TimeoutMsg)
    ]
