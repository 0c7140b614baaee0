"""What a contract call sees: the caller, the block, its own storage and gas."""

from __future__ import annotations

from typing import Protocol

from taihang.codec import Value
from taihang.crypto import CryptoSuite
from taihang.errors import ContractReverted
from taihang.execution import gas
from taihang.execution.gas import GasMeter
from taihang.execution.state import Overlay, state_key
from taihang.ledger.receipt import Event, build_event


class CallContext:
    """One transaction's view: storage confined to `contract`, charged to `meter`."""

    __slots__ = (
        "channel",
        "contract",
        "events",
        "height",
        "meter",
        "overlay",
        "sender",
        "suite",
        "timestamp_ms",
        "tx_id",
    )

    def __init__(
        self,
        *,
        overlay: Overlay,
        meter: GasMeter,
        contract: str,
        sender: str,
        channel: str,
        height: int,
        timestamp_ms: int,
        tx_id: bytes,
        suite: CryptoSuite,
    ) -> None:
        self.suite = suite
        self.overlay = overlay
        self.meter = meter
        self.contract = contract
        self.sender = sender
        self.channel = channel
        self.height = height
        self.timestamp_ms = timestamp_ms
        self.tx_id = tx_id
        self.events: list[Event] = []

    def read(self, key: str, default: Value = None) -> Value:
        self.meter.charge(gas.READ)
        return self.overlay.get(state_key(self.contract, key), default)

    def read_other(self, namespace: str, key: str, default: Value = None) -> Value:
        """A read of another namespace (system data such as membership); still charged."""
        self.meter.charge(gas.READ)
        return self.overlay.get(state_key(namespace, key), default)

    def write(self, key: str, value: Value) -> None:
        self.meter.charge(gas.WRITE)
        size = self.overlay.set(state_key(self.contract, key), value)
        self.meter.charge(size * gas.WRITE_PER_BYTE)

    def delete(self, key: str) -> None:
        self.meter.charge(gas.WRITE)
        self.overlay.delete(state_key(self.contract, key))

    def emit(self, name: str, data: Value) -> None:
        self.meter.charge(gas.EVENT)
        self.events.append(build_event(self.contract, name, data))


class ViewContext:
    """A read-only view for queries: reads are free and writes are refused."""

    __slots__ = ("contract", "overlay", "sender")

    def __init__(self, overlay: Overlay, contract: str, sender: str = "") -> None:
        self.overlay = overlay
        self.contract = contract
        self.sender = sender

    def read(self, key: str, default: Value = None) -> Value:
        return self.overlay.get(state_key(self.contract, key), default)

    def read_other(self, namespace: str, key: str, default: Value = None) -> Value:
        return self.overlay.get(state_key(namespace, key), default)


class Contract(Protocol):
    """A contract as the executor sees it; built-ins and the Python runtime both fit."""

    @property
    def name(self) -> str: ...

    def call(self, ctx: CallContext, method: str, args: list[Value]) -> Value:
        """Run a state-changing method; raise `ContractError` subclasses to fail."""
        ...

    def view(self, ctx: ViewContext, method: str, args: list[Value]) -> Value:
        """Answer a read-only query."""
        ...


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractReverted(message)
