"""`call_contract`: run one method of a compiled contract under a gas limit.

Each call runs against a reset `Runtime` whose helpers and builtins are bound into a table,
with the module's own defs and constants run once per runtime over that table (`_Slot`:
contract code cannot change globals, so nothing passes from one call to the next).
`__builtins__` is an empty dict: a name that is not in the table is a NameError, never a
lookup in CPython's builtins.

Errors become a `CallResult.error` of (kind, message):
- `out_of_gas`: the meter ran out ("OutOfGas"); all of the gas limit is used;
- `limit`: a size, width or depth limit (the message names it, e.g. "int bits");
- `reverted`: `revert(message)` or a failed `require`; the contract's message;
- `error`: anything else, as its class name only ("ZeroDivisionError", "KeyError", ...).
RecursionError, MemoryError and AssertionError are not contract outcomes: they mean a mispriced
operation or a bug, and propagate so the executor can halt instead of writing a receipt that
other nodes might not write.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from taihang.codec import Value
from taihang.execution.contracts import gas, rewriter
from taihang.execution.contracts.compiler import CompiledContract, FunctionInfo
from taihang.execution.contracts.errors import (
    LimitExceeded,
    OutOfGas,
    Revert,
    normalise_error,
)
from taihang.execution.contracts.gas import Meter
from taihang.execution.contracts.host import (
    CalleeFailed,
    CallResult,
    Context,
    ContractHost,
    encode_checked,
)
from taihang.execution.contracts.runtime import Runtime
from taihang.execution.contracts.wrappers import build_builtins, call_method, get_attribute

_HELPERS = (
    "enter", "leave", "tick", "each", "item", "getitem", "slice", "setitem", "augitem",
    "delitem", "built", "dict", "key", "comp",
    "Add", "Sub", "Mult", "FloorDiv", "Mod", "Pow", "LShift", "RShift", "BitAnd", "BitOr",
    "BitXor", "Eq", "NotEq", "Lt", "LtE", "Gt", "GtE", "In", "NotIn",
)  # fmt: skip


RUNTIMES_SPARE_MAX: Final = 8
MODULES_PER_RUNTIME_MAX: Final = 64
# Above any transaction's gas: a module body that spends it fails every call the same way.
MODULE_GAS_MAX: Final = 10**12


class _Slot:
    """A runtime, its bound helper table, and contract modules already run against it.

    Binding ~50 helpers costs more than a small call, and so does re-running a module body, so
    both are kept for reuse. Sharing a module's globals between calls is safe because contract
    code cannot change them: the checker refuses `global`, attribute and slice assignment, and
    module state other than immutable literals, and names starting with `_` (so `globals()`,
    `__dict__` and the helpers are out of reach). A runtime is reset before each reuse.
    """

    __slots__ = ("context", "modules", "rt", "table")

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.table = build_globals(rt)
        self.modules: dict[bytes, tuple[dict[str, Any], int]] = {}
        self.context: Context | None = None

    def bind_context(self, host: ContractHost) -> Context:
        """This runtime's `ctx`, bound to `host` for the current call."""
        if self.context is None:
            self.context = Context(self.rt, host)
        else:
            self.context.bind(host)
        return self.context

    def module(self, compiled: CompiledContract) -> dict[str, Any]:
        """The contract's globals, its defs and constants over this runtime's table, with the
        gas of running the module body charged to this call.

        The body (constants may build tuples, which cost gas) runs once per runtime under a
        meter of its own; every call is charged what it used, so a call costs the same
        whether or not this runtime ran the body before. That is consensus: a restarted node
        must charge what a long-running one does.
        """
        cached = self.modules.get(compiled.source_hash)
        if cached is None:
            if len(self.modules) >= MODULES_PER_RUNTIME_MAX:
                self.modules.clear()
            names = dict(self.table)
            meter, self.rt.meter = self.rt.meter, Meter(MODULE_GAS_MAX)
            try:
                exec(compiled.code, names)
                cached = (names, self.rt.meter.used)
            finally:
                self.rt.meter = meter
            self.modules[compiled.source_hash] = cached
        names, module_gas = cached
        self.rt.meter.charge(module_gas)
        return names


_spare: list[_Slot] = []


def _take_slot(meter: Meter, *, depth: int, view: bool) -> _Slot:
    if _spare:
        slot = _spare.pop()
        slot.rt.reset(meter, depth=depth, view=view)
        return slot
    return _Slot(Runtime(meter, depth=depth, view=view))


def _give_back_slot(slot: _Slot) -> None:
    if len(_spare) < RUNTIMES_SPARE_MAX:
        _spare.append(slot)


def build_globals(rt: Runtime) -> dict[str, Any]:
    """The globals of one call: builtins and helpers bound to `rt`, no CPython builtins."""
    names: dict[str, Any] = {"__builtins__": {}}
    names.update(build_builtins(rt))
    for name in _HELPERS:
        names[rewriter.PREFIX + name] = getattr(rt, name)
    names[rewriter.PREFIX + "attr"] = functools.partial(get_attribute, rt)
    # `call_method` takes obj and name positionally only, so a contract's own keyword
    # arguments (`obj=`, `name=`) pass through.
    names[rewriter.PREFIX + "method"] = functools.partial(call_method, rt)
    return names


def _select(
    compiled: CompiledContract, method: str, n_args: int, *, view: bool, is_deploy: bool
) -> FunctionInfo:
    """`method`'s entry; raise `Revert` unless it may be called this way with `n_args`."""
    info = compiled.find_entry(method)
    if is_deploy:
        if method != "init" or info is None:
            raise Revert("deploy runs init only")
    elif method == "init":
        raise Revert("init runs only at deploy")
    if info is None:
        raise Revert(f"contract has no public or view method {method!r}")
    if view and info.kind != "view":
        raise Revert(f"{method!r} is not a @view method")
    if not info.args_min <= n_args <= info.args_max:
        raise Revert(f"{method!r} takes {info.args_min} to {info.args_max} arguments, got {n_args}")
    return info


def call_contract(
    compiled: CompiledContract,
    method: str,
    args: list[Value],
    host: ContractHost,
    gas_limit: int,
    *,
    view: bool,
    is_deploy: bool = False,
    depth: int = 0,
) -> CallResult:
    """Run `method(ctx, *args)`; never raises for anything the contract did (see module doc).

    `depth` is the caller's call depth for cross-contract calls (0 for a transaction).
    The caller owns rollback: on any error, the host's writes of this call must be dropped.
    """
    meter = Meter(gas_limit)
    slot = _take_slot(meter, depth=depth, view=view)
    try:
        return _run(compiled, method, args, host, slot, is_deploy=is_deploy)
    finally:
        _give_back_slot(slot)


def _run(
    compiled: CompiledContract,
    method: str,
    args: list[Value],
    host: ContractHost,
    slot: _Slot,
    *,
    is_deploy: bool,
) -> CallResult:
    rt = slot.rt
    meter = rt.meter
    try:
        info = _select(compiled, method, len(args), view=rt.view, is_deploy=is_deploy)
        if info.kind == "view":
            rt.view = True  # a @view called by a transaction is still read-only
        value = slot.module(compiled)[method](slot.bind_context(host), *args)
        meter.charge(rt.measure(value))
        encode_checked(value, gas.RETURN_BYTES_MAX, "return value")
    except OutOfGas:
        return CallResult(None, meter.limit, (), ("out_of_gas", "OutOfGas"))
    except LimitExceeded as exc:
        return CallResult(None, meter.used, (), ("limit", exc.limit))
    except Revert as exc:
        return CallResult(None, meter.used, (), ("reverted", exc.message))
    except CalleeFailed as exc:
        return CallResult(None, meter.used, (), ("error", exc.message))
    except (RecursionError, MemoryError, AssertionError):
        raise
    except Exception as exc:
        return CallResult(None, meter.used, (), ("error", normalise_error(exc)))
    return CallResult(value, meter.used, tuple(rt.events), None)
