"""Deterministic execution: the executor interface, the state overlay, gas and the built-in
contracts (`members`, `kv`, `asset`). The Python contract runtime of a later issue plugs in
behind the same `Contract` protocol."""

from taihang.execution.executor import BlockContext, BlockResult, Executor, execute_query
from taihang.execution.genesis_state import build_genesis_writes
from taihang.execution.state import StateReader

__all__ = [
    "BlockContext",
    "BlockResult",
    "Executor",
    "StateReader",
    "build_genesis_writes",
    "execute_query",
]
