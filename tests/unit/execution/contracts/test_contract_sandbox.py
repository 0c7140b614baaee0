"""A first slice of the attack catalogue: each entry is refused at deploy or stopped at run."""

from __future__ import annotations

import pytest
from conftest import Runner

from taihang.execution.contracts import ContractCompileError, compile_contract


def _fn(body: str) -> str:
    lines = "\n".join("    " + line for line in body.splitlines())
    return f"@public\ndef f(ctx):\n{lines}\n"


@pytest.mark.parametrize(
    "body",
    [
        "return ().__class__.__bases__[0].__subclasses__()",
        "return ctx.__class__",
        "return ctx.storage.get.__self__",
        "return getattr(ctx, '_' + '_class__')",
        "return type('X', (), {})",
        "return __import__('os')",
        "return eval('1')",
        "return exec('x = 1')",
        "return compile('1', 'f', 'eval')",
        "return open('/etc/passwd')",
        "return globals()",
        "return __builtins__",
        "return vars()",
        "return [x for x in ()].__iter__",
        "ctx.sender = 'mallory'",
        "return 0.1 + 0.2",
        "return {1, 2}",
        "return 'a{0.__class__}'",
    ],
)
def test_escapes_are_refused_at_deploy_or_run(run: Runner, body: str) -> None:
    try:
        compile_contract(_fn(body))
    except ContractCompileError:
        return
    result = run(_fn(body), "f")  # the last entry compiles: the string is only a string
    assert result.error is None or result.error[0] == "error"
    assert not isinstance(result.return_value, type)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("return 'x{0}'.format(ctx)", "AttributeError"),
        ("return 'x'.format_map", "AttributeError"),
        ("return len.func", "AttributeError"),
        ("return len.args", "AttributeError"),
        ("return int.py_type", "AttributeError"),
        ("return int.convert", "AttributeError"),
        ("g = {}.get\nreturn g.func", "AttributeError"),
        ("return ctx.storage.rt", "AttributeError"),
        ("return ctx.crypto.host", "AttributeError"),
        ("return sorted([ctx, ctx])", "TypeError"),
        ("return b'%s' % b'x'", "ForbiddenOperation"),
        ("for x in ctx:\n    pass", "TypeError"),
    ],
)
def test_runtime_attribute_walks_fail_with_class_names(run: Runner, body: str, error: str) -> None:
    assert run(_fn(body), "f").error == ("error", error)


def test_bound_value_methods_still_work(run: Runner) -> None:
    assert run(_fn("d = {'a': 1}\ng = d.get\nreturn g('a')"), "f").return_value == 1


def test_hash_collision_keys_are_refused_on_every_insertion_path(run: Runner) -> None:
    key = "2 ** 61 - 1"
    for body in [
        f"d = {{}}\nd[{key}] = 1",
        f"return {{{key}: 1}}",
        f"return {{k: 1 for k in [{key}]}}",
        f"return dict([({key}, 1)])",
        f"d = {{}}\nd.setdefault({key}, 1)",
    ]:
        assert run(_fn(body), "f").error == ("error", "InvalidValue"), body


@pytest.mark.parametrize(
    ("body", "kind", "message"),
    [
        # Regressions: the operands of `is` once skipped the rewrite, so these ran as raw
        # Python (a 100 MB string for 20 gas, a negative gas charge, a write to any state key).
        ("return ('x' * 100000000) is None", "limit", "string bytes"),
        ("return ctx.rt.meter.charge(-10000000) is None", "error", "AttributeError"),
        ("return ctx.host.storage_set('k', b'') is not None", "error", "AttributeError"),
        ("return not (ctx.host is None)", "error", "AttributeError"),
    ],
)
def test_identity_comparisons_meter_and_check_both_operands(
    run: Runner, body: str, kind: str, message: str
) -> None:
    result = run(_fn(body), "f")
    assert result.error == (kind, message)
    assert result.gas_used >= 0


def test_the_compiler_refuses_a_tree_with_an_unmetered_operation() -> None:
    import ast

    from taihang.execution.contracts.rewriter import MeteringRewriter, assert_metered

    tree = ast.parse(_fn("return ('x' * 10) is None"))
    rewritten = MeteringRewriter().visit(tree)
    assert_metered(rewritten)  # the rewrite leaves nothing unmetered
    rewritten.body[0].body[1].body[0].value.left = ast.parse("'x' * 10", mode="eval").body
    with pytest.raises(AssertionError, match="unmetered BinOp"):
        assert_metered(rewritten)
