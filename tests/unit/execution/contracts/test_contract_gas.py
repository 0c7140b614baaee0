"""Metering: bombs end before they run, gas grows with the work, and runs are repeatable."""

from __future__ import annotations

import time

from conftest import TOKEN_SOURCE, FakeHost, Runner
from hypothesis import given, settings
from hypothesis import strategies as st

from taihang.execution.contracts import call_contract, compile_contract
from taihang.execution.contracts import gas as contract_gas


def _fn(body: str, params: str = "") -> str:
    lines = "\n".join("    " + line for line in body.splitlines())
    return f"@public\ndef f(ctx{', ' if params else ''}{params}):\n{lines}\n"


def test_infinite_loop_ends_out_of_gas(run: Runner) -> None:
    result = run(_fn("while True:\n    pass"), "f", gas=50_000)
    assert result.error == ("out_of_gas", "OutOfGas")
    assert result.gas_used == 50_000


def test_infinite_for_loop_over_growing_list_ends(run: Runner) -> None:
    result = run(_fn("xs = [1]\nfor x in xs:\n    xs.append(x)"), "f", gas=50_000)
    assert result.error is not None


def test_bombs_are_refused_before_computing(run: Runner) -> None:
    started = time.perf_counter()
    assert run(_fn("return 'x' * 10**12"), "f").error == ("limit", "string bytes")
    assert run(_fn("return [0] * 10**9"), "f").error == ("limit", "sequence items")
    assert run(_fn("return 10**10**10"), "f").error == ("limit", "int bits")
    assert run(_fn("return 2**513"), "f").error == ("limit", "int bits")
    assert run(_fn("return 1 << 10**9"), "f").error == ("limit", "int bits")
    assert run(_fn("return list(range(10**12))"), "f").error == ("limit", "sequence items")
    assert run(_fn("return 'x' * 900000 + 'y' * 900000"), "f").error == ("limit", "string bytes")
    body = "s = 'ab' * 1000\nreturn s.replace('', s)"
    assert run(_fn(body), "f").error == ("limit", "string bytes")
    assert time.perf_counter() - started < 1.0


def test_big_results_are_charged_by_size(run: Runner) -> None:
    small = run(_fn("return len('x' * 10)"), "f").gas_used
    large = run(_fn("return len('x' * 800000)"), "f").gas_used
    assert large - small >= 800_000 // contract_gas.BYTES_PER_GAS - 2


def test_sorted_is_charged_n_log_n(run: Runner) -> None:
    def sort_gas(n: int) -> int:
        source = _fn("xs = list(range(n))\nreturn len(sorted(xs))", "n")
        result = run(source, "f", n, gas=10**7)
        assert result.error is None
        return result.gas_used

    base = sort_gas(0)
    gas_1k, gas_64k = sort_gas(1024) - base, sort_gas(65536) - base
    assert gas_64k >= contract_gas.for_sort(65536)
    assert gas_64k > 64 * gas_1k  # more than linear: the log factor grows from 10 to 16


def test_list_count_is_charged_per_item(run: Runner) -> None:
    body = "xs = [0] * 50000\nn = 0\nfor i in range(5):\n    n += xs.count(1)\nreturn n"
    result = run(_fn(body), "f", gas=200_000)
    assert result.error == ("out_of_gas", "OutOfGas")


def test_comparison_of_long_values_is_charged(run: Runner) -> None:
    body = "a = 'x' * 80000\nb = 'x' * 80000\nfor i in range(100):\n    c = a == b"
    result = run(_fn(body), "f", gas=500_000)
    assert result.error == ("out_of_gas", "OutOfGas")


def test_nested_value_comparison_refuses_deep_nesting(run: Runner) -> None:
    body = "a = []\nfor i in range(100):\n    a = [a]\nreturn a == a"
    assert run(_fn(body), "f").error == ("limit", "nesting depth")


def test_comprehension_items_are_charged(run: Runner) -> None:
    cheap = run(_fn("return len([i for i in range(10) if False])"), "f").gas_used
    dear = run(_fn("return len([i for i in range(1000) if False])"), "f").gas_used
    assert dear - cheap >= 990 * contract_gas.ITEM


def test_out_of_gas_cannot_be_swallowed_by_host_code(host: FakeHost) -> None:
    compiled = compile_contract(_fn("while True:\n    ctx.storage.get('k')"))
    result = call_contract(compiled, "f", [], host, 20_000, view=False)
    assert result.error == ("out_of_gas", "OutOfGas")


def test_same_calls_give_same_gas_and_results(host: FakeHost) -> None:
    def run_all() -> list[tuple[object, int, object]]:
        fresh = FakeHost()
        compiled = compile_contract(TOKEN_SOURCE)
        results = [call_contract(compiled, "init", [100], fresh, 10**6, view=False, is_deploy=True)]
        for amount in (1, 5, 200, 7):
            results.append(
                call_contract(compiled, "transfer", ["bob", amount], fresh, 10**6, view=False)
            )
        return [(r.return_value, r.gas_used, r.error) for r in results] + [
            sorted(fresh.data.items())
        ]

    assert run_all() == run_all()


_ints = st.integers(min_value=-(2**64), max_value=2**64)
_strs = st.text(alphabet="abcxyz ,", max_size=20)
_int_ops = st.sampled_from(["+", "-", "*", "//", "%", "**", "<<", ">>", "&", "|", "^"])
_str_exprs = st.sampled_from(
    ["a + b", "a * 3", "a.upper()", "a.split(',')", "b.join([a, a])", "a.replace('a', b)",
     "a[1:]", "a.find(b)", "a == b", "a < b", "b in a", "len(a + b)", "a.strip()"]
)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(a=_ints, b=_ints, op=_int_ops)
def test_random_arithmetic_is_repeatable(a: int, b: int, op: str) -> None:
    source = _fn(f"x = a {op} b\nreturn [x, x == a, str(x)]", "a, b")
    first = call_contract(compile_contract(source), "f", [a, b], FakeHost(), 10**6, view=False)
    second = call_contract(compile_contract(source), "f", [a, b], FakeHost(), 10**6, view=False)
    assert (first.return_value, first.gas_used, first.error) == (
        second.return_value,
        second.gas_used,
        second.error,
    )
    if first.error is None:
        assert first.return_value[0].bit_length() <= 512


@settings(max_examples=40, deadline=None)
@given(a=_strs, b=_strs, expr=_str_exprs)
def test_random_string_programs_match_python_and_repeat(a: str, b: str, expr: str) -> None:
    source = _fn(f"return {expr}", "a, b")
    first = call_contract(compile_contract(source), "f", [a, b], FakeHost(), 10**6, view=False)
    second = call_contract(compile_contract(source), "f", [a, b], FakeHost(), 10**6, view=False)
    assert (first.return_value, first.gas_used, first.error) == (
        second.return_value,
        second.gas_used,
        second.error,
    )
    expected = eval(expr, {}, {"a": a, "b": b})  # the contract computes what Python does
    assert first.error is None and first.return_value == expected


def test_recycled_runtimes_start_clean(run: Runner) -> None:
    simple = _fn("return [1, 2]")
    before = run(simple, "f").gas_used
    deep = "def down(n):\n    return down(n + 1)\n@public\ndef f(ctx):\n    return down(0)\n"
    assert run(deep, "f").error == ("limit", "call depth")
    assert run(_fn("while True:\n    pass"), "f", gas=1_000).error is not None
    assert run(_fn("ctx.emit('E', 1)\nrevert('no')"), "f").events == ()
    after = run(simple, "f")
    assert (after.gas_used, after.error, after.events) == (before, None, ())
    assert run(TOKEN_SOURCE, "balance_of", "x", view=True).error is None
