"""Safety and liveness checks, run while the simulation runs and once at its end.

Theory of operation: `SafetyMonitor` sees every committed block and every message a node
sends, as the driver carries out the actions, so a violation stops the run at the step that
caused it, with the simulated time and the node in the report.

* Prefix agreement: the first node to commit height h fixes its block id; every other commit at
  h, on any node and in any life of it, must name the same id. As each ledger is a chain of
  consecutive heights (checked too: a commit must continue the node's ledger from its tip),
  this is pairwise prefix agreement of all ledgers at O(1) per commit.
* The commit rule, judged from each honest `Commit`: its proof must be a QC on a block that
  directly follows the last block committed (parent_id is that block, parent_round + 1 ==
  round: the 2-chain rule with consecutive rounds), else `commit_without_2chain`. A commit on a
  non-consecutive 2-chain may never meet a conflicting branch in 300 seeds, so agreement
  alone would miss the bug (relab/hotstuff#249).
* No double vote: two different `VoteData` authored by one validator for one round. Re-sending
  the identical vote is allowed (the spec asks for it after a restart).
* The signing rules, judged from what each validator signed across all lives of its node
  (a re-send of an identical message is never new): a new vote must be in a round above every
  round the author voted or timed out in before (rule 2; a vote after a timeout of the same
  round is reported as `vote_after_timeout`); a new timeout must not be for a round below one
  the author signed in, and its QC must be at least as high as the highest QC round in a block
  the author voted for (`one_chain_round`, the implicit lock). These are the spec's MUST rules,
  so a broken or skipped `PersistSafetyData` shows up as soon as a restart makes a node forget.
* Rule 3, judged from the wire: the engine shows the monitor every proposal justified by a TC
  (`observe_proposal`, any sender); a vote for such a block whose QC round is below the TC's
  highest hqc_round is `vote_breaks_rule_3` (the spec's "honest nodes refuse" for stale
  proposals; a block never seen on the wire is not judged).
* A wiped node (its safety data lost) signs nothing: no vote, timeout or proposal of its own.
* Core assertions and other exceptions out of `handle`, decode failures of messages a core
  produced, and verifier rejections of them are violations too (raised by the engine); with
  only crash and network faults every message on the wire comes from honest code.

Liveness is checked after the healed phase: every node that holds its keys and its disk must
have committed at least `LIVENESS_COMMITS_MIN` blocks after healing.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from taihang.consensus.messages import ConsensusMessage, Proposal, TimeoutMsg, TimeoutSign, Vote
from taihang.ledger.block import BlockHeader, QuorumCert, VoteData

LIVENESS_COMMITS_MIN: Final = 3
TC_BLOCKS_MAX: Final = 1_024  # TC-justified blocks remembered for the rule-3 check
VIOLATION_KINDS: Final = (
    "agreement",
    "commit_gap",
    "commit_without_2chain",
    "double_vote",
    "vote_after_timeout",
    "vote_round_regression",
    "vote_breaks_rule_3",
    "timeout_round_regression",
    "timeout_below_lock",
    "wiped_node_signed",
    "core_assertion",
    "core_exception",
    "decode_error",
    "rejected_message",
    "liveness",
    "runaway",
)


class Violation(Exception):
    """A broken safety or liveness property: the seed failed."""

    def __init__(self, kind: str, detail: str, *, node: int | None = None) -> None:
        assert kind in VIOLATION_KINDS, kind
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.node = node
        self.elapsed_ms: int | None = None  # filled in by the engine

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "detail": self.detail,
            "node": self.node,
            "elapsed_ms": self.elapsed_ms,
        }


@dataclass(frozen=True, slots=True)
class Progress:
    """One node's commits at the heal and at the end, for the liveness check."""

    node: int
    at_heal: int
    at_end: int


@dataclass(slots=True)
class SignerRecord:
    """What one validator has signed so far, across all lives of its node."""

    vote_round_max: int = 0
    timeout_round_max: int = 0
    lock_round: int = 0  # one_chain_round: the highest QC round in a block it voted for
    votes: dict[int, VoteData] = field(default_factory=dict)  # by round
    timeouts: dict[int, TimeoutSign] = field(default_factory=dict)  # by round


class SafetyMonitor:
    __slots__ = ("_committed", "_signers", "_tc_bounds")

    def __init__(self) -> None:
        self._committed: dict[int, bytes] = {}
        self._signers: dict[str, SignerRecord] = {}
        # block id -> the highest hqc_round of its TC, for blocks whose round skips their QC's
        self._tc_bounds: OrderedDict[bytes, int] = OrderedDict()

    def observe_proposal(self, block_id: bytes, header: BlockHeader) -> None:
        """Remember the rule-3 bound of a block on the wire that a TC justifies."""
        tc = header.tc
        if tc is None or not tc.entries or header.round == header.qc.vote_data.round + 1:
            return
        self._tc_bounds[block_id] = max(entry.hqc_round for entry in tc.entries)
        if len(self._tc_bounds) > TC_BLOCKS_MAX:
            self._tc_bounds.popitem(last=False)

    def check_commit(self, node: int, height: int, block_id: bytes) -> None:
        known = self._committed.setdefault(height, block_id)
        if known != block_id:
            raise Violation(
                "agreement",
                f"node {node} committed {block_id.hex()[:16]} at height {height}, "
                f"another node committed {known.hex()[:16]}",
                node=node,
            )

    def check_outgoing(
        self, node: int, address: str, message: ConsensusMessage, *, wiped: bool
    ) -> None:
        """Inspect one message `node` sends (`wiped`: it runs without safety data)."""
        if isinstance(message, Vote):
            author = message.author
            self._check_vote(node, self._get_signer(author), author, message.vote_data)
        elif isinstance(message, TimeoutMsg):
            author = message.author
            self._check_timeout(node, self._get_signer(author), author, message.timeout)
        elif isinstance(message, Proposal):
            author = message.block.header.proposer
        else:
            return
        if wiped and author == address:
            raise Violation(
                "wiped_node_signed",
                f"node {node} lost its safety data but sent a signed {type(message).__name__}",
                node=node,
            )

    def _get_signer(self, author: str) -> SignerRecord:
        record = self._signers.get(author)
        if record is None:
            record = self._signers[author] = SignerRecord()
        return record

    def check_commit_proof(self, node: int, head_id: bytes, proof: QuorumCert) -> None:
        """The commit of `head_id` must be proven by a QC on a child of the next round."""
        data = proof.vote_data
        if data.parent_id != head_id or data.parent_round + 1 != data.round:
            raise Violation(
                "commit_without_2chain",
                f"node {node} committed {head_id.hex()[:16]} on a QC of round {data.round} "
                f"for a child of {data.parent_id.hex()[:16]} (round {data.parent_round})",
                node=node,
            )

    def _check_vote(self, node: int, signer: SignerRecord, author: str, data: VoteData) -> None:
        first = signer.votes.get(data.round)
        if first is not None:
            if first != data:
                raise Violation(
                    "double_vote",
                    f"{author} voted twice in round {data.round}: for "
                    f"{first.block_id.hex()[:16]} and {data.block_id.hex()[:16]}",
                    node=node,
                )
            return  # the same vote again: a legitimate re-send (rule 4)
        if data.round <= signer.timeout_round_max:
            raise Violation(
                "vote_after_timeout",
                f"{author} voted in round {data.round} after signing a timeout for round "
                f"{signer.timeout_round_max}",
                node=node,
            )
        if data.round <= signer.vote_round_max:
            raise Violation(
                "vote_round_regression",
                f"{author} voted in round {data.round} after voting in round "
                f"{signer.vote_round_max} (rule 2)",
                node=node,
            )
        bound = self._tc_bounds.get(data.block_id)
        if bound is not None and data.parent_round < bound:
            raise Violation(
                "vote_breaks_rule_3",
                f"{author} voted in round {data.round} for a block whose QC round "
                f"{data.parent_round} is below its TC's highest hqc_round {bound}",
                node=node,
            )
        signer.votes[data.round] = data
        signer.vote_round_max = data.round
        signer.lock_round = max(signer.lock_round, data.parent_round)

    def _check_timeout(
        self, node: int, signer: SignerRecord, author: str, timeout: TimeoutSign
    ) -> None:
        if signer.timeouts.get(timeout.round) == timeout:
            return  # re-broadcast of the timeout it signed before
        last_round = max(signer.vote_round_max, signer.timeout_round_max)
        if timeout.round < last_round:
            raise Violation(
                "timeout_round_regression",
                f"{author} signed a timeout for round {timeout.round} after signing in round "
                f"{last_round}",
                node=node,
            )
        if timeout.hqc_round < signer.lock_round:
            raise Violation(
                "timeout_below_lock",
                f"{author} timed out round {timeout.round} with a QC of round "
                f"{timeout.hqc_round}, below the QC round {signer.lock_round} it voted on",
                node=node,
            )
        signer.timeouts[timeout.round] = timeout
        signer.timeout_round_max = max(signer.timeout_round_max, timeout.round)


def check_liveness(progress: list[Progress]) -> None:
    """Raise `Violation` unless every listed node committed enough blocks after healing."""
    stuck = [p for p in progress if p.at_end - p.at_heal < LIVENESS_COMMITS_MIN]
    if stuck:
        described = ", ".join(
            f"node {p.node}: {p.at_heal} -> {p.at_end}" for p in sorted(stuck, key=lambda p: p.node)
        )
        raise Violation(
            "liveness",
            f"fewer than {LIVENESS_COMMITS_MIN} commits after healing ({described})",
            node=stuck[0].node,
        )


def is_live(progress: list[Progress]) -> bool:
    return all(p.at_end - p.at_heal >= LIVENESS_COMMITS_MIN for p in progress)
