"""Vote and timeout aggregation into QCs and TCs (consensus spec, "Pacemaker", Pitfalls 8).

Theory of operation: the first vote of a validator in a round is the one that counts. A second,
different vote from the same author in the same round is equivocation: it is reported, never
counted, and never replaces the first (harmony#2610: an overwritten signature made the
aggregate invalid and halted the shard). Votes are tallied per `VoteData` (so every signature
in a QC signs the same bytes) and a QC is built once, when the tally first reaches the quorum
weight Q = floor(2W/3) + 1; signers appear in the bitmap and the signature list in validator
order, which is the canonical form `verify_qc` expects.

Timeouts are gathered for one round at a time, the node's current round (older ones can no
longer matter, newer ones are not justified by what the node has verified). The aggregator
reports the weight gathered, so the pacemaker can time out early at f+1 weight, and builds the
TC once at Q weight. The TC carries the highest of the QCs the timeouts carried, which is what
makes `max(hqc_round) == high_qc.round` hold.

Proposals follow the same rule: the first proposal of a leader in a round is the one handled,
and a different second one is evidence (`ProposalLog`).

Everything received is already verified (signatures, membership); this module only counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from taihang.consensus.events import Equivocation
from taihang.consensus.messages import Proposal, TimeoutMsg, Vote
from taihang.ledger.block import (
    QuorumCert,
    TimeoutCert,
    TimeoutEntry,
    ValidatorSet,
    VoteData,
    encode_signer_bitmap,
)


@dataclass(slots=True)
class _Tally:
    signatures: dict[int, bytes] = field(default_factory=dict)  # validator index -> signature
    weight: int = 0
    certified: bool = False


class VoteAggregator:
    """Votes per round and block until a QC forms; first vote per signer per round wins."""

    __slots__ = ("_first", "_reported", "_tallies", "_validators")

    def __init__(self, validators: ValidatorSet) -> None:
        self._validators = validators
        self._first: dict[tuple[int, str], Vote] = {}
        self._tallies: dict[VoteData, _Tally] = {}
        self._reported: set[tuple[int, str]] = set()  # membership tests only, never iterated

    def __len__(self) -> int:
        return len(self._first)

    def add(self, vote: Vote) -> tuple[QuorumCert | None, Equivocation | None]:
        """Count a verified vote: a new QC when it completes one, evidence when it conflicts."""
        data = vote.vote_data
        key = (data.round, vote.author)
        first = self._first.get(key)
        if first is not None:
            if first.vote_data == data:
                return None, None  # the same vote again (a re-send or a duplicate)
            if key in self._reported:
                return None, None
            self._reported.add(key)
            evidence = Equivocation(
                author=vote.author, round=data.round, kind="vote", first=first, second=vote
            )
            return None, evidence
        self._first[key] = vote
        index = self._validators.index_of(vote.author)
        tally = self._tallies.get(data)
        if tally is None:
            tally = self._tallies[data] = _Tally()
        tally.signatures[index] = vote.signature
        tally.weight += self._validators.members[index].weight
        if tally.certified or tally.weight < self._validators.quorum_weight:
            return None, None
        tally.certified = True
        return self._build_qc(data, tally), None

    def prune(self, round_min: int) -> None:
        """Forget votes for rounds below `round_min` (their QC no longer matters)."""
        for key in [k for k in self._first if k[0] < round_min]:
            del self._first[key]
            self._reported.discard(key)
        for data in [d for d in self._tallies if d.round < round_min]:
            del self._tallies[data]

    def _build_qc(self, data: VoteData, tally: _Tally) -> QuorumCert:
        indices = sorted(tally.signatures)
        return QuorumCert(
            vote_data=data,
            signers=encode_signer_bitmap(indices, len(self._validators.members)),
            signatures=[tally.signatures[i] for i in indices],
        )


class TimeoutAggregator:
    """Timeouts for the current round; first timeout per signer wins."""

    __slots__ = ("_certified", "_messages", "_validators", "round", "weight")

    def __init__(self, validators: ValidatorSet) -> None:
        self._validators = validators
        self.round = 0
        self.weight = 0
        self._messages: dict[int, TimeoutMsg] = {}  # validator index -> its timeout
        self._certified = False

    def reset(self, round: int) -> None:
        """Start gathering for `round`, forgetting the previous one."""
        self.round = round
        self.weight = 0
        self._messages = {}
        self._certified = False

    def has_timeout_from(self, author: str) -> bool:
        return self._validators.index_of(author) in self._messages

    def add(self, message: TimeoutMsg) -> TimeoutCert | None:
        """Count a verified timeout for the current round; the TC when it reaches Q weight."""
        assert message.timeout.round == self.round, "timeouts are gathered per current round"
        index = self._validators.index_of(message.author)
        if index in self._messages:
            return None
        self._messages[index] = message
        self.weight += self._validators.members[index].weight
        if self._certified or self.weight < self._validators.quorum_weight:
            return None
        self._certified = True
        return self._build_tc()

    def has_early_timeout_weight(self) -> bool:
        """f+1 weight (strictly more than W/3): at least one honest node gave up the round."""
        return 3 * self.weight > self._validators.total_weight

    def _build_tc(self) -> TimeoutCert:
        indices = sorted(self._messages)
        # The highest QC any signer carried; ties go to the lowest index (deterministic).
        best = max(indices, key=lambda i: (self._messages[i].timeout.hqc_round, -i))
        sample = self._messages[best].timeout
        return TimeoutCert(
            channel=sample.channel,
            epoch=sample.epoch,
            round=self.round,
            high_qc=self._messages[best].high_qc,
            entries=[
                TimeoutEntry(
                    signer=i,
                    hqc_round=self._messages[i].timeout.hqc_round,
                    signature=self._messages[i].signature,
                )
                for i in indices
            ],
        )


class ProposalLog:
    """The first proposal of each leader in each recent round, for equivocation evidence."""

    __slots__ = ("_first", "rounds_kept")

    def __init__(self, rounds_kept: int) -> None:
        self.rounds_kept = rounds_kept
        self._first: dict[tuple[int, str], tuple[bytes, Proposal]] = {}

    def record(self, proposal: Proposal, block_id: bytes) -> tuple[bool, Equivocation | None]:
        """(is it the first from its leader in its round, evidence if it conflicts)."""
        header = proposal.block.header
        key = (header.round, header.proposer)
        first = self._first.get(key)
        if first is None:
            self._first[key] = (block_id, proposal)
            return True, None
        if first[0] == block_id:
            return False, None  # the same proposal again
        evidence = Equivocation(
            author=header.proposer,
            round=header.round,
            kind="proposal",
            first=first[1],
            second=proposal,
        )
        return False, evidence

    def prune(self, current_round: int) -> None:
        for key in [k for k in self._first if k[0] < current_round - self.rounds_kept]:
            del self._first[key]
