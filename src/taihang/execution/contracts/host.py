"""The `ctx` object a contract sees, over the `ContractHost` the executor provides.

The executor implements `ContractHost` over its overlay (storage confined to the contract's
namespace, keys sorted for scans), the block context and the cross-contract dispatcher. Values
cross the boundary as canonical bytes in both directions: a read decodes a fresh object, so a
contract can never mutate a cached value in place, and a write is validated and sized by the
same encoder that the state root uses. Every method here checks sizes and charges gas before it
asks the host for anything. A `@view` call gets the same objects with `read_only` set: writes,
events and calls of `@public` methods raise `ReadOnlyError`.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol

import msgspec

from taihang.codec import Value, decode_value, encode_value
from taihang.constants import NAME_CHARS_MAX
from taihang.errors import DecodeError
from taihang.execution.contracts import gas
from taihang.execution.contracts.errors import (
    InvalidValue,
    LimitExceeded,
    OutOfGas,
    ReadOnlyError,
    Revert,
)
from taihang.execution.contracts.runtime import Runtime
from taihang.execution.contracts.wrappers import HostObject
from taihang.ledger.receipt import Event

ErrorKind = Literal["reverted", "out_of_gas", "limit", "error"]


class CallResult(NamedTuple):
    """What one contract call produced. `error` is None on success, else (kind, message).

    A named tuple: immutable like a frozen dataclass, and several times cheaper to build,
    which a call pays every time.
    """

    return_value: Value
    gas_used: int
    events: tuple[Event, ...]
    error: tuple[ErrorKind, str] | None

    @property
    def is_ok(self) -> bool:
        return self.error is None


class CalleeFailed(Exception):
    """A cross-contract call failed with an `error`-kind result; the caller fails with it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ContractHost(Protocol):
    """What the executor provides to one contract call. All data is canonical bytes."""

    @property
    def sender(self) -> str: ...
    @property
    def org(self) -> str: ...
    @property
    def roles(self) -> tuple[str, ...]: ...
    @property
    def contract(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def height(self) -> int: ...
    @property
    def timestamp_ms(self) -> int: ...
    @property
    def tx_id(self) -> bytes: ...

    def storage_get(self, key: str) -> bytes | None:
        """The canonical bytes stored at `key` in this contract's namespace, or None."""
        ...

    def storage_set(self, key: str, raw: bytes) -> None: ...

    def storage_delete(self, key: str) -> None: ...

    def storage_items(self, prefix: str, limit: int) -> tuple[list[tuple[str, bytes]], int]:
        """At most `limit` entries whose keys start with `prefix`, in ascending key order, and
        how many entries the scan examined to find them (keys deleted in this block count)."""
        ...

    def call(
        self, contract: str, method: str, args: list[Value], gas_limit: int, depth: int, view: bool
    ) -> CallResult:
        """Run `contract.method(args)` in this transaction (writes revert together)."""
        ...

    def hash(self, data: bytes) -> bytes:
        """The channel suite's hash."""
        ...

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool: ...


def encode_checked(value: Value, limit_bytes: int, what: str) -> bytes:
    try:
        raw = encode_value(value)
    except DecodeError:
        raise InvalidValue(what) from None
    if len(raw) > limit_bytes:
        raise LimitExceeded(what)
    return raw


def _check_name(value: Value, what: str) -> str:
    if type(value) is not str or not 0 < len(value) <= NAME_CHARS_MAX:
        raise InvalidValue(what)
    return value


class Storage(HostObject):
    __slots__ = ("host", "read_only", "rt")
    ATTRIBUTES = frozenset({"get", "set", "delete", "has", "items"})

    def __init__(self, rt: Runtime, host: ContractHost, *, read_only: bool) -> None:
        self.rt = rt
        self.host = host
        self.read_only = read_only

    def _key(self, key: Value) -> str:
        if type(key) is not str:
            raise InvalidValue("storage key")
        size = len(key.encode())
        if size > gas.STORAGE_KEY_BYTES_MAX:
            raise LimitExceeded("storage key")
        self.rt.meter.charge(gas.STORAGE_READ + gas.for_bytes(size))
        return key

    def get(self, key: Value, default: Value = None) -> Value:
        raw = self.host.storage_get(self._key(key))
        if raw is None:
            return default
        value = decode_value(raw)  # bounded by the value size limit; its walks priced here
        self.rt.meter.charge(gas.for_bytes(len(raw)) + gas.CODEC_ITEM * self.rt.measure(value))
        return value

    def has(self, key: Value) -> bool:
        return self.host.storage_get(self._key(key)) is not None

    def set(self, key: Value, value: Value) -> None:
        if self.read_only:
            raise ReadOnlyError
        checked = self._key(key)
        self.rt.meter.charge(gas.STORAGE_WRITE + self.rt.measure(value))
        raw = encode_checked(value, gas.STORAGE_VALUE_BYTES_MAX, "storage value")
        self.rt.meter.charge(gas.STORAGE_WRITE_PER_BYTE * len(raw))
        self.host.storage_set(checked, raw)

    def delete(self, key: Value) -> None:
        if self.read_only:
            raise ReadOnlyError
        checked = self._key(key)
        self.rt.meter.charge(gas.STORAGE_WRITE)
        self.host.storage_delete(checked)

    def items(self, prefix: Value, limit: Value = 100) -> list[tuple[str, Value]]:
        if type(limit) is not int or not 0 < limit <= gas.STORAGE_SCAN_LIMIT_MAX:
            raise InvalidValue("scan limit")
        checked = self._key(prefix)
        self.rt.meter.charge(limit * gas.STORAGE_SCAN_ITEM)
        entries, examined = self.host.storage_items(checked, limit)
        # Entries examined beyond the limit were hidden by this block's deletes: still work.
        self.rt.meter.charge(max(0, examined - limit) * gas.STORAGE_SCAN_ITEM)
        self.rt.meter.charge(gas.for_bytes(sum(len(k.encode()) + len(raw) for k, raw in entries)))
        found = [(k, decode_value(raw)) for k, raw in entries]
        self.rt.meter.charge(gas.CODEC_ITEM * self.rt.measure(found))
        return found


class Crypto(HostObject):
    __slots__ = ("host", "rt")
    ATTRIBUTES = frozenset({"hash", "verify"})

    def __init__(self, rt: Runtime, host: ContractHost) -> None:
        self.rt = rt
        self.host = host

    def hash(self, data: Value) -> bytes:
        if type(data) is not bytes:
            raise TypeError
        self.rt.meter.charge(gas.HASH + gas.for_bytes(len(data)))
        return self.host.hash(data)

    def verify(self, public_key: Value, message: Value, signature: Value) -> bool:
        if not all(type(v) is bytes for v in (public_key, message, signature)):
            raise TypeError
        self.rt.meter.charge(gas.VERIFY + gas.for_bytes(len(message)))
        return bool(self.host.verify(public_key, message, signature))


class Context(HostObject):
    """`ctx`: the caller, the block, storage, events, calls and crypto."""

    __slots__ = (
        "channel", "contract", "crypto", "height", "host", "org", "roles", "rt", "sender",
        "storage", "timestamp_ms", "tx_id",
    )  # fmt: skip
    ATTRIBUTES = frozenset(
        {"sender", "org", "roles", "contract", "channel", "height", "timestamp_ms", "tx_id"}
        | {"storage", "crypto", "emit", "call"}
    )

    def __init__(self, rt: Runtime, host: ContractHost) -> None:
        self.rt = rt
        self.storage = Storage(rt, host, read_only=rt.view)
        self.crypto = Crypto(rt, host)
        self.bind(host)

    def bind(self, host: ContractHost) -> None:
        """Serve a new call of this context's runtime (reset first) for `host`.

        A runtime serves one call at a time and nothing of a call outlives it, so its context
        is reused rather than rebuilt.
        """
        self.host = host
        self.storage.host = host
        self.storage.read_only = self.rt.view
        self.crypto.host = host
        # The caller and block facts, copied once: contract code reads them often, and cannot
        # assign attributes (the checker refuses it).
        self.sender = host.sender
        self.org = host.org
        self.roles = tuple(host.roles)
        self.contract = host.contract
        self.channel = host.channel
        self.height = host.height
        self.timestamp_ms = host.timestamp_ms
        self.tx_id = host.tx_id

    def emit(self, name: Value, data: Value = None) -> None:
        if self.rt.view:
            raise ReadOnlyError
        checked = _check_name(name, "event name")
        self.rt.meter.charge(gas.EVENT + gas.CODEC_ITEM * self.rt.measure(data))
        raw = encode_checked(data, gas.EVENT_BYTES_MAX, "event data")
        self.rt.meter.charge(gas.for_bytes(len(raw)))
        event = Event(contract=self.host.contract, name=checked, data=msgspec.Raw(raw))
        self.rt.events.append(event)

    def call(self, contract: Value, method: Value, args: Value = ()) -> Value:
        target = _check_name(contract, "contract name")
        name = _check_name(method, "method name")
        if type(args) not in (list, tuple):
            raise TypeError
        self.rt.meter.charge(gas.CROSS_CALL + gas.CODEC_ITEM * self.rt.measure(args))
        copied = decode_value(encode_checked(list(args), gas.RETURN_BYTES_MAX, "call arguments"))
        meter = self.rt.meter
        result = self.host.call(target, name, copied, meter.remaining, self.rt.depth, self.rt.view)
        meter.charge(result.gas_used)
        if result.error is not None:
            raise_callee_error(*result.error)
        self.rt.events.extend(result.events)
        meter.charge(gas.CODEC_ITEM * self.rt.measure(result.return_value))
        return decode_value(encode_checked(result.return_value, gas.RETURN_BYTES_MAX, "return"))


def raise_callee_error(kind: ErrorKind, message: str) -> None:
    """Fail the caller the way its callee failed: the whole transaction reverts together."""
    if kind == "out_of_gas":
        raise OutOfGas
    if kind == "limit":
        raise LimitExceeded(message)
    if kind == "reverted":
        raise Revert(message)
    raise CalleeFailed(message)
