"""`compile_contract`: source text to a checked, metered code object.

Steps, cheapest first: size and ASCII checks on the text; `ast.parse` with the 3.11 grammar;
the allow-list check (`checker`); the metering rewrite (`rewriter`); CPython's `compile`.
Every failure, including the parser's RecursionError and MemoryError on hostile nesting,
becomes a `ContractCompileError` with a line number and a reason. The result is immutable and
cached by the sha256 of the source bytes, so every node compiling the same on-chain source
shares one code object per process.
"""

from __future__ import annotations

import ast
import hashlib
import io
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass
from types import CodeType, MappingProxyType
from typing import Final, Literal

from taihang.execution.contracts import gas
from taihang.execution.contracts.checker import validate_module
from taihang.execution.contracts.errors import ContractCompileError
from taihang.execution.contracts.rewriter import MeteringRewriter, assert_metered

SOURCE_BYTES_MAX: Final = 64 * 1024
# A miss recompiles without charging gas (gas cannot depend on a node's cache), so the cache
# holds every contract a busy network calls: at most 64 MiB of source, ~1,000 of the largest.
CACHE_ENTRIES_MAX: Final = 16_384
CACHE_SOURCE_BYTES_MAX: Final = 64 * 1024 * 1024
FILENAME: Final = "<contract>"

FunctionKind = Literal["public", "view", "internal"]


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """A top-level def: its kind and how many arguments it takes after `ctx`."""

    name: str
    kind: FunctionKind
    args_min: int
    args_max: int


@dataclass(frozen=True, slots=True)
class CompiledContract:
    source_hash: bytes  # sha256 of the source bytes
    code: CodeType
    functions: Mapping[str, FunctionInfo]
    source_bytes: int = 0  # the source's size, for the cache's bound

    def find_entry(self, method: str) -> FunctionInfo | None:
        """The `@public` or `@view` function named `method`, or None."""
        info = self.functions.get(method)
        return info if info is not None and info.kind != "internal" else None


_cache: dict[bytes, CompiledContract] = {}
_cached_bytes = 0  # the sources' total size: what bounds the cache's memory


def compute_source_hash(source: str) -> bytes:
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).digest()


def compile_contract(source: str) -> CompiledContract:
    """Check and compile `source`; raises `ContractCompileError` (deterministically)."""
    source_hash = compute_source_hash(source)
    cached = _cache.get(source_hash)
    if cached is not None:
        return cached
    compiled = _compile_uncached(source, source_hash)
    global _cached_bytes
    while _cache and (
        len(_cache) >= CACHE_ENTRIES_MAX or _cached_bytes + len(source) > CACHE_SOURCE_BYTES_MAX
    ):
        oldest = next(iter(_cache))  # insertion order
        _cached_bytes -= _cache.pop(oldest).source_bytes
    _cache[source_hash] = compiled
    _cached_bytes += compiled.source_bytes
    return compiled


def _compile_uncached(source: str, source_hash: bytes) -> CompiledContract:
    _validate_text(source)
    tree = _parse(source)
    try:
        validate_module(tree)
        functions = _collect_functions(tree)
        rewritten = ast.fix_missing_locations(MeteringRewriter().visit(tree))
        assert_metered(rewritten)
        code = compile(rewritten, FILENAME, "exec", dont_inherit=True, optimize=0)
    except (RecursionError, MemoryError):
        raise ContractCompileError(1, "the contract is nested too deeply") from None
    return CompiledContract(
        source_hash=source_hash,
        code=code,
        functions=MappingProxyType(functions),
        source_bytes=len(source),
    )


def _validate_text(source: str) -> None:
    if not source.isascii():
        line = next(n for n, text in enumerate(source.splitlines(), 1) if not text.isascii())
        raise ContractCompileError(line, "contract source must be ASCII")
    if len(source) > SOURCE_BYTES_MAX:
        raise ContractCompileError(1, f"contract source exceeds {SOURCE_BYTES_MAX} bytes")
    if "\x00" in source:
        raise ContractCompileError(1, "contract source contains a NUL byte")


def _parse(source: str) -> ast.Module:
    _check_decimal_literals(source)
    try:
        return ast.parse(source, filename=FILENAME, feature_version=(3, 11))
    except SyntaxError as exc:
        detail = exc.msg if isinstance(exc.msg, str) else ""
        column = exc.offset - 1 if exc.offset else None
        raise ContractCompileError(exc.lineno or 1, "syntax error", column, detail=detail) from None
    except (RecursionError, MemoryError):
        raise ContractCompileError(1, "the contract is nested too deeply") from None
    except ValueError:
        raise ContractCompileError(1, "the contract source cannot be parsed") from None


def _check_decimal_literals(source: str) -> None:
    """Refuse long decimal literals before the parser converts them.

    CPython's parser refuses decimal literals longer than the process's `int_max_str_digits`
    (a per-process setting: `PYTHONINTMAXSTRDIGITS`, `-X int_max_str_digits`), so without
    this check the same source could get different rejections on different nodes.
    """
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            text = token.string.replace("_", "").lower()
            if token.type != tokenize.NUMBER or text.startswith(("0x", "0o", "0b")):
                continue  # powers of two are not limited; the 512-bit check follows
            if any(mark in text for mark in ".ej"):
                continue  # a float or imaginary literal: the checker refuses it
            if len(text) > gas.INT_PARSE_CHARS_MAX:
                line, column = token.start
                raise ContractCompileError(line, "integer literal wider than 512 bits", column)
    except (tokenize.TokenError, SyntaxError):
        return  # the parser reports the source's real problem


def _collect_functions(tree: ast.Module) -> dict[str, FunctionInfo]:
    functions: dict[str, FunctionInfo] = {}
    for statement in tree.body:
        if not isinstance(statement, ast.FunctionDef):
            continue
        if statement.name in functions:
            raise ContractCompileError(statement.lineno, f"{statement.name!r} is defined twice")
        decorators = [d.id for d in statement.decorator_list if isinstance(d, ast.Name)]
        kind: FunctionKind = "internal"
        if decorators == ["public"]:
            kind = "public"
        elif decorators == ["view"]:
            kind = "view"
        params = len(statement.args.posonlyargs) + len(statement.args.args)
        defaults = len(statement.args.defaults)
        functions[statement.name] = FunctionInfo(
            name=statement.name,
            kind=kind,
            args_min=max(params - 1 - defaults, 0),
            args_max=params - 1,
        )
        if statement.name == "init" and kind != "public":
            raise ContractCompileError(statement.lineno, "init must be a @public function")
    return functions
