"""Byzantine validators: wrappers around a node's outbound messages.

Theory of operation: a Byzantine node runs the real, unmodified core; only what it *sends* is
tampered with. `ByzantineWrapper.mutate` takes one message the core asked to send and the peers
it goes to, and returns the messages that actually leave, each with its targets. Messages a node
sends to itself are passed through untouched (the wrapper sits on the network side). The
wrapper holds the node's key, so it can sign conflicting or out-of-place messages that verify.

Behaviours (each Byzantine node draws one or two with the plan; the summary counts each by
name, per injected message):

* `equivocate`: as leader, a second block with another payload, signed with the node's key,
  goes to half of the peers and the core's block to the other half;
* `withhold`: the node's own votes and timeouts are dropped;
* `invalid_signatures`: half of the node's signed messages leave with a corrupted signature;
* `replay`: old messages (sent or received) go again to random peers, some votes re-signed
  for another channel id;
* `future_spam`: validly signed votes and timeouts with round + 10**6, the timeouts carrying a
  bogus high QC;
* `stale_proposal`: as leader after a TC, the core's block is replaced by a well-signed block
  re-justified with a QC older than the TC's highest hqc_round (one of the three highest such
  QCs whose block the node saw), sent with the node's own vote for it; honest voters must
  refuse it by rule 3;
* `clock_skew`: the node's own proposals leave with their timestamp moved by U[-500, +500] ms
  and re-signed; honest nodes hold, refuse or accept them by the timestamp rule.

One behaviour is not a wrapper: `twin` (Twins in random mode). The node runs as two simulated
instances holding its key, each with its own disk, core, timers and payload source, both live
in the cluster under the run's fault plan; the second instance (`n + k` for the k-th twinned
node) sends what its core sends, untampered, and stands on the other side of every partition
from the first, so each side may count the key's vote. The two may sign conflicting proposals,
votes and timeouts in one round. The engine builds the instance (`Simulation`, through the
binding's `validator_of`); this module only draws it: `draw_twins` adds `twin` to a Byzantine
node's behaviours with probability `TWIN_PROBABILITY`, from a side RNG forked off the run's
RNG state after the other draws (`fork_rng`), so the run's own RNG is not advanced and every
seed that draws no twin runs exactly as before the behaviour existed. The summary counts
`twin` (instances added), `twin_sent` (messages the second instances sent) and `twin_conflict`
(rounds in which the two instances of one key signed different votes, timeouts or proposals).

Honest receivers drop (and the engine counts as `rejected`) whatever fails decoding or
verification; everything else reaches their cores, which must cope. All randomness comes from
the run's RNG, so a Byzantine seed replays bit for bit.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Final

import msgspec

from taihang.consensus.messages import (
    BlockResponse,
    ConsensusMessage,
    Proposal,
    SyncInfo,
    TimeoutMsg,
    TimeoutSign,
    Vote,
    compute_proposal_message,
    compute_timeout_message,
)
from taihang.ledger.block import (
    Block,
    BlockHeader,
    QuorumCert,
    VoteData,
    compute_block_id,
    compute_tx_root,
    compute_vote_message,
)
from taihang.sim.cluster import Cluster

# The behaviours the wrapper injects; each Byzantine node draws one or two of them.
WRAPPER_BEHAVIOURS: Final = (
    "equivocate",
    "withhold",
    "invalid_signatures",
    "replay",
    "future_spam",
    "stale_proposal",
    "clock_skew",
)
TWIN: Final = "twin"  # a second instance with the node's key (drawn apart: `draw_twins`)
TWIN_SENT: Final = "twin_sent"  # messages the second instances sent
TWIN_CONFLICT: Final = "twin_conflict"  # (kind, round)s the two instances signed differently
BEHAVIOURS: Final = (*WRAPPER_BEHAVIOURS, TWIN)
TWIN_KINDS: Final = (TWIN, TWIN_SENT, TWIN_CONFLICT)  # counted only in runs with a twin
TWIN_PROBABILITY: Final = 0.2  # per Byzantine node: about as often as one wrapper behaviour
REJECTED: Final = "rejected"  # messages from Byzantine senders that honest receivers dropped
BYZANTINE_KINDS: Final = (*WRAPPER_BEHAVIOURS, REJECTED)
CORRUPT_PROBABILITY: Final = 0.5
REPLAY_PROBABILITY: Final = 0.25
RESIGN_PROBABILITY: Final = 0.3  # of replays: a vote re-signed for another channel id
SPAM_PROBABILITY: Final = 0.1
FUTURE_ROUNDS: Final = 10**6
HISTORY_MAX: Final = 64
OTHER_CHANNEL: Final = "sim-other"
CLOCK_SKEW_MS: Final = 500  # the spec's clock skew: +-500 ms on the proposer's timestamps
STALE_CHOICES: Final = 3  # a stale proposal extends one of the 3 highest QCs below the bound
KNOWN_MAX: Final = 256  # blocks (and their QCs) a stale proposer remembers

Outbound = list[tuple[ConsensusMessage, list[int]]]


def draw_byzantine(
    rng: random.Random, nodes: int, count: int, wiped: tuple[int, ...]
) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """`count` Byzantine nodes (not wiped ones), each with one or two behaviours."""
    candidates = [i for i in range(nodes) if i not in wiped]
    chosen = sorted(rng.sample(candidates, count))
    return tuple(
        (node, tuple(sorted(rng.sample(WRAPPER_BEHAVIOURS, rng.randint(1, 2))))) for node in chosen
    )


def draw_twins(
    rng: random.Random, byzantine: tuple[tuple[int, tuple[str, ...]], ...]
) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """Add `twin` to each Byzantine node's behaviours with probability `TWIN_PROBABILITY`.

    `rng` should be a side RNG (`fork_rng`): drawing from the run's own would shift every later
    draw of every Byzantine seed, twin or not.
    """
    return tuple(
        (node, tuple(sorted((*kinds, TWIN))) if rng.random() < TWIN_PROBABILITY else kinds)
        for node, kinds in byzantine
    )


def fork_rng(rng: random.Random, label: bytes) -> random.Random:
    """An RNG seeded from `rng`'s state and `label`, leaving `rng` where it was.

    The state is a tuple of ints, so its repr, and the SHA-256 of it, are the same in every
    process; a bytes seed is hashed by `random` itself, never by `hash()`.
    """
    digest = hashlib.sha256(label + repr(rng.getstate()).encode()).digest()
    return random.Random(digest)


def _author(message: ConsensusMessage) -> str | None:
    if isinstance(message, (Vote, TimeoutMsg)):
        return message.author
    if isinstance(message, Proposal):
        return message.block.header.proposer
    return None


def _round(message: ConsensusMessage) -> int:
    if isinstance(message, Vote):
        return message.vote_data.round
    if isinstance(message, TimeoutMsg):
        return message.timeout.round
    if isinstance(message, Proposal):
        return message.block.header.round
    return 0


def _corrupt(message: ConsensusMessage) -> ConsensusMessage:
    """The same message with its signature's first byte flipped."""
    assert isinstance(message, (Vote, TimeoutMsg, Proposal))
    signature = message.signature
    bad = bytes([signature[0] ^ 0xFF]) + signature[1:] if signature else b"\x00"
    return msgspec.structs.replace(message, signature=bad)


class ByzantineWrapper:
    """The outbound tampering of every Byzantine node of one run."""

    def __init__(
        self,
        byzantine: tuple[tuple[int, tuple[str, ...]], ...],
        cluster: Cluster,
        rng: random.Random,
        counts: dict[str, int],
        record: Callable[[str, int], None] | None = None,
    ) -> None:
        self.behaviours = {node: frozenset(kinds) for node, kinds in byzantine}
        self._cluster = cluster
        self._rng = rng
        self._counts = counts
        self._record = record  # the trace's fault line, one per injected fault
        self._history: dict[int, list[ConsensusMessage]] = {node: [] for node, _ in byzantine}
        self._rounds = dict.fromkeys(self.behaviours, 0)
        self._forged = 0
        stale = [node for node, kinds in byzantine if "stale_proposal" in kinds]
        self._blocks: dict[int, dict[bytes, Block]] = {node: {} for node in stale}
        self._qcs: dict[int, dict[bytes, QuorumCert]] = {node: {} for node in stale}

    def is_byzantine(self, node: int) -> bool:
        return node in self.behaviours

    def observe(self, node: int, message: ConsensusMessage) -> None:
        """Remember a message `node` received or sent (material for replays)."""
        history = self._history[node]
        history.append(message)
        if len(history) > HISTORY_MAX:
            del history[0]
        self._rounds[node] = max(self._rounds[node], _round(message))
        if node in self._blocks:
            self._learn(node, message)

    def mutate(self, node: int, message: ConsensusMessage, targets: list[int]) -> Outbound:
        """What actually leaves when `node`'s core sends `message` to `targets`."""
        behaviours = self.behaviours[node]
        own = [t for t in targets if t == node]
        peers = [t for t in targets if t != node]
        out: Outbound = [(message, own)] if own else []
        if peers:
            out += self._tamper(node, behaviours, message, peers)
            if "replay" in behaviours:
                out += self._replay(node)
            if "future_spam" in behaviours:
                out += self._future_spam(node)
        self.observe(node, message)
        return out

    # --- behaviours ---------------------------------------------------------------------
    def _tamper(
        self, node: int, behaviours: frozenset[str], message: ConsensusMessage, peers: list[int]
    ) -> Outbound:
        mine = _author(message) == self._cluster.address(node)
        if not mine:
            return [(message, peers)]
        if "withhold" in behaviours and isinstance(message, (Vote, TimeoutMsg)):
            self._count("withhold", node)
            return []
        own_vote: Outbound = []
        if isinstance(message, Proposal):
            message, own_vote = self._reshape_proposal(node, behaviours, message, peers)
        out: Outbound = [(message, peers)]
        if "equivocate" in behaviours and isinstance(message, Proposal) and len(peers) >= 2:
            shuffled = list(peers)
            self._rng.shuffle(shuffled)
            half = len(shuffled) // 2
            out = [
                (message, sorted(shuffled[:half])),
                (self._conflict(node, message), sorted(shuffled[half:])),
            ]
            self._count("equivocate", node)
        if "invalid_signatures" in behaviours:
            out = [(self._maybe_corrupt(node, m), t) for m, t in out]
        return out + own_vote

    def _reshape_proposal(
        self, node: int, behaviours: frozenset[str], proposal: Proposal, peers: list[int]
    ) -> tuple[Proposal, Outbound]:
        """The stale re-justification and the timestamp skew of the node's own proposal.

        A stale block also comes with the node's own vote for it (its core voted for the block
        it built), so that honest votes for it can complete a QC.
        """
        header = proposal.block.header
        stale = None
        if "stale_proposal" in behaviours:
            stale = self._find_stale_header(node, header)
        if stale is not None:
            header = stale
            self._count("stale_proposal", node)
        if "clock_skew" in behaviours:
            skew_ms = self._rng.randint(-CLOCK_SKEW_MS, CLOCK_SKEW_MS)
            header = msgspec.structs.replace(header, timestamp_ms=header.timestamp_ms + skew_ms)
            self._count("clock_skew", node)
        if header is proposal.block.header:
            return proposal, []
        block = msgspec.structs.replace(proposal.block, header=header)
        block_id = self._block_id(block)
        signature = self._sign(node, compute_proposal_message(block_id))
        reshaped = Proposal(block=block, signature=signature, sync=proposal.sync)
        if stale is None:
            return reshaped, []
        data = VoteData(
            channel=header.channel,
            epoch=header.epoch,
            round=header.round,
            block_id=block_id,
            height=header.height,
            parent_id=header.parent_id,
            parent_round=header.qc.vote_data.round,
        )
        return reshaped, [(self._signed_vote(node, data), peers)]

    def _find_stale_header(self, node: int, header: BlockHeader) -> BlockHeader | None:
        """The header re-justified by a QC below the TC's highest hqc_round, if one is known."""
        tc = header.tc
        if tc is None or not tc.entries:
            return None
        bound = max(entry.hqc_round for entry in tc.entries)
        blocks = self._blocks[node]
        older = sorted(
            (qc for block_id, qc in self._qcs[node].items() if block_id in blocks),
            key=lambda qc: qc.vote_data.round,
        )
        older = [qc for qc in older if qc.vote_data.round < bound][-STALE_CHOICES:]
        if not older:
            return None
        qc = older[self._rng.randrange(len(older))]
        parent = blocks[qc.vote_data.block_id].header
        return msgspec.structs.replace(
            header,
            qc=qc,
            parent_id=qc.vote_data.block_id,
            height=qc.vote_data.height + 1,
            timestamp_ms=max(header.timestamp_ms, parent.timestamp_ms + 1),
            exec_root=parent.exec_root,
        )

    def _learn(self, node: int, message: ConsensusMessage) -> None:
        """Keep the blocks and QCs a stale proposer may re-justify a block with."""
        qcs = self._qcs[node]
        if isinstance(message, Proposal):
            self._keep_block(node, message.block)
            qcs[message.block.header.qc.vote_data.block_id] = message.block.header.qc
            qcs[message.sync.highest_qc.vote_data.block_id] = message.sync.highest_qc
        elif isinstance(message, TimeoutMsg):
            qcs[message.high_qc.vote_data.block_id] = message.high_qc
        elif isinstance(message, BlockResponse):
            for block, qc in zip(message.blocks, message.qcs, strict=False):
                self._keep_block(node, block)
                qcs[qc.vote_data.block_id] = qc
        for known in (self._blocks[node], qcs):
            while len(known) > KNOWN_MAX:
                del known[next(iter(known))]

    def _keep_block(self, node: int, block: Block) -> None:
        self._blocks[node][self._block_id(block)] = block

    def _block_id(self, block: Block) -> bytes:
        return compute_block_id(self._cluster.suite, block.header)

    def _maybe_corrupt(self, node: int, message: ConsensusMessage) -> ConsensusMessage:
        if self._rng.random() >= CORRUPT_PROBABILITY:
            return message
        self._count("invalid_signatures", node)
        return _corrupt(message)

    def _conflict(self, node: int, proposal: Proposal) -> Proposal:
        """A second valid block for the same round and parent, with another payload."""
        suite = self._cluster.suite
        self._forged += 1
        transactions = [f"byz/{node}/{self._forged}".encode()]
        header = msgspec.structs.replace(
            proposal.block.header, tx_root=compute_tx_root(suite, transactions)
        )
        block = msgspec.structs.replace(proposal.block, header=header, transactions=transactions)
        block_id = compute_block_id(suite, header)
        signature = self._sign(node, compute_proposal_message(block_id))
        return Proposal(block=block, signature=signature, sync=proposal.sync)

    def _replay(self, node: int) -> Outbound:
        history = self._history[node]
        rng = self._rng
        if not history or rng.random() >= REPLAY_PROBABILITY:
            return []
        old = history[rng.randrange(len(history))]
        target = self._random_peer(node)
        if isinstance(old, Vote) and rng.random() < RESIGN_PROBABILITY:
            data = msgspec.structs.replace(old.vote_data, channel=OTHER_CHANNEL)
            old = self._signed_vote(node, data)
        self._count("replay", node)
        return [(old, [target])]

    def _future_spam(self, node: int) -> Outbound:
        rng = self._rng
        if rng.random() >= SPAM_PROBABILITY:
            return []
        round_ = self._rounds[node] + FUTURE_ROUNDS
        suite = self._cluster.suite
        data = VoteData(
            channel=self._cluster.channel,
            epoch=0,
            round=round_,
            block_id=suite.hash(f"future/{node}/{round_}".encode()),
            height=round_,
            parent_id=suite.hash(b"future-parent"),
            parent_round=round_ - 1,
        )
        self._count("future_spam", node)
        if rng.random() < 0.5:
            return [(self._signed_vote(node, data), [self._random_peer(node)])]
        return [(self._bogus_timeout(node, data), [self._random_peer(node)])]

    def _bogus_timeout(self, node: int, data: VoteData) -> TimeoutMsg:
        """A validly signed far-future timeout whose high QC has garbage signatures."""
        nodes = self._cluster.size
        bogus_qc = QuorumCert(
            vote_data=data,
            signers=bytes([0xFF] * ((nodes + 7) // 8)),
            signatures=[bytes(32)] * nodes,
        )
        timeout = TimeoutSign(
            channel=self._cluster.channel, epoch=0, round=data.round + 1, hqc_round=data.round
        )
        signature = self._sign(node, compute_timeout_message(timeout))
        address = self._cluster.address(node)
        sync = SyncInfo(highest_qc=bogus_qc, highest_tc=None, highest_commit=None)
        return TimeoutMsg(
            timeout=timeout, high_qc=bogus_qc, author=address, signature=signature, sync=sync
        )

    # --- helpers --------------------------------------------------------------------------
    def _count(self, kind: str, node: int) -> None:
        self._counts[kind] += 1
        if self._record is not None:
            self._record(kind, node)

    def _signed_vote(self, node: int, data: VoteData) -> Vote:
        signature = self._sign(node, compute_vote_message(data))
        return Vote(vote_data=data, author=self._cluster.address(node), signature=signature)

    def _sign(self, node: int, message: bytes) -> bytes:
        return self._cluster.suite.sign(self._cluster.key_seeds[node], message)

    def _random_peer(self, node: int) -> int:
        peer = self._rng.randrange(self._cluster.size - 1)
        return peer + 1 if peer >= node else peer


class TwinCounter:
    """The `twin` counts of a run: instances added (`twin`), messages the second instances sent
    (`twin_sent`), and `twin_conflict`: a (key, kind, round) that two instances of one key
    signed with different contents (another block voted for or proposed, another timeout)."""

    def __init__(self, cluster: Cluster, counts: dict[str, int], twinned: int) -> None:
        self._cluster = cluster
        self._counts = counts
        counts.update(dict.fromkeys(TWIN_KINDS, 0), **{TWIN: twinned})
        self._first: dict[tuple[str, str, int], tuple[int, bytes]] = {}  # -> (instance, content)
        self._conflicts: set[tuple[str, str, int]] = set()

    def count_sent(self) -> None:
        self._counts[TWIN_SENT] += 1

    def observe(self, instance: int, address: str, message: ConsensusMessage) -> None:
        """Note one message the core of `instance` (holding `address`'s key) sent, before any
        wrapper touches it."""
        if _author(message) != address:
            return  # block sync, or another validator's message passed on
        key = (address, type(message).__name__, _round(message))
        content = self._content(message)
        first = self._first.setdefault(key, (instance, content))
        if first[0] != instance and first[1] != content and key not in self._conflicts:
            self._conflicts.add(key)
            self._counts[TWIN_CONFLICT] += 1

    def _content(self, message: ConsensusMessage) -> bytes:
        if isinstance(message, Vote):
            return message.vote_data.block_id
        if isinstance(message, TimeoutMsg):
            return message.timeout.hqc_round.to_bytes(8, "big")
        assert isinstance(message, Proposal)
        return compute_block_id(self._cluster.suite, message.block.header)
