"""The event trace: one JSON object a line, byte-identical for the same seed, flags and code.

Theory of operation: the engine records every step (the event a node handled and the actions
it returned) and every injected fault, in the order it processes them. A line holds only
values that the seed determines: simulated time (ms since the start), node indices, message
kinds and rounds, heights, and short digests of message bytes and block ids. Nothing depends
on the process: keys are sorted, no `hash()`, no wall clock. With the "sm" suite signatures
are randomised (OpenSSL draws the nonce), so digests and block ids, which cover signatures,
are masked as "*"; the rest of an sm trace still compares.

A sink takes the encoded lines: `FileSink` writes them, `HashSink` keeps only their SHA-256,
which is what the determinism test compares across processes.
"""

from __future__ import annotations

import hashlib
import json
from typing import IO, Any, Protocol

from taihang.consensus.events import (
    Action,
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
    TimerFired,
)
from taihang.consensus.messages import (
    BlockRequest,
    BlockResponse,
    ConsensusMessage,
    Proposal,
    TimeoutMsg,
    Vote,
)
from taihang.ledger.block import QuorumCert

MASK = "*"
DIGEST_HEX_CHARS = 16


class TraceSink(Protocol):
    def write(self, line: bytes) -> None: ...


class HashSink:
    """Keeps the SHA-256 of everything written (and the line count)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.lines = 0

    def write(self, line: bytes) -> None:
        self._hash.update(line)
        self.lines += 1

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class FileSink:
    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def write(self, line: bytes) -> None:
        self._file.write(line)


class Trace:
    """Encodes records canonically (sorted keys, no spaces) into a sink."""

    __slots__ = ("mask", "names", "sink")

    def __init__(self, sink: TraceSink, *, mask: bool) -> None:
        self.sink = sink
        self.mask = mask  # signatures are randomised: hide what covers them
        self.names: dict[str, int] = {}  # validator address -> node index, for short lines

    def name(self, address: str) -> int | str:
        return self.names.get(address, address)

    def record(self, record: dict[str, Any]) -> None:
        encoded = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        self.sink.write(encoded.encode() + b"\n")

    def digest(self, data: bytes) -> str:
        return MASK if self.mask else hashlib.sha256(data).hexdigest()[:DIGEST_HEX_CHARS]

    def short_id(self, block_id: bytes) -> str:
        return MASK if self.mask else block_id.hex()[:DIGEST_HEX_CHARS]

    def describe_event(self, event: Event) -> list[Any]:
        if isinstance(event, MessageReceived):
            return ["recv", self.name(event.sender), *self.describe_message(event.message)]
        if isinstance(event, TimerFired):
            return ["timer", *event.timer]
        return [type(event).__name__]  # Started, BlockExecuted: their fields are in the step

    def describe_message(self, message: ConsensusMessage) -> list[Any]:
        if isinstance(message, Proposal):
            header = message.block.header
            return ["proposal", header.round, header.height]
        if isinstance(message, Vote):
            return ["vote", message.vote_data.round, self.short_id(message.vote_data.block_id)]
        if isinstance(message, TimeoutMsg):
            return ["timeout", message.timeout.round, message.timeout.hqc_round]
        if isinstance(message, BlockRequest):
            return ["request", self.short_id(message.block_id), message.count]
        if isinstance(message, BlockResponse):
            return ["response", self.short_id(message.request_id), len(message.blocks)]
        raise AssertionError(f"unknown message {type(message).__name__}")

    def describe_action(self, action: Action) -> list[Any]:
        if isinstance(action, Send):
            return ["send", self.name(action.to), *self.describe_message(action.message)]
        if isinstance(action, Broadcast):
            return ["broadcast", *self.describe_message(action.message)]
        if isinstance(action, SetTimer):
            return ["set_timer", *action.timer, action.at_ms]
        if isinstance(action, CancelTimer):
            return ["cancel_timer", *action.timer]
        if isinstance(action, PersistSafetyData):
            data = action.data
            return ["persist_safety", data.last_voted_round, data.one_chain_round]
        if isinstance(action, PersistBlock):
            return ["persist_block", action.block.header.height, action.block.header.round]
        if isinstance(action, PersistCert):
            kind = "qc" if isinstance(action.cert, QuorumCert) else "tc"
            cert_round = (
                action.cert.vote_data.round
                if isinstance(action.cert, QuorumCert)
                else action.cert.round
            )
            return ["persist_cert", kind, cert_round]
        if isinstance(action, Commit):
            heights = [b.header.height for b in action.blocks]
            return ["commit", heights[0] if heights else None, heights[-1] if heights else None]
        if isinstance(action, RequestBlocks):
            return [
                "request_blocks",
                self.name(action.peer),
                self.short_id(action.block_id),
                action.count,
            ]
        if isinstance(action, ReportEvidence):
            evidence = action.evidence
            return ["evidence", evidence.kind, self.name(evidence.author), evidence.round]
        raise AssertionError(f"unknown action {type(action).__name__}")
