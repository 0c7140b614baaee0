"""Running contracts: the token example, host objects, builtins, methods and error results."""

from __future__ import annotations

import msgspec
import pytest
from conftest import TOKEN_SOURCE, FakeHost, Runner

from taihang.codec import decode_value
from taihang.execution.contracts import OutOfGas, call_contract, compile_contract
from taihang.execution.contracts.errors import LimitExceeded


def _fn(body: str, params: str = "") -> str:
    lines = "\n".join("    " + line for line in body.splitlines())
    return f"@public\ndef f(ctx{', ' if params else ''}{params}):\n{lines}\n"


def test_token_transfer_and_balance_of(run: Runner, host: FakeHost) -> None:
    assert run(TOKEN_SOURCE, "init", 1000, deploy=True).error is None
    result = run(TOKEN_SOURCE, "transfer", "bob", 30)
    assert result.error is None
    assert result.gas_used > 0
    [event] = result.events
    assert (event.contract, event.name) == ("token", "Transfer")
    assert decode_value(bytes(event.data)) == {"amount": 30, "from": "alice", "to": "bob"}
    assert run(TOKEN_SOURCE, "balance_of", "bob", view=True).return_value == 30
    assert run(TOKEN_SOURCE, "balance_of", "alice", view=True).return_value == 970


def test_token_transfer_reverts_with_the_contract_message(run: Runner) -> None:
    run(TOKEN_SOURCE, "init", 10, deploy=True)
    assert run(TOKEN_SOURCE, "transfer", "bob", 11).error == ("reverted", "insufficient balance")
    assert run(TOKEN_SOURCE, "transfer", "bob", 0).error == (
        "reverted",
        "amount must be positive",
    )


def test_init_runs_only_at_deploy(run: Runner) -> None:
    assert run(TOKEN_SOURCE, "init", 5).error == ("reverted", "init runs only at deploy")
    assert run(TOKEN_SOURCE, "transfer", "bob", 1, deploy=True).error == (
        "reverted",
        "deploy runs init only",
    )


def test_view_refuses_public_methods_and_writes(run: Runner) -> None:
    assert run(TOKEN_SOURCE, "transfer", "bob", 1, view=True).error is not None
    source = "@view\ndef v(ctx):\n    ctx.storage.set('k', 1)\n"
    assert run(source, "v", view=True).error == ("error", "ReadOnlyError")
    source = "@view\ndef v(ctx):\n    ctx.emit('E', 1)\n"
    assert run(source, "v", view=True).error == ("error", "ReadOnlyError")


def test_internal_helpers_and_unknown_methods_are_not_callable(run: Runner) -> None:
    source = "def helper(ctx):\n    return 1\n@public\ndef f(ctx):\n    return helper(ctx)\n"
    assert run(source, "f").return_value == 1
    assert run(source, "helper").error == (
        "reverted",
        "contract has no public or view method 'helper'",
    )
    assert run(source, "f", 1).error == ("reverted", "'f' takes 0 to 0 arguments, got 1")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("return 1 // 0", "ZeroDivisionError"),
        ("return {}['missing']", "KeyError"),
        ("return [1][5]", "IndexError"),
        ("return 'a' + 1", "TypeError"),
        ("return (1).bit_length()", "AttributeError"),
        ("return {}.update", "AttributeError"),
        ("return ctx.host", "AttributeError"),
        ("return ctx.storage.host", "AttributeError"),
        ("return int('12x')", "ValueError"),
        ("return undefined_name", "NameError"),
        ("return '%s' % 1", "ForbiddenOperation"),
        ("return 2 ** -1", "ForbiddenOperation"),
        ("return {(1, 2): 3}", "InvalidValue"),
        ("return {2 ** 70: 1}", "InvalidValue"),
        ("d = {}\nd[2 ** 62] = 1", "InvalidValue"),
        ("return str([1])", "TypeError"),
        ("return len", "InvalidValue"),
        ("revert(5)", "InvalidValue"),
    ],
)
def test_errors_are_normalised_to_class_names(run: Runner, body: str, error: str) -> None:
    result = run(_fn(body), "f")
    assert result.error == ("error", error)
    assert result.return_value is None


def test_revert_and_require_carry_messages(run: Runner) -> None:
    assert run(_fn("revert('no')"), "f").error == ("reverted", "no")
    assert run(_fn("require(1 == 2, 'bad')"), "f").error == ("reverted", "bad")


def test_failed_call_drops_events(run: Runner) -> None:
    result = run(_fn("ctx.emit('E', 1)\nrevert('x')"), "f")
    assert result.events == ()


def test_ctx_exposes_the_block_and_caller(run: Runner) -> None:
    body = "return [ctx.sender, ctx.org, ctx.roles, ctx.contract, ctx.channel, ctx.height,\n"
    body += "        ctx.timestamp_ms, ctx.tx_id]"
    value = run(_fn(body), "f").return_value
    assert value == [
        "alice",
        "org1",
        ("member",),
        "token",
        "main",
        7,
        1_700_000_000_000,
        b"\x01" * 32,
    ]


def test_storage_round_trip_copies_values(run: Runner, host: FakeHost) -> None:
    body = """d = {"a": [1, 2]}
ctx.storage.set("k", d)
d["a"].append(3)
got = ctx.storage.get("k")
got["a"].append(4)
ctx.storage.set("z", 1)
ctx.storage.delete("z")
s = ctx.storage
return [s.get("k"), s.has("k"), s.has("z"), s.items("k", 5)]"""
    value = run(_fn(body), "f").return_value
    assert value == [{"a": [1, 2]}, True, False, [("k", {"a": [1, 2]})]]


def test_storage_refuses_bad_keys_values_and_limits(run: Runner) -> None:
    assert run(_fn("ctx.storage.set(1, 1)"), "f").error == ("error", "InvalidValue")
    assert run(_fn("ctx.storage.set('k', ctx)"), "f").error == ("error", "InvalidValue")
    assert run(_fn("ctx.storage.set('k' * 300, 1)"), "f").error == ("limit", "storage key")
    big = "ctx.storage.set('k', 'x' * 70000)"
    assert run(_fn(big), "f").error == ("limit", "storage value")
    assert run(_fn("ctx.storage.items('', 10**6)"), "f").error == ("error", "InvalidValue")


def test_crypto_hash_and_verify(run: Runner) -> None:
    body = "h = ctx.crypto.hash(b'pk' + b'msg')\nreturn [h, ctx.crypto.verify(b'pk', b'msg', h)]"
    value = run(_fn(body), "f").return_value
    assert value[1] is True and len(value[0]) == 32


def test_cross_contract_call_shares_gas_and_reverts_together(host: FakeHost) -> None:
    callee = FakeHost(contract="callee")
    host.contracts["callee"] = (
        "@public\ndef put(ctx, v):\n    ctx.storage.set('v', v)\n    ctx.emit('Put', v)\n"
        "    return v * 2\n@public\ndef fail(ctx):\n    revert('callee says no')\n",
        callee,
    )
    caller = compile_contract(_fn("return ctx.call('callee', 'put', [21])"))
    result = call_contract(caller, "f", [], host, 100_000, view=False)
    assert result.return_value == 42
    assert [e.contract for e in result.events] == ["callee"]
    assert callee.data["v"] == msgspec.msgpack.encode(21)
    failing = compile_contract(_fn("return ctx.call('callee', 'fail', [])"))
    result = call_contract(failing, "f", [], host, 100_000, view=False)
    assert result.error == ("reverted", "callee says no")


def test_recursion_stops_at_depth_64(run: Runner) -> None:
    source = "def down(n):\n    return down(n + 1)\n@public\ndef f(ctx):\n    return down(0)\n"
    assert run(source, "f").error == ("limit", "call depth")
    source = "def down(n):\n    if n == 0:\n        return 0\n    return down(n - 1)\n"
    source += "@public\ndef f(ctx, n):\n    return down(n)\n"
    assert run(source, "f", 62).error is None  # f + 63 frames of down
    assert run(source, "f", 63).error == ("limit", "call depth")


def test_cross_contract_recursion_counts_towards_depth(host: FakeHost) -> None:
    source = _fn("return ctx.call('token', 'f', [])")
    host.contracts["token"] = (source, host)
    result = call_contract(compile_contract(source), "f", [], host, 10_000_000, view=False)
    assert result.error == ("limit", "call depth")


def test_builtins_and_methods_behave_like_python(run: Runner) -> None:
    body = """d = {"b": 2, "a": 1}
xs = [3, 1, 2]
s = "Hello, World"
out = [len(xs), list(range(3)), min(xs), max(4, 5), sum(xs), sorted(xs), sorted(xs, reverse=True),
       any([0, 1]), all([1, 0]), list(zip(xs, "abc")), list(enumerate(xs)), list(reversed(xs)),
       abs(-3), int("42"), str(7), bool(0), isinstance(1, int), isinstance("x", (int, str)),
       tuple(xs), dict([("k", 1)]), d.get("a"), d.keys(), d.values(), d.items(), d.pop("b"),
       d.setdefault("c", 3), d]
xs.append(4)
xs.extend([5])
xs.insert(0, 0)
out += [xs.pop(), xs.index(3), xs.count(1), xs, s.lower(), s.upper(), s.startswith("He"),
        s.endswith("d"), s.split(", "), "-".join(["a", "b"]), s.replace("l", "L"), " x ".strip(),
        s.find("W"), b"\\x01\\xff".hex(), xs[1:3], s[::-1], 7 % 3, -7 // 2, 2 ** 10, 1 << 4,
        5 & 3, 5 | 3, 5 ^ 3, 9 >> 1, [1] * 2, (1,) + (2,), "ab" * 2, 3 in xs, "z" not in d,
        bytes([1, 2])]
return out"""
    value = run(_fn(body), "f").return_value
    expected_head = [3, [0, 1, 2], 1, 5, 6, [1, 2, 3], [3, 2, 1], True, False,
                     [(3, "a"), (1, "b"), (2, "c")], [(0, 3), (1, 1), (2, 2)], [2, 1, 3], 3, 42,
                     "7", False, True, True, (3, 1, 2), {"k": 1}, 1, ["b", "a"], [2, 1],
                     [("b", 2), ("a", 1)], 2, 3, {"a": 1, "c": 3}]  # fmt: skip
    assert value[: len(expected_head)] == expected_head
    assert value[len(expected_head) :] == [
        5, 1, 1, [0, 3, 1, 2, 4], "hello, world", "HELLO, WORLD", True, True, ["Hello", "World"],
        "a-b", "HeLLo, WorLd", "x", 7, "01ff", [3, 1], "dlroW ,olleH", 1, -4, 1024, 16, 1, 7, 6,
        4, [1, 1], (1, 2), "abab", True, True, b"\x01\x02",
    ]  # fmt: skip


def test_dict_iteration_is_insertion_order(run: Runner) -> None:
    body = "d = {}\nfor k in ['z', 'a', 'm', 'b']:\n    d[k] = 1\nreturn [k for k in d]"
    assert run(_fn(body), "f").return_value == ["z", "a", "m", "b"]


def test_module_constants_and_calls_leave_no_state(run: Runner) -> None:
    source = "SEEN = (1, 2)\n@public\ndef f(ctx, x=()):\n    y = list(x)\n    y.append(1)\n"
    source += "    return [SEEN, y]\n"
    assert run(source, "f").return_value == [(1, 2), [1]]
    assert run(source, "f").return_value == [(1, 2), [1]]


def test_uncatchable_errors_derive_from_base_exception() -> None:
    assert not issubclass(OutOfGas, Exception)
    assert not issubclass(LimitExceeded, Exception)


def test_sandbox_has_no_cpython_builtins(run: Runner) -> None:
    # Names that the checker lets through but the sandbox does not define.
    for name in ["ord", "chr", "round", "divmod", "hex", "slice", "object"[:0] + "ascii"]:
        assert run(_fn(f"return {name}"), "f").error == ("error", "NameError")


def test_loops_unpacking_and_control_flow(run: Runner) -> None:
    body = """d = {"a": 1, "b": 2, "c": 3}
total = 0
for k, v in d.items():
    if k == "b":
        continue
    total += v
n = 0
while True:
    n += 1
    if n >= 5:
        break
else_branch = 0
for i in range(3):
    pass
else:
    else_branch = 1
return [total, n, else_branch, {k: v * 2 for k, v in d.items() if v > 1}]"""
    assert run(_fn(body), "f").return_value == [4, 5, 1, {"b": 4, "c": 6}]


def test_keyword_arguments_named_like_helper_parameters(run: Runner) -> None:
    source = "def g(obj, name=1):\n    return obj + name\n@public\ndef f(ctx):\n"
    source += "    return [g(obj=1, name=2), {'k': 1}.get('k', 0)]\n"
    assert run(source, "f").return_value == [3, 1]
