"""The signing guard: the only holder of the consensus key (consensus spec, "SafetyRules").

Theory of operation: Jolteon's safety rests on three integers and the last messages signed,
kept in `SafetyData`:

* `last_voted_round`: the highest round this key voted or timed out in. A vote needs a higher
  round (rule 2); a timeout needs a round at least as high. Signing a timeout raises it, so the
  key never votes in a round it gave up on.
* `one_chain_round`: the highest QC round inside a block this key voted for (the implicit
  lock). A timeout must carry a QC at least that high, so any TC that forms carries a QC at
  least as high as every honest signer's lock.
* `last_vote` and `last_timeout`: asked again for the same round, the guard hands back the
  message it already signed (rule 4), never a different one; after a restart the node re-sends
  them instead of signing anew.

The guard checks each rule, signs, updates its record and returns the message together with
the new record; the caller must persist that record durably before the message leaves the node
(the core emits `PersistSafetyData` before the `Send`). A refusal raises `SafetyViolation` and
leaves the record unchanged. A guard created without a record (`safety=None`: the record was
lost, i.e. amnesia) refuses to sign anything, because it can no longer tell which rounds it
already signed in; the key may sign again only in a later epoch.

The guard trusts its caller for what it cannot check without the validator set and the suite
(signatures inside certificates, block hashing): the core only hands it verified messages.
"""

from __future__ import annotations

from typing import Protocol

from taihang.consensus.messages import (
    SafetyData,
    SyncInfo,
    TimeoutMsg,
    TimeoutSign,
    Vote,
    compute_proposal_message,
    compute_timeout_message,
)
from taihang.errors import TaihangError
from taihang.ledger.block import (
    BlockHeader,
    QuorumCert,
    TimeoutCert,
    VoteData,
    compute_vote_message,
)


class Signer(Protocol):
    """Signs with the node's consensus key (a seed, a hardware key, a key agent)."""

    def sign(self, message: bytes) -> bytes: ...


class SafetyViolation(TaihangError):
    """Signing this would break a safety rule; nothing was signed."""

    code = "safety_violation"


class SafetyDataLost(SafetyViolation):
    """The guard has no safety record (amnesia), so it signs nothing in this epoch."""

    code = "safety_data_lost"


def build_initial_safety_data(epoch: int) -> SafetyData:
    """The record a new key starts with: it has signed nothing in `epoch`."""
    return SafetyData(
        epoch=epoch, last_voted_round=0, one_chain_round=0, last_vote=None, last_timeout=None
    )


class SigningGuard:
    """Applies the voting and timeout rules before the key signs anything."""

    __slots__ = ("_address", "_channel", "_epoch", "_refusal", "_safety", "_signer")

    def __init__(
        self,
        signer: Signer,
        address: str,
        safety: SafetyData | None,
        *,
        channel: str,
        epoch: int,
    ) -> None:
        self._signer = signer
        self._address = address
        self._channel = channel
        self._epoch = epoch
        self._refusal: str | None = None
        if safety is None:
            self._refusal = (
                f"validator {address} has no safety data (lost or never written): it cannot "
                "tell which rounds it already signed, so it refuses to sign in this epoch"
            )
        elif safety.epoch < epoch:
            safety = build_initial_safety_data(epoch)  # safety data resets per epoch
        elif safety.epoch > epoch:
            self._refusal = (
                f"safety data of validator {address} is for epoch {safety.epoch}, "
                f"ahead of epoch {epoch}: refusing to sign"
            )
            safety = None
        self._safety = safety

    @property
    def address(self) -> str:
        return self._address

    @property
    def safety(self) -> SafetyData | None:
        """The current record (None when the guard refuses to sign)."""
        return self._safety

    @property
    def can_sign(self) -> bool:
        return self._safety is not None

    def sign_proposal(self, block_id: bytes) -> bytes:
        """The proposer's signature over a block id (nothing to record: voters guard safety)."""
        self._require_safety()
        return self._signer.sign(compute_proposal_message(block_id))

    def sign_vote(
        self, block_header: BlockHeader, block_id: bytes, tc: TimeoutCert | None
    ) -> tuple[Vote, SafetyData]:
        """A vote for the block, by rules 2-4; `tc` must be the block's own TC."""
        safety = self._require_safety()
        header = block_header
        self._validate_context(header.channel, header.epoch)
        last = safety.last_vote
        if last is not None and last.vote_data.round == header.round:
            if last.vote_data.block_id == block_id:
                return last, safety  # rule 4: the same vote again, never another
            raise SafetyViolation(
                f"already voted for another block in round {header.round} (rule 4)"
            )
        if header.round <= safety.last_voted_round:
            raise SafetyViolation(
                f"round {header.round} is not above last voted round "
                f"{safety.last_voted_round} (rule 2)"
            )
        validate_block_justification(header, tc)
        vote_data = VoteData(
            channel=header.channel,
            epoch=header.epoch,
            round=header.round,
            block_id=block_id,
            height=header.height,
            parent_id=header.parent_id,
            parent_round=header.qc.vote_data.round,
        )
        vote = Vote(
            vote_data=vote_data,
            author=self._address,
            signature=self._signer.sign(compute_vote_message(vote_data)),
        )
        updated = SafetyData(
            epoch=safety.epoch,
            last_voted_round=header.round,
            one_chain_round=max(safety.one_chain_round, header.qc.vote_data.round),
            last_vote=vote,
            last_timeout=safety.last_timeout,
        )
        self._safety = updated
        return vote, updated

    def sign_timeout(
        self,
        round: int,
        high_qc: QuorumCert,
        high_tc: TimeoutCert | None,
        sync: SyncInfo,
    ) -> tuple[TimeoutMsg, SafetyData]:
        """A timeout for `round` carrying `high_qc`, by the timeout rule."""
        safety = self._require_safety()
        last = safety.last_timeout
        if last is not None and last.timeout.round == round:
            return last, safety  # re-broadcast the same timeout on every later expiry
        self._validate_context(high_qc.vote_data.channel, high_qc.vote_data.epoch)
        hqc_round = high_qc.vote_data.round
        follows_tc = high_tc is not None and round == high_tc.round + 1
        if round != hqc_round + 1 and not follows_tc:
            raise SafetyViolation(
                f"timeout round {round} follows neither the high QC (round {hqc_round}) "
                "nor the high TC"
            )
        if hqc_round < safety.one_chain_round:
            raise SafetyViolation(
                f"high QC round {hqc_round} is below one-chain round {safety.one_chain_round}"
            )
        if round < safety.last_voted_round:
            raise SafetyViolation(
                f"timeout round {round} is below last voted round {safety.last_voted_round}"
            )
        timeout = TimeoutSign(
            channel=self._channel, epoch=self._epoch, round=round, hqc_round=hqc_round
        )
        message = TimeoutMsg(
            timeout=timeout,
            high_qc=high_qc,
            author=self._address,
            signature=self._signer.sign(compute_timeout_message(timeout)),
            sync=sync,
        )
        updated = SafetyData(
            epoch=safety.epoch,
            last_voted_round=max(safety.last_voted_round, round),
            one_chain_round=safety.one_chain_round,
            last_vote=safety.last_vote,
            last_timeout=message,
        )
        self._safety = updated
        return message, updated

    def _require_safety(self) -> SafetyData:
        if self._safety is None:
            assert self._refusal is not None
            raise SafetyDataLost(self._refusal)
        return self._safety

    def _validate_context(self, channel: str, epoch: int) -> None:
        if channel != self._channel or epoch != self._epoch:
            raise SafetyViolation(
                f"asked to sign for channel {channel!r} epoch {epoch}, "
                f"but this guard signs for {self._channel!r} epoch {self._epoch}"
            )


def validate_block_justification(header: BlockHeader, tc: TimeoutCert | None) -> None:
    """Rule 3 (and the links it needs): raise `SafetyViolation` unless the block is justified.

    `B.round == B.qc.round + 1`, or `B.round == B.tc.round + 1` and `B.qc.round` is at least
    every hqc_round of the TC: after a TC a proposal must extend a QC at least as high as any
    signer's, so it cannot skip a block some honest node may have committed.
    """
    qc_data = header.qc.vote_data
    if tc is not header.tc and tc != header.tc:
        raise SafetyViolation("the TC given is not the block's own TC")
    if qc_data.block_id != header.parent_id or header.height != qc_data.height + 1:
        raise SafetyViolation("the block's QC does not certify its parent")
    if not qc_data.round < header.round:
        raise SafetyViolation(f"QC round {qc_data.round} is not below block round {header.round}")
    if header.round == qc_data.round + 1:
        return
    if tc is None:
        raise SafetyViolation(
            f"round {header.round} does not follow its QC (round {qc_data.round}) "
            "and the block has no TC (rule 3)"
        )
    if header.round != tc.round + 1:
        raise SafetyViolation(
            f"round {header.round} follows neither its QC nor its TC (round {tc.round}) (rule 3)"
        )
    if tc.channel != header.channel or tc.epoch != header.epoch:
        raise SafetyViolation("the block's TC is for another channel or epoch")
    if not tc.entries:
        raise SafetyViolation("the block's TC has no entries")
    hqc_round_max = max(entry.hqc_round for entry in tc.entries)
    if qc_data.round < hqc_round_max:
        raise SafetyViolation(
            f"QC round {qc_data.round} is below the TC's highest hqc_round {hqc_round_max} (rule 3)"
        )
