"""The allow-list compiler: what it accepts, and each rejection's line and reason."""

from __future__ import annotations

import pytest
from conftest import TOKEN_SOURCE

from taihang.execution.contracts import ContractCompileError, compile_contract
from taihang.execution.contracts.compiler import compute_source_hash


def test_compile_contract_accepts_the_spec_token() -> None:
    compiled = compile_contract(TOKEN_SOURCE)
    assert compiled.source_hash == compute_source_hash(TOKEN_SOURCE)
    assert {n: f.kind for n, f in compiled.functions.items()} == {
        "init": "public",
        "transfer": "public",
        "balance_of": "view",
    }
    assert compiled.functions["transfer"].args_min == 2


def test_compile_contract_caches_by_source_hash() -> None:
    assert compile_contract(TOKEN_SOURCE) is compile_contract(TOKEN_SOURCE)


def _body(line: str) -> str:
    """A contract whose offending line is line 3."""
    return f"@public\ndef f(ctx, x):\n    {line}\n"


# (source, line, reason substring): one per construct the spec forbids.
REJECTIONS = [
    ("import os\n", 1, "import"),
    ("from os import path\n", 1, "import"),
    ("class A:\n    pass\n", 1, "class"),
    (_body("g = lambda: 1"), 3, "lambda"),
    (_body("try:\n        pass\n    except Exception:\n        pass"), 3, "try"),
    (_body("with x:\n        pass"), 3, "with"),
    (_body("global y"), 3, "global"),
    ("def f(ctx):\n    def g():\n        nonlocal q\n", 2, "nested"),
    (_body("yield 1"), 3, "yield"),
    (_body("yield from x"), 3, "yield"),
    ("async def f(ctx):\n    pass\n", 1, "async"),
    (_body("s = {1, 2}"), 3, "set"),
    (_body("s = {i for i in x}"), 3, "set"),
    (_body("s = list(i for i in x)"), 3, "generator"),
    (_body('s = f"{x}"'), 3, "f-string"),
    (_body("s = [*x]"), 3, "starred"),
    (_body("s = f(**x)"), 3, "**kwargs"),
    ("@public\ndef f(ctx, **kw):\n    pass\n", 2, "**kwargs"),
    ("@public\ndef f(ctx, *a):\n    pass\n", 2, "*args"),
    (_body("if (y := 1):\n        pass"), 3, ":="),
    (_body("match x:\n        case 1:\n            pass"), 3, "match"),
    ("@other\ndef f(ctx):\n    pass\n", 1, "decorators"),
    ("@public\n@view\ndef f(ctx):\n    pass\n", 3, "one decorator"),
    (_body("y = 1.5"), 3, "float"),
    (_body("y = 2j"), 3, "complex"),
    (_body("y = x / 2"), 3, "//"),
    (_body("y = x @ x"), 3, "@"),
    (_body("y = x._secret"), 3, "_"),
    (_body("y = x.__class__"), 3, "_"),
    (_body("_y = 1"), 3, "_"),
    ("@public\ndef f(ctx, _x):\n    pass\n", 2, "_"),
    ("def _f(ctx):\n    pass\n", 1, "_"),
    (_body("x.y = 1"), 3, "attribute assignment"),
    ("STATE = {}\n", 1, "immutable literal"),
    ("STATE = [1]\n", 1, "immutable literal"),
    ("x = 1\nprint(x)\n", 2, "module top level"),
    ("for i in x:\n    pass\n", 1, "module top level"),
    ("@public\ndef f(ctx, x=[]):\n    pass\n", 2, "default arguments"),
    ("@public\ndef f(ctx, x={}):\n    pass\n", 2, "default arguments"),
    (_body("y = eval('1')"), 3, "not available"),
    (_body("y = getattr(x, 'a')"), 3, "not available"),
    (_body("y = type(x)"), 3, "not available"),
    (_body("y = id(x)"), 3, "not available"),
    (_body("y = set()"), 3, "not available"),
    (_body("y = __import__('os')"), 3, "_"),
    (_body("assert x"), 3, "require"),
    (_body("raise x"), 3, "revert"),
    (_body("y = 1 < x < 3"), 3, "chained"),
    (_body("y = x is 3"), 3, "'is'"),
    (_body("x[1:2] = y"), 3, "slice assignment"),
    (_body("del x"), 3, "del"),
    (_body("y = {**x}"), 3, "unpacking"),
    (_body("y = " + "9" * 200), 3, "512 bits"),
    (_body("y = ..."), 3, "ellipsis"),
    (_body("y = x(1)(2)"), 3, "named functions"),
    ("@public\ndef f(ctx, *, x):\n    pass\n", 2, "keyword-only"),
    ("@public\ndef f():\n    pass\n", 2, "ctx"),
    ("@view\ndef init(ctx):\n    pass\n", 2, "init"),
    ("@public\ndef f(ctx):\n    pass\n@public\ndef f(ctx):\n    pass\n", 5, "twice"),
    ("@public\ndef f(ctx):\n    return 1 +\n", 3, "syntax error"),
]


@pytest.mark.parametrize(("source", "line", "reason"), REJECTIONS)
def test_compile_contract_rejects(source: str, line: int, reason: str) -> None:
    with pytest.raises(ContractCompileError) as info:
        compile_contract(source)
    assert info.value.line == line, info.value.message
    assert reason in info.value.reason


def test_compile_contract_rejects_non_ascii_with_its_line() -> None:
    # A homoglyph: Cyrillic "а" in an identifier.
    with pytest.raises(ContractCompileError) as info:
        compile_contract("X = 1\n\u0430 = 2\n")
    assert (info.value.line, info.value.reason) == (2, "contract source must be ASCII")


def test_compile_contract_rejects_oversized_source() -> None:
    with pytest.raises(ContractCompileError, match="exceeds"):
        compile_contract("#" * (64 * 1024 + 1))


@pytest.mark.parametrize(
    "source",
    [
        "X = " + "(" * 5000 + "1" + ")" * 5000 + "\n",
        "X = " + "-" * 20000 + "1\n",
        "@public\ndef f(ctx, a):\n    return " + "a + " * 10000 + "a\n",
        "@public\ndef f(ctx, a):\n    return " + "[" * 100 + "]" * 100 + "\n",
    ],
)
def test_compile_contract_rejects_deep_nesting(source: str) -> None:
    with pytest.raises(ContractCompileError):
        compile_contract(source)


def test_compile_contract_accepts_the_allowed_subset() -> None:
    source = '''"""A contract using most of the language."""
LIMIT = 10
NAMES = ("a", "b")
NEG = -5

def helper(values, start=0):
    total = start
    for v in values:
        if v % 2 == 0:
            continue
        total += v
    return total

@public
def run(ctx, n: int) -> int:
    xs = [i * i for i in range(n) if i != 3]
    d = {str(i): i for i in range(n)}
    d["extra"] = 1
    d["extra"] += 1
    del d["extra"]
    a, b = 1, 2
    while a < LIMIT:
        a = a << 1
    y: int = a if a > b else b
    words = "x,y,z".split(",")
    return helper(xs, start=NEG) + y + len(words) + len(d) + (1 if "x" in words else 0)
'''
    compiled = compile_contract(source)
    assert compiled.functions["helper"].kind == "internal"
    assert compiled.find_entry("helper") is None


def test_compile_cache_is_bounded_by_source_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from taihang.execution.contracts import compiler

    monkeypatch.setattr(compiler, "_cache", {})
    monkeypatch.setattr(compiler, "_cached_bytes", 0)
    monkeypatch.setattr(compiler, "CACHE_SOURCE_BYTES_MAX", 1_000)
    sources = [f"@public\ndef f(ctx):\n    return {i}\n" + "#" * 300 + "\n" for i in range(6)]
    for source in sources:
        compile_contract(source)
        assert compiler._cached_bytes <= 1_000
        assert compiler._cached_bytes == sum(c.source_bytes for c in compiler._cache.values())
    kept = set(compiler._cache)
    assert compiler.compute_source_hash(sources[-1]) in kept  # the newest stays
    assert compiler.compute_source_hash(sources[0]) not in kept  # the oldest went first
    assert compile_contract(sources[0]).source_bytes == len(sources[0])  # recompiled on a miss
