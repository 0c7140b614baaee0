"""Typed results of the REST API. Contract values (args, return values, event data) arrive
in their JSON form and are converted to contract values (bytes from `{"$bytes": hex}`)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from taihang.codec import value_from_json


class Status(msgspec.Struct, frozen=True):
    node: str
    channel: str
    crypto: str
    genesis_hash: str
    validator: str
    height: int
    executed_height: int
    mempool_size: int
    version: str
    uptime_ms: int
    # Consensus, as the node sees it; the defaults let older nodes' answers parse.
    round: int = 0
    leader: str | None = None  # the validator address leading the current round
    peers: list[str] = []  # names of the nodes it is connected to
    last_commit_ms: int | None = None  # wall-clock ms of its last commit since it started


class Event(msgspec.Struct):
    contract: str
    name: str
    data: Any

    def __post_init__(self) -> None:
        self.data = value_from_json(self.data)


class Receipt(msgspec.Struct):
    tx_id: str
    status: Literal["ok", "reverted", "out_of_gas", "rejected"]
    gas_used: int
    return_value: Any
    events: list[Event]
    error_message: str

    def __post_init__(self) -> None:
        self.return_value = value_from_json(self.return_value)

    @property
    def is_ok(self) -> bool:
        return self.status == "ok"


class TxInfo(msgspec.Struct):
    id: str
    sender: str
    channel: str
    nonce: int
    contract: str
    method: str
    args: list[Any]
    gas_limit: int
    expires_at_height: int
    sender_public_key: str
    signature: str
    tx: str  # base64 envelope
    invalid: str | None = None  # why it does not decode (a Byzantine proposer's bytes); else None

    def __post_init__(self) -> None:
        self.args = value_from_json(self.args)


class TxStatus(msgspec.Struct, frozen=True):
    """A transaction as the node knows it: committed (with receipt) or pending."""

    id: str
    status: Literal["committed", "pending"]
    height: int | None = None
    index: int | None = None
    transaction: TxInfo | None = None
    receipt: Receipt | None = None

    @property
    def is_committed(self) -> bool:
        return self.status == "committed"


class Problem(msgspec.Struct, frozen=True):
    code: str
    detail: str


class SubmitResult(msgspec.Struct, frozen=True):
    """One answer of a batch submit: an id, or the error for that transaction."""

    id: str | None = None
    error: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.id is not None


class Block(msgspec.Struct, frozen=True):
    id: str
    height: int
    parent_id: str
    header: dict[str, Any]
    tx_count: int
    transactions: list[TxInfo] = []


class BlockPage(msgspec.Struct, frozen=True):
    blocks: list[Block]
    next_cursor: int | None


class BlockReceipts(msgspec.Struct, frozen=True):
    height: int
    receipts: list[Receipt]


class StateRead(msgspec.Struct):
    contract: str
    key: str
    state_key: str
    value: Any
    value_bytes: str | None
    height: int
    state_root: str
    hash: str = "sha256"  # the state tree's hash function: "sha256" or "sm3"
    proof: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.value = value_from_json(self.value)


class Account(msgspec.Struct):
    address: str
    nonce: int
    next_nonce: int
    member: dict[str, Any] | None

    def __post_init__(self) -> None:
        if self.member is not None:
            self.member = value_from_json(self.member)


class QueryResult(msgspec.Struct):
    result: Any
    height: int

    def __post_init__(self) -> None:
        self.result = value_from_json(self.result)
