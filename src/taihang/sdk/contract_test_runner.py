"""The runner of `taihang contract test`: a contract's test file against fresh ledgers.

A test file is plain Python: each `test_*` function takes a fresh `Ledger` (from
`taihang.sdk.contract_testing`) as its `ledger` argument. The runner loads the file with its
`assert` statements rewritten to report both sides, runs each test, and records what it did
(every call with its gas), how it ended, and for a failure the test file's line.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import operator
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Literal

from taihang.errors import InvalidInput, TaihangError
from taihang.sdk.contract_testing import (
    CallRecord,
    ContractSourceRejected,
    Ledger,
    check_source_file,
    read_source,
)

TESTS_MAX: Final = 1_000  # test functions per file

# --- the runner ------------------------------------------------------------------------------
TestStatus = Literal["pass", "fail", "error"]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a test did not pass: the exception, and where in the test file it happened."""

    kind: str  # the exception's class name
    message: str
    line: int | None  # in the test file
    source: str  # that line's text


@dataclass(frozen=True, slots=True)
class TestOutcome:
    __test__ = False  # not a pytest class

    name: str
    status: TestStatus
    calls: tuple[CallRecord, ...]
    failure: Failure | None
    duration_ms: float


@dataclass(slots=True)
class TestReport:
    __test__ = False

    path: Path
    outcomes: list[TestOutcome] = field(default_factory=list)

    def count(self, status: TestStatus) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


class TestFileError(InvalidInput):
    """The test file cannot be run at all (missing, not Python, no tests)."""

    __test__ = False
    code = "bad_test_file"


def find_test_file(path: Path) -> Path:
    """`test_x.py` itself, or for a contract `x.py` the `test_x.py` beside it."""
    if not path.is_file():
        raise TestFileError(f"cannot read {path}: no such file")
    if path.name.startswith("test_"):
        return path
    tests = path.with_name(f"test_{path.name}")
    if not tests.is_file():
        raise TestFileError(
            f"no tests for {path}: write {tests.name} beside it (taihang contract new makes one)"
        )
    return tests


def find_contract_file(test_file: Path) -> Path | None:
    """The contract `x.py` that `test_x.py` tests, when it exists."""
    contract = test_file.with_name(test_file.name.removeprefix("test_"))
    return contract if contract != test_file and contract.is_file() else None


def check_contract_file(path: Path) -> None:
    """Raise `ContractSourceRejected` (or `InvalidInput` if unreadable) unless it compiles."""
    check_source_file(read_source(path), str(path))


def load_tests(test_file: Path) -> list[tuple[str, Callable[..., Any]]]:
    """The file's `test_*` functions in source order; raises `TestFileError`."""
    module = _load_module(test_file)
    tests = [
        (name, fn)
        for name, fn in vars(module).items()
        if name.startswith("test") and inspect.isfunction(fn) and fn.__module__ == module.__name__
    ]
    if not tests:
        raise TestFileError(f"{test_file} has no test_* functions")
    if len(tests) > TESTS_MAX:
        raise TestFileError(f"{test_file} has more than {TESTS_MAX} tests")
    return sorted(tests, key=lambda item: item[1].__code__.co_firstlineno)


def run_test_file(
    test_file: Path,
    *,
    on_call: Callable[[CallRecord], None] | None = None,
    on_outcome: Callable[[TestOutcome], None] | None = None,
) -> TestReport:
    """Run each test with a fresh `Ledger` based in the file's folder."""
    report = TestReport(test_file)
    for name, fn in load_tests(test_file):
        outcome = run_test(test_file, name, fn, on_call=on_call)
        report.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return report


def run_test(
    test_file: Path,
    name: str,
    fn: Callable[..., Any],
    *,
    on_call: Callable[[CallRecord], None] | None = None,
) -> TestOutcome:
    ledger = Ledger(base_dir=test_file.parent, on_call=on_call)
    started = time.perf_counter()
    status: TestStatus = "pass"
    failure = None
    try:
        params = list(inspect.signature(fn).parameters)
        if params not in ([], ["ledger"]):
            raise TestFileError(f"{name} may take one parameter, ledger; it takes {params}")
        if params:
            fn(ledger)
        else:
            fn()
    except ContractSourceRejected as exc:
        status, failure = "error", _failure(exc, test_file)
    except Exception as exc:  # the test's own failure, whatever it is, is its report
        status, failure = "fail", _failure(exc, test_file)
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    return TestOutcome(name, status, tuple(ledger.calls), failure, duration_ms)


def _failure(exc: BaseException, test_file: Path) -> Failure:
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if Path(f.filename) == test_file.resolve()]
    frame = mine[-1] if mine else None
    message = exc.message if isinstance(exc, TaihangError) else str(exc)
    if isinstance(exc, AssertionError) and not message:
        message = "assertion failed"
    return Failure(
        kind=type(exc).__name__,
        message=message,
        line=frame.lineno if frame is not None else None,
        source=(frame.line or "") if frame is not None else "",
    )


def _load_module(test_file: Path) -> ModuleType:
    path = test_file.resolve()
    try:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise TestFileError(f"cannot read {test_file}: {exc}") from None
    except SyntaxError as exc:
        raise TestFileError(f"{test_file}:{exc.lineno}: syntax error: {exc.msg}") from None
    code = compile(ast.fix_missing_locations(_AssertRewriter().visit(tree)), str(path), "exec")
    name = f"taihang_contract_test_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    vars(module)[_COMPARE_HELPER] = compare
    sys.modules[name] = module  # dataclasses and typing look their module up here
    try:
        exec(code, vars(module))
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        line = next((f.lineno for f in reversed(frames) if f.filename == str(path)), None)
        raise TestFileError(
            f"{test_file}:{line}: cannot load: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        sys.modules.pop(name, None)
    return module


# Plain `assert left <op> right` is rewritten to `assert compare(left, "<op>", right)`, which
# evaluates each side once, as Python would, and on failure says what both sides were.
_COMPARE_HELPER: Final = "taihang_contract_test_compare"
_OPERATORS: Final[dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], Any]]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.Is: ("is", operator.is_),
    ast.IsNot: ("is not", operator.is_not),
    ast.In: ("in", lambda a, b: a in b),
    ast.NotIn: ("not in", lambda a, b: a not in b),
}
_BY_SYMBOL: Final = dict(_OPERATORS.values())


def compare(left: Any, symbol: str, right: Any) -> bool:
    """`left <symbol> right`, or an `AssertionError` showing both values."""
    if _BY_SYMBOL[symbol](left, right):
        return True
    raise AssertionError(f"assert {_short(left)} {symbol} {_short(right)}")


def _short(value: Any, chars_max: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= chars_max else text[: chars_max - 3] + "..."


class _AssertRewriter(ast.NodeTransformer):
    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        test = node.test
        if node.msg is not None or not isinstance(test, ast.Compare) or len(test.ops) != 1:
            return node
        entry = _OPERATORS.get(type(test.ops[0]))
        if entry is None:
            return node
        call = ast.Call(
            func=ast.Name(_COMPARE_HELPER, ast.Load()),
            args=[test.left, ast.Constant(entry[0]), test.comparators[0]],
            keywords=[],
        )
        return ast.copy_location(ast.Assert(test=ast.copy_location(call, test), msg=None), node)
