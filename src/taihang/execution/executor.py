"""The executor: runs a committed block's transactions against the executed state.

Theory of operation: `Executor.execute_block` is a pure function of (state, block context,
transactions). For each transaction in block order it first applies the ledger rules that
the proposer could not guarantee (the sender is a member, the nonce is the next one, the
transaction has not expired, and its gas limit cannot take the block's gas used past
`BLOCK_GAS_LIMIT`, which honest proposers never do); a transaction failing them gets a
`rejected` receipt and changes nothing. Otherwise its nonce is consumed, whatever happens
next, and the call runs inside a checkpoint, whether the contract is a built-in or a deployed
Python contract (run through `lifecycle`): a `ContractError` rolls back the call's writes and
yields a `reverted` or `out_of_gas` receipt with a normalised message. The result is the
write set of the whole block (for the state tree) and one receipt per transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from taihang.codec import Value
from taihang.constants import BLOCK_GAS_LIMIT
from taihang.crypto import CryptoSuite
from taihang.errors import ContractError, InvalidInput, OutOfGas
from taihang.execution import gas
from taihang.execution.builtins import AssetContract, KvContract, MembersContract, get_member
from taihang.execution.context import CallContext, Contract, ViewContext
from taihang.execution.gas import GasMeter
from taihang.execution.lifecycle import ContractsContract, invoke_deployed, query_deployed
from taihang.execution.state import Overlay, StateReader, state_key
from taihang.ledger.receipt import Receipt, build_receipt
from taihang.ledger.transaction import Transaction


@dataclass(frozen=True, slots=True)
class BlockContext:
    channel: str
    height: int
    timestamp_ms: int


@dataclass(slots=True)
class BlockResult:
    receipts: list[Receipt]
    writes: dict[bytes, bytes | None]
    nonces: dict[str, int] = field(default_factory=dict)  # senders' next nonces after the block


def nonce_key(address: str) -> bytes:
    return state_key("nonces", address)


def builtin_contracts() -> dict[str, Contract]:
    contracts: list[Contract] = [
        MembersContract(),
        KvContract(),
        AssetContract(),
        ContractsContract(),
    ]
    return {c.name: c for c in contracts}


class BlockExecutor(Protocol):
    """What the chain runs blocks and queries on: `Executor` itself, or a worker process."""

    def execute_block(
        self, state: StateReader, block: BlockContext, txs: list[Transaction]
    ) -> BlockResult:
        """Execute `txs` over `state`, the executed state at `block.height - 1`."""
        ...

    def query(
        self,
        state: StateReader,
        contract: str,
        method: str,
        args: list[Value],
        *,
        base_height: int,
    ) -> Value:
        """Answer a read-only call over `state`, the executed state at `base_height`."""
        ...

    def close(self) -> None: ...


class Executor:
    """Executes blocks with a fixed table of contracts, in this process."""

    def __init__(self, suite: CryptoSuite, contracts: Mapping[str, Contract] | None = None) -> None:
        self.suite = suite
        self.contracts = dict(contracts) if contracts is not None else builtin_contracts()

    def execute_block(
        self,
        state: StateReader,
        block: BlockContext,
        txs: list[Transaction],
        *,
        on_tx_done: Callable[[int], None] | None = None,
    ) -> BlockResult:
        """`on_tx_done(count)` is called after each transaction (a worker's progress report)."""
        overlay = Overlay(state)
        receipts: list[Receipt] = []
        block_gas = 0  # gas used so far: a transaction may not take it past BLOCK_GAS_LIMIT
        for tx in txs:
            if block_gas + tx.body.gas_limit > BLOCK_GAS_LIMIT:
                message = f"block gas limit: the block has {BLOCK_GAS_LIMIT - block_gas} gas left"
                receipt = build_receipt(tx.id, "rejected", 0, error_message=message)
            else:
                receipt = self._execute_tx(overlay, block, tx)
                block_gas += receipt.gas_used
            receipts.append(receipt)
            if on_tx_done is not None:
                on_tx_done(len(receipts))
        nonces: dict[str, int] = {}
        for tx in txs:
            nonces[tx.sender] = overlay.get(nonce_key(tx.sender), 0)
        return BlockResult(receipts=receipts, writes=overlay.writes, nonces=nonces)

    def query(
        self,
        state: StateReader,
        contract: str,
        method: str,
        args: list[Value],
        *,
        base_height: int = 0,
    ) -> Value:
        return execute_query(self, state, contract, method, args)

    def close(self) -> None:
        pass  # nothing to release in-process

    def _reject_reason(self, overlay: Overlay, block: BlockContext, tx: Transaction) -> str:
        if tx.body.channel != block.channel:
            return f"transaction is for channel {tx.body.channel!r}"
        if tx.body.expires_at_height < block.height:
            return f"transaction expired at height {tx.body.expires_at_height}"
        member = overlay.get(state_key("members", f"member/{tx.sender}"))
        if member is None:
            return f"sender {tx.sender} is not a member"
        expected = overlay.get(nonce_key(tx.sender), 0)
        if tx.nonce != expected:
            return f"nonce {tx.nonce} is not the sender's next nonce {expected}"
        return ""

    def _execute_tx(self, overlay: Overlay, block: BlockContext, tx: Transaction) -> Receipt:
        reason = self._reject_reason(overlay, block, tx)
        if reason:
            return build_receipt(tx.id, "rejected", 0, error_message=reason)
        overlay.set(nonce_key(tx.sender), tx.nonce + 1)
        meter = GasMeter(tx.body.gas_limit)
        ctx = CallContext(
            overlay=overlay,
            meter=meter,
            contract=tx.body.contract,
            sender=tx.sender,
            channel=block.channel,
            height=block.height,
            timestamp_ms=block.timestamp_ms,
            tx_id=tx.id,
            suite=self.suite,
        )
        overlay.begin()
        try:
            meter.charge(gas.TX_BASE + gas.TX_PER_BYTE * tx.size)
            contract = self.contracts.get(tx.body.contract)
            if contract is None:  # a deployed Python contract, or none at all
                value = invoke_deployed(ctx, tx.body.method, tx.args)
            else:
                value = contract.call(ctx, tx.body.method, tx.args)
        except OutOfGas:
            overlay.rollback()
            return build_receipt(tx.id, "out_of_gas", meter.used, error_message="OutOfGas")
        except (ContractError, InvalidInput) as exc:
            overlay.rollback()
            return build_receipt(tx.id, "reverted", meter.used, error_message=exc.message)
        overlay.commit()
        return build_receipt(tx.id, "ok", meter.used, return_value=value, events=ctx.events)


def execute_query(
    executor: Executor, state: StateReader, contract: str, method: str, args: list[Value]
) -> Value:
    """Answer a read-only query; raises `ContractError` (e.g. no such contract or method)."""
    target = executor.contracts.get(contract)
    if target is None:
        return query_deployed(Overlay(state), executor.suite, contract, method, args)
    return target.view(ViewContext(Overlay(state), contract), method, args)


def find_member(state: StateReader, address: str) -> dict[str, Value] | None:
    return get_member(ViewContext(Overlay(state), "members"), address)


def get_account_nonce(state: StateReader, address: str) -> int:
    nonce = Overlay(state).get(nonce_key(address), 0)
    assert isinstance(nonce, int)
    return nonce
