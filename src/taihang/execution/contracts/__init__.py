"""Python smart contracts: a deterministic, metered, sandboxed subset of Python.

Theory of operation (spec: shared/spec/contracts.md; decision: docs/adr/0008).

1. **Compile** (`compile_contract(source) -> CompiledContract`, at deploy and on a cache miss):
   the ASCII source (<= 64 KiB) is parsed with the 3.11 grammar, checked against an allow-list
   of syntax, names and attributes (`checker`), rewritten so that every priced operation
   goes through a runtime helper (`rewriter`), and compiled to one code object. A rejection is
   a `ContractCompileError` carrying `line` and `reason`; the same source gives the same answer
   on every node. Results are cached by the sha256 of the source (`source_hash`).
2. **Call** (`call_contract(compiled, method, args, host, gas_limit, view=..., is_deploy=...)`):
   fresh globals per call (the sandbox builtins, helpers bound to a reset `Runtime`, the module's
   defs and constants; `__builtins__` empty), then `method(ctx, *args)`. `init` is callable
   only with `is_deploy=True`, `@view` methods only are callable with `view=True` (their storage
   is read-only), and undecorated defs are internal helpers that no caller can reach.
3. **Meter** (`gas`): gas at function entry, every loop iteration and comprehension item, and
   in proportion to the size of every C-level operation, checked *before* the operation
   runs. `OutOfGas` and `LimitExceeded` derive from `BaseException` and nothing on the contract
   path catches them.
4. **Result** (`CallResult`): `return_value`, `gas_used`, `events` (ledger `Event`s) and
   `error`, None or (kind, message) with kind `reverted` | `out_of_gas` | `limit` | `error`;
   the message is the contract's own for `reverted`, the limit's name for `limit`, and only a
   class name otherwise. `call_contract` never raises for anything a contract does; it lets
   RecursionError, MemoryError and AssertionError through (a mispriced operation or a bug: the
   executor halts).

For the executor: implement `ContractHost` over the overlay (storage as canonical bytes in the
contract's namespace, `storage_items` in ascending key order, `call` dispatching to another
contract with `call_contract(..., gas_limit=gas_limit, depth=depth, view=view)`), wrap each
call in an overlay checkpoint, and roll the writes back whenever `CallResult.error` is set.
Map `CallResult.error` kinds to receipt statuses: out_of_gas -> `out_of_gas`, anything else
-> `reverted` with the message as `error_message`.
"""

from taihang.execution.contracts.compiler import (
    CompiledContract,
    FunctionInfo,
    compile_contract,
    compute_source_hash,
)
from taihang.execution.contracts.engine import call_contract
from taihang.execution.contracts.errors import (
    ContractCompileError,
    LimitExceeded,
    OutOfGas,
    Revert,
)
from taihang.execution.contracts.host import CallResult, ContractHost, ErrorKind

__all__ = [
    "CallResult",
    "CompiledContract",
    "ContractCompileError",
    "ContractHost",
    "ErrorKind",
    "FunctionInfo",
    "LimitExceeded",
    "OutOfGas",
    "Revert",
    "call_contract",
    "compile_contract",
    "compute_source_hash",
]
