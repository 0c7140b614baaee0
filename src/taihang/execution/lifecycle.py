"""The `contracts` system contract and the dispatch of deployed Python contracts.

Theory of operation (spec: shared/spec/contracts.md, Lifecycle; decision: docs/adr/0008).

- `deploy(name, source, version, init_args)` compiles the source on every node (a rejection
  reverts the transaction with the line and reason), records the contract under
  `contracts/contract/<name>` (source, source hash, version, deployer address and org, frozen
  flag), appends the name to the sorted `contracts/names` list, and runs `init` once, with the
  deploy's own gas, if the contract defines it. Any failure reverts the whole deploy.
- `upgrade(name, source, version)` replaces the code (state kept, `init` not run) and
  `freeze(name)` / `unfreeze(name)` toggle the frozen flag; each needs a member of the
  deployer's org. `get(name)` and `list()` answer queries, without the source.
- A transaction or query whose contract is not a built-in goes to `invoke_deployed` /
  `query_deployed`: `call_contract` over an `OverlayHost`, whose storage lives in the
  contract's own namespace (`state_key(name, key)`). Contract gas comes out of the
  transaction's `GasMeter`; a failed call raises `ContractReverted` or `OutOfGas`, so the
  executor's checkpoint drops its writes. A frozen contract refuses calls but still answers
  queries.
- A cross-contract call (`ctx.call`) runs in the same transaction and the same overlay; the
  callee sees the calling contract's name as `sender`, with no org and no roles, so a contract
  can never act as the transaction's signer elsewhere. Only deployed Python contracts can be
  called this way. The callee's failure fails the caller, and the executor rolls back both.
- Storage prefix scans (`ctx.storage.items(prefix, limit)`) read `Overlay.scan` over
  `state_key(name, prefix)`, so they see only the contract's own namespace (the `/` after the
  name keeps `tok` out of `token`), in ascending key-byte order, with the block's writes so far
  (earlier transactions' and this one's, deletes hidden). The runtime charges the gas.
"""

from __future__ import annotations

import re
from typing import Final

from taihang.codec import Value, decode_value, encode_value
from taihang.crypto import CryptoSuite
from taihang.errors import ContractReverted, OutOfGas
from taihang.execution.builtins import get_member
from taihang.execution.context import CallContext, ViewContext, require
from taihang.execution.contracts import (
    CallResult,
    CompiledContract,
    ContractCompileError,
    call_contract,
    compile_contract,
)
from taihang.execution.state import Overlay, state_key

NAMESPACE: Final = "contracts"
NAME_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
# Built-in contracts and system namespaces: a deployed contract must not share their storage.
RESERVED_NAMES: Final = ("asset", "contracts", "kv", "members", "nonces", "system", "validators")
VERSION_CHARS_MAX: Final = 64
SOURCE_CHARS_MAX: Final = 64 * 1024
DEPLOY_GAS: Final = 20_000
COMPILE_GAS_PER_BYTE: Final = 20
QUERY_GAS_LIMIT: Final = 1_000_000  # queries share the executor worker with blocks: keep it short
PUBLIC_FIELDS: Final = ("name", "version", "source_hash", "deployer", "org", "frozen")


def record_key(name: str) -> str:
    return f"contract/{name}"


def _str_arg(value: Value, what: str, chars_max: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= chars_max:
        raise ContractReverted(f"{what} must be a string of 1 to {chars_max} characters")
    return value


def _name_arg(value: Value) -> str:
    if not isinstance(value, str) or NAME_PATTERN.match(value) is None:
        raise ContractReverted(
            "name must be 1 to 64 characters of lowercase letters, digits and _,"
            " starting with a letter"
        )
    require(value not in RESERVED_NAMES, f"name {value!r} is reserved for a built-in")
    return value


def _compile(source: str) -> CompiledContract:
    try:
        return compile_contract(source)
    except ContractCompileError as exc:
        raise ContractReverted(f"compile error at line {exc.line}: {exc.reason}") from None


def _public(record: dict[str, Value]) -> dict[str, Value]:
    return {k: record[k] for k in PUBLIC_FIELDS}


def _record(ctx: CallContext | ViewContext, name: str) -> dict[str, Value] | None:
    record = ctx.read_other(NAMESPACE, record_key(name))
    return record if isinstance(record, dict) else None


class ContractsContract:
    """Deploy, upgrade, freeze and list Python contracts."""

    name: Final = NAMESPACE

    def call(self, ctx: CallContext, method: str, args: list[Value]) -> Value:
        if method == "deploy":
            _expect(method, args, 4)
            return self._deploy(ctx, *args)
        if method == "upgrade":
            _expect(method, args, 3)
            return self._upgrade(ctx, *args)
        if method in ("freeze", "unfreeze"):
            _expect(method, args, 1)
            return self._set_frozen(ctx, _name_arg(args[0]), frozen=method == "freeze")
        raise ContractReverted(f"contract {self.name} has no method {method!r}")

    def _deploy(
        self, ctx: CallContext, name: Value, source: Value, version: Value, init_args: Value
    ) -> Value:
        checked = _name_arg(name)
        text = _str_arg(source, "source", SOURCE_CHARS_MAX)
        label = _str_arg(version, "version", VERSION_CHARS_MAX)
        require(isinstance(init_args, list), "init_args must be a list")
        assert isinstance(init_args, list)
        require(_record(ctx, checked) is None, f"contract {checked!r} already exists")
        member = get_member(ctx, ctx.sender)
        require(member is not None, "only a member may deploy")
        assert member is not None
        ctx.meter.charge(DEPLOY_GAS + COMPILE_GAS_PER_BYTE * len(text))
        compiled = _compile(text)
        record: dict[str, Value] = {
            "name": checked,
            "version": label,
            "source": text,
            "source_hash": compiled.source_hash,
            "deployer": ctx.sender,
            "org": member["org"],
            "frozen": False,
        }
        ctx.write(record_key(checked), record)
        names = ctx.read("names", [])
        assert isinstance(names, list)
        ctx.write("names", sorted([*names, checked]))
        ctx.emit("Deployed", {"name": checked, "version": label, "deployer": ctx.sender})
        if "init" in compiled.functions:
            _run(ctx, checked, compiled, "init", init_args, is_deploy=True)
        else:
            require(not init_args, "the contract has no init; init_args must be empty")
        return _public(record)

    def _owned(self, ctx: CallContext, name: str) -> dict[str, Value]:
        record = _record(ctx, name)
        require(record is not None, f"no contract named {name!r}")
        assert record is not None
        member = get_member(ctx, ctx.sender)
        require(
            member is not None and member["org"] == record["org"],
            f"only a member of org {record['org']} may change contract {name!r}",
        )
        return record

    def _upgrade(self, ctx: CallContext, name: Value, source: Value, version: Value) -> Value:
        checked = _name_arg(name)
        text = _str_arg(source, "source", SOURCE_CHARS_MAX)
        label = _str_arg(version, "version", VERSION_CHARS_MAX)
        record = self._owned(ctx, checked)
        ctx.meter.charge(DEPLOY_GAS + COMPILE_GAS_PER_BYTE * len(text))
        compiled = _compile(text)
        updated = {**record, "source": text, "source_hash": compiled.source_hash, "version": label}
        ctx.write(record_key(checked), updated)
        ctx.emit("Upgraded", {"name": checked, "version": label})
        return _public(updated)

    def _set_frozen(self, ctx: CallContext, name: str, *, frozen: bool) -> Value:
        record = self._owned(ctx, name)
        require(record["frozen"] != frozen, f"contract {name!r} is already {_state(frozen)}")
        ctx.write(record_key(name), {**record, "frozen": frozen})
        ctx.emit("Frozen" if frozen else "Unfrozen", {"name": name})
        return None

    def view(self, ctx: ViewContext, method: str, args: list[Value]) -> Value:
        if method == "get":
            _expect(method, args, 1)
            if not isinstance(args[0], str):
                raise ContractReverted("name must be a string")
            record = _record(ctx, args[0])
            return None if record is None else _public(record)
        if method == "list":
            _expect(method, args, 0)
            names = ctx.read("names", [])
            assert isinstance(names, list)
            records = [_record(ctx, str(n)) for n in names]
            return [_public(r) for r in records if r is not None]
        raise ContractReverted(f"contract {self.name} has no method {method!r}")


def _state(frozen: bool) -> str:
    return "frozen" if frozen else "not frozen"


def _expect(method: str, args: list[Value], count: int) -> None:
    if len(args) != count:
        raise ContractReverted(f"{method} takes {count} arguments, got {len(args)}")


class OverlayHost:
    """`ContractHost` for one contract over the block's overlay (read-only for queries)."""

    __slots__ = (
        "channel",
        "contract",
        "height",
        "org",
        "overlay",
        "read_only",
        "roles",
        "sender",
        "suite",
        "timestamp_ms",
        "tx_id",
    )

    def __init__(
        self,
        *,
        overlay: Overlay,
        suite: CryptoSuite,
        contract: str,
        sender: str,
        org: str,
        roles: tuple[str, ...],
        channel: str,
        height: int,
        timestamp_ms: int,
        tx_id: bytes,
        read_only: bool,
    ) -> None:
        self.overlay = overlay
        self.suite = suite
        self.contract = contract
        self.sender = sender
        self.org = org
        self.roles = roles
        self.channel = channel
        self.height = height
        self.timestamp_ms = timestamp_ms
        self.tx_id = tx_id
        self.read_only = read_only

    def storage_get(self, key: str) -> bytes | None:
        value = self.overlay.get(state_key(self.contract, key))
        return None if value is None else encode_value(value)

    def storage_set(self, key: str, raw: bytes) -> None:
        assert not self.read_only, "the runtime refuses writes in a view"
        value = decode_value(raw)
        if value is None:
            self.overlay.delete(state_key(self.contract, key))
        else:
            self.overlay.set(state_key(self.contract, key), value)

    def storage_delete(self, key: str) -> None:
        assert not self.read_only, "the runtime refuses writes in a view"
        self.overlay.delete(state_key(self.contract, key))

    def storage_items(self, prefix: str, limit: int) -> tuple[list[tuple[str, bytes]], int]:
        namespace = len(state_key(self.contract, ""))
        found, examined = self.overlay.scan_counted(state_key(self.contract, prefix), limit)
        return [(key[namespace:].decode(), raw) for key, raw in found], examined

    def call(
        self, contract: str, method: str, args: list[Value], gas_limit: int, depth: int, view: bool
    ) -> CallResult:
        record = _read_record(self.overlay, contract)
        if record is None:
            return _failed(f"no deployed contract named {contract!r}")
        if record["frozen"] and not view:
            return _failed(f"contract {contract!r} is frozen")
        compiled = _compile_record(record)
        callee = OverlayHost(
            overlay=self.overlay,
            suite=self.suite,
            contract=contract,
            sender=self.contract,
            org="",
            roles=(),
            channel=self.channel,
            height=self.height,
            timestamp_ms=self.timestamp_ms,
            tx_id=self.tx_id,
            read_only=self.read_only or view,
        )
        return call_contract(compiled, method, args, callee, gas_limit, view=view, depth=depth)

    def hash(self, data: bytes) -> bytes:
        return self.suite.hash(data)

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        try:
            return bool(self.suite.verify(public_key, message, signature))
        except Exception:  # a malformed key or signature is simply not valid
            return False


def _failed(message: str) -> CallResult:
    return CallResult(None, 0, (), ("reverted", message))


def _read_record(overlay: Overlay, name: str) -> dict[str, Value] | None:
    record = overlay.get(state_key(NAMESPACE, record_key(name)))
    return record if isinstance(record, dict) else None


def _compile_record(record: dict[str, Value]) -> CompiledContract:
    source = record["source"]
    assert isinstance(source, str)
    return compile_contract(source)  # accepted at deploy: the same answer on every node


def _run(
    ctx: CallContext,
    name: str,
    compiled: CompiledContract,
    method: str,
    args: list[Value],
    *,
    is_deploy: bool,
) -> Value:
    member = get_member(ctx, ctx.sender)
    roles = member.get("roles", []) if member is not None else []
    assert isinstance(roles, list)
    host = OverlayHost(
        overlay=ctx.overlay,
        suite=ctx.suite,
        contract=name,
        sender=ctx.sender,
        org=str(member["org"]) if member is not None else "",
        roles=tuple(str(r) for r in roles),
        channel=ctx.channel,
        height=ctx.height,
        timestamp_ms=ctx.timestamp_ms,
        tx_id=ctx.tx_id,
        read_only=False,
    )
    remaining = ctx.meter.limit - ctx.meter.used
    result = call_contract(compiled, method, args, host, remaining, view=False, is_deploy=is_deploy)
    if result.error is not None:
        kind, message = result.error
        if kind == "out_of_gas":
            ctx.meter.used = ctx.meter.limit
            raise OutOfGas(f"out of gas (limit {ctx.meter.limit})")
        ctx.meter.charge(result.gas_used)
        raise ContractReverted(_error_message(kind, message))
    ctx.meter.charge(result.gas_used)
    ctx.events.extend(result.events)
    return result.return_value


def _error_message(kind: str, message: str) -> str:
    if kind == "reverted":
        return message
    if kind == "limit":
        return f"limit exceeded: {message}"
    return f"contract error: {message}"


def invoke_deployed(ctx: CallContext, method: str, args: list[Value]) -> Value:
    """Run `method` of the deployed contract `ctx.contract` in a transaction."""
    record = _read_record(ctx.overlay, ctx.contract)
    if record is None:
        raise ContractReverted(f"no contract named {ctx.contract!r}")
    require(not record["frozen"], f"contract {ctx.contract!r} is frozen")
    return _run(ctx, ctx.contract, _compile_record(record), method, args, is_deploy=False)


def query_deployed(
    overlay: Overlay, suite: CryptoSuite, contract: str, method: str, args: list[Value]
) -> Value:
    """Answer a `@view` of a deployed contract; raises `ContractReverted` on any failure."""
    record = _read_record(overlay, contract)
    if record is None:
        raise ContractReverted(f"no contract named {contract!r}")
    host = OverlayHost(
        overlay=overlay,
        suite=suite,
        contract=contract,
        sender="",
        org="",
        roles=(),
        channel="",
        height=0,
        timestamp_ms=0,
        tx_id=b"",
        read_only=True,
    )
    compiled = _compile_record(record)
    result = call_contract(compiled, method, args, host, QUERY_GAS_LIMIT, view=True)
    if result.error is not None:
        kind, message = result.error
        raise ContractReverted(_error_message(kind, message))
    return result.return_value
