"""Events into the consensus core and actions out of it (consensus spec, "Sans-IO interface").

The driver (the node, or the simulator) turns the world into events and carries out the
actions in order. Ordering is a safety rule: a `PersistSafetyData` (and `PersistBlock`,
`PersistCert`) must be durably complete before any later `Send`/`Broadcast` of the same step
leaves the node. Messages in `MessageReceived` have passed the verifier stage (structure,
membership, signatures); the core never sees an unverified message.
"""

from __future__ import annotations

from dataclasses import dataclass

from taihang.consensus.messages import ConsensusMessage, SafetyData
from taihang.ledger.block import Block, QuorumCert, TimeoutCert

TimerId = tuple[str, int]  # (kind, round): ("round", r) for the round timer, ("propose", r) ...


@dataclass(frozen=True, slots=True)
class Started:
    now_ms: int


@dataclass(frozen=True, slots=True)
class MessageReceived:
    now_ms: int
    sender: str  # the peer's validator address
    message: ConsensusMessage


@dataclass(frozen=True, slots=True)
class TimerFired:
    now_ms: int
    timer: TimerId


@dataclass(frozen=True, slots=True)
class BlockExecuted:
    now_ms: int
    height: int
    state_root: bytes
    receipts_root: bytes


Event = Started | MessageReceived | TimerFired | BlockExecuted


@dataclass(frozen=True, slots=True)
class PersistSafetyData:
    data: SafetyData


@dataclass(frozen=True, slots=True)
class PersistBlock:
    block: Block


@dataclass(frozen=True, slots=True)
class PersistCert:
    cert: QuorumCert | TimeoutCert


@dataclass(frozen=True, slots=True)
class Send:
    to: str
    message: ConsensusMessage


@dataclass(frozen=True, slots=True)
class Broadcast:
    message: ConsensusMessage  # to every other validator


@dataclass(frozen=True, slots=True)
class SetTimer:
    timer: TimerId
    at_ms: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: TimerId


@dataclass(frozen=True, slots=True)
class Commit:
    blocks: list[Block]  # newly committed, in height order
    proof: QuorumCert  # the QC on B1 whose parent (the last block here) it commits


@dataclass(frozen=True, slots=True)
class RequestBlocks:
    peer: str
    block_id: bytes
    count: int


@dataclass(frozen=True, slots=True)
class Equivocation:
    """Two signed messages of one validator for the same round that conflict."""

    author: str
    round: int
    kind: str  # "vote" or "proposal"
    first: ConsensusMessage
    second: ConsensusMessage


@dataclass(frozen=True, slots=True)
class ReportEvidence:
    evidence: Equivocation


Action = (
    PersistSafetyData
    | PersistBlock
    | PersistCert
    | Send
    | Broadcast
    | SetTimer
    | CancelTimer
    | Commit
    | RequestBlocks
    | ReportEvidence
)
