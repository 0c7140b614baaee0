"""`call_contract`: run one method of a compiled contract under a gas limit.

Each call gets fresh globals: the sandbox's builtins, the runtime helpers bound to a reset
`Runtime`, and the module's own defs and constants (re-run from the cached code object, so
nothing survives from one call to the next). `__builtins__` is an empty dict: a name that is
not in the table is a NameError, never a lookup in CPython's builtins.

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

from typing import Any, Final

from taihang.codec import Value
from taihang.execution.contracts import gas, rewriter
from taihang.execution.contracts.compiler import CompiledContract
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
    "delitem", "built", "dict", "key",
    "Add", "Sub", "Mult", "FloorDiv", "Mod", "Pow", "LShift", "RShift", "BitAnd", "BitOr",
    "BitXor", "Eq", "NotEq", "Lt", "LtE", "Gt", "GtE", "In", "NotIn",
)  # fmt: skip


RUNTIMES_SPARE_MAX: Final = 8
# Runtimes with their bound helper tables, kept for reuse: binding ~50 helpers costs more than
# a small call. Contract code never sees a table (each call copies it into fresh globals),
# and a runtime is reset before reuse, so nothing passes from one call to the next.
_spare: list[tuple[Runtime, dict[str, Any]]] = []


def _take_runtime(meter: Meter, *, depth: int, view: bool) -> tuple[Runtime, dict[str, Any]]:
    if _spare:
        rt, table = _spare.pop()
        rt.reset(meter, depth=depth, view=view)
        return rt, table
    rt = Runtime(meter, depth=depth, view=view)
    return rt, build_globals(rt)


def _give_back_runtime(rt: Runtime, table: dict[str, Any]) -> None:
    if len(_spare) < RUNTIMES_SPARE_MAX:
        _spare.append((rt, table))


def build_globals(rt: Runtime) -> dict[str, Any]:
    """The globals of one call: builtins and helpers bound to `rt`, no CPython builtins."""
    names: dict[str, Any] = {"__builtins__": {}}
    names.update(build_builtins(rt))
    for name in _HELPERS:
        names[rewriter.PREFIX + name] = getattr(rt, name)
    names[rewriter.PREFIX + "attr"] = lambda obj, name, /: get_attribute(rt, obj, name)
    # Positional-only, so a contract's own keyword arguments (`obj=`, `name=`) pass through.
    names[rewriter.PREFIX + "method"] = lambda obj, name, /, *a, **k: call_method(
        rt, obj, name, *a, **k
    )
    return names


def _select(
    compiled: CompiledContract, method: str, n_args: int, *, view: bool, is_deploy: bool
) -> None:
    """Raise `Revert` unless `method` may be called this way with `n_args` arguments."""
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
    rt, table = _take_runtime(meter, depth=depth, view=view)
    try:
        return _run(compiled, method, args, host, rt, table, is_deploy=is_deploy)
    finally:
        _give_back_runtime(rt, table)


def _run(
    compiled: CompiledContract,
    method: str,
    args: list[Value],
    host: ContractHost,
    rt: Runtime,
    table: dict[str, Any],
    *,
    is_deploy: bool,
) -> CallResult:
    meter = rt.meter
    try:
        _select(compiled, method, len(args), view=rt.view, is_deploy=is_deploy)
        names = dict(table)
        names["__builtins__"] = {}
        exec(compiled.code, names)
        value = names[method](Context(rt, host), *args)
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
