"""Gas calibration: adversarial micro-loops, one per allowed operation, and their ns per gas.

Gas only bounds CPU if every operation a contract can reach costs about as much time per gas
unit as every other. The calibration check (spec: contracts.md, "A calibration check in CI")
runs, in one process and under one gas budget, a reference loop (a `while` loop of small-int
additions: the interpreter's own per-gas speed) and one loop per allowed operation that
hammers that operation with the costliest inputs its price allows (long common prefixes,
sizes near the limits, nested values, non-ASCII text, repeated cheap syntax). A loop whose
ns per gas is many times the reference's marks an operation that gas under-prices; a ratio
measured in one run holds on any machine, unlike an absolute time.

This module is a core (no clock, no IO): `measure` takes the clock from its caller
(`time.perf_counter_ns`), so the test suite and a benchmark script share the catalogue.

- `allowed_operations()`: every operation id the sandbox allows, from the live allow-lists
  (syntax nodes, builtins, value methods, `ctx` attributes and host methods); a loop's
  `covers` names ids from this set, and the test checks the catalogue covers all of them.
- `CATALOGUE`: the micro-loops; `REFERENCE`: the reference loop.
- `measure(loop, clock, suite, budget)`: one run on a `CalibrationHost` (an in-memory host
  with the channel's real crypto suite); `calibrate(...)`: reference and loop alternated, the
  fastest of a few repeats of each, and their ratio.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from taihang.codec import Value
from taihang.crypto.suite import CryptoSuite
from taihang.execution.contracts import checker
from taihang.execution.contracts.compiler import CompiledContract, compile_contract
from taihang.execution.contracts.engine import call_contract
from taihang.execution.contracts.gas import Meter
from taihang.execution.contracts.host import CallResult, Context, Crypto, Storage
from taihang.execution.contracts.runtime import Runtime
from taihang.execution.contracts.wrappers import METHODS, build_builtins

BUDGET_DEFAULT: Final = 100_000  # gas per run: ~10 ms for the reference loop on a 2-vCPU VM
REPEAT: Final = 512  # copies of a cheap statement per iteration (sources stay < 64 KiB)
REPEAT_ATTRIBUTE: Final = 16  # copies of a `ctx.<attr>` read (each is ~0.5 us)
ENTRY: Final = "run"
CALLEE: Final = "callee"
SEED: Final = b"\x07" * 32
MESSAGE: Final = b"calibration message " * 4


# -- operation ids ------------------------------------------------------------------------------


def allowed_operations() -> frozenset[str]:
    """Every operation a contract may perform, named as `CATALOGUE` entries' `covers` name them.

    `syntax:<ast node>` for each node type the checker allows, `builtin:<name>` for each
    builtin, `method:<type>.<name>` for each value method, `ctx.<attr>` and
    `ctx.storage.<m>`/`ctx.crypto.<m>` for the host objects.
    """
    operations = {f"syntax:{node.__name__}" for node in checker._ALLOWED}
    operations |= {f"builtin:{name}" for name in build_builtins(Runtime(Meter(0)))}
    operations |= {
        f"method:{kind.__name__}.{name}" for kind, methods in METHODS.items() for name in methods
    }
    operations |= {f"ctx.{name}" for name in Context.ATTRIBUTES}
    operations |= {f"ctx.storage.{name}" for name in Storage.ATTRIBUTES}
    operations |= {f"ctx.crypto.{name}" for name in Crypto.ATTRIBUTES}
    return frozenset(operations)


# -- the catalogue --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MicroLoop:
    """A contract whose `run(ctx, *args)` repeats one operation until the gas runs out.

    `expect` is the error kind the run must end with (`out_of_gas` for endless loops); a run
    that ends otherwise measured something else and is reported as broken. `callee` is the
    source of the contract that `ctx.call("callee", ...)` reaches.
    """

    name: str
    covers: frozenset[str]
    source: str
    args: tuple[Value, ...] = ()
    expect: str = "out_of_gas"
    callee: str | None = None


def _indent(text: str, depth: int) -> str:
    pad = "    " * depth
    return "\n".join(pad + line if line else line for line in text.splitlines())


def _loop(
    name: str,
    covers: Iterable[str],
    body: str,
    *,
    setup: str = "",
    repeat: int = 1,
    params: str = "",
    args: tuple[Value, ...] = (),
    prelude: str = "",
    expect: str = "out_of_gas",
    callee: str | None = None,
    tail: str = "",
) -> MicroLoop:
    """`run(ctx, params)`: `setup`, then `while True:` with `body` repeated `repeat` times.

    `prelude` holds top-level helper defs; `tail` replaces the endless loop (for an operation
    that ends the call, like `revert`).
    """
    lines = [prelude, "@public", f"def {ENTRY}(ctx{', ' + params if params else ''}):"]
    if setup:
        lines.append(_indent(setup, 1))
    if tail:
        lines.append(_indent(tail, 1))
    else:
        lines.append("    while True:")
        lines.append(_indent("\n".join([body] * repeat), 2))
    ids = frozenset(covers)
    return MicroLoop(name, ids, "\n".join(lines) + "\n", args, expect, callee)


def _syntax(*names: str) -> list[str]:
    return [f"syntax:{name}" for name in names]


_BIG: Final = "(1 << 511) - 1"  # the widest int: 512 bits
_HALF: Final = "(1 << 255) + 12345"  # a 256-bit factor: products stay within 512 bits
_PREFIXED: Final = "['x' * 2000 + str(1000 - i) for i in range(200)]"  # long common prefixes
_FLAT: Final = "[[] for i in range(2000)]"  # many items, one byte each when encoded
_PAIRS: Final = "[[i, i] for i in range(2000)]"
_DICTS: Final = "[{}] * 2000"  # the dearest values to encode and decode per item

REFERENCE: Final = _loop(
    "reference: while loop of int additions",
    _syntax(
        "Module", "FunctionDef", "arguments", "arg", "While", "Assign", "BinOp", "Add", "Name",
        "Load", "Store", "Constant",
    ),
    "x = x + 1",
    setup="x = 0",
)  # fmt: skip


def _cheap_syntax() -> list[MicroLoop]:
    """Statements and expressions no helper prices: the static cost of their block pays."""
    setup = f"b = {_BIG}\nc = [1, 2, 3]\nz = 0\nt = (1, 2)\nxs = [1]"
    cases: list[tuple[str, list[str], str]] = [
        ("assign a name", _syntax("Assign", "Name"), "a = b"),
        ("annotated assign", _syntax("AnnAssign"), "a: int = b"),
        ("expression statement", _syntax("Expr"), "b"),
        ("pass", _syntax("Pass"), "pass"),
        ("if", _syntax("If"), "if c:\n    a = b\nelse:\n    a = z"),
        ("conditional expression", _syntax("IfExp"), "a = b if c else z"),
        ("and", _syntax("BoolOp", "And"), "a = c and c and c and c and c and c and c and b"),
        ("or", _syntax("BoolOp", "Or"), "a = z or z or z or z or z or z or z or b"),
        ("not", _syntax("UnaryOp", "Not"), "a = not c"),
        ("unary minus, 512 bits", _syntax("USub"), "a = -b"),
        ("unary plus, 512 bits", _syntax("UAdd"), "a = +b"),
        ("invert, 512 bits", _syntax("Invert"), "a = ~b"),
        ("is / is not", _syntax("Compare", "Is", "IsNot"), "a = b is None\na = b is not None"),
        ("unpack a tuple", _syntax("Tuple", "List"), "a, d = t\n[a, d] = t"),
    ]
    cheapest = {"assign a name", "annotated assign", "expression statement", "pass"}
    loops = [
        _loop(
            f"syntax: {name}",
            covers,
            body,
            setup=setup,
            repeat=4 * REPEAT if name in cheapest else REPEAT,  # ~1 ns each: more of them
        )
        for name, covers, body in cases
    ]
    loops.append(
        _loop("syntax: method reference", _syntax("Attribute"), "a = xs.append",
              setup=setup, repeat=REPEAT_ATTRIBUTE)
    )  # fmt: skip
    for attribute in sorted(Context.ATTRIBUTES):
        loops.append(
            _loop(
                f"ctx.{attribute}",
                [f"ctx.{attribute}", "syntax:Attribute"],
                f"a = ctx.{attribute}",
                repeat=REPEAT_ATTRIBUTE,
            )
        )
    straight = "\n".join(["a = -b if c and c and c and c else ~b"] * 2 * REPEAT)
    loops.append(
        _loop("syntax: straight-line function body", _syntax("FunctionDef", "Call"), "g(b)",
              setup=f"b = {_BIG}", prelude="def g(b):\n    c = 1\n" + _indent(straight, 1) + "\n")
    )  # fmt: skip
    condition = " and ".join(["c"] * 4 * REPEAT)
    loops.append(
        _loop("syntax: comprehension condition", _syntax("ListComp", "comprehension", "BoolOp"),
              f"a = [y for y in xs if {condition} and y is None]",
              setup="c = 1\nxs = list(range(1000))")
    )  # fmt: skip
    return loops


def _control_flow() -> list[MicroLoop]:
    prelude_call = "def g(p, q=1):\n    return p\n"
    prelude_down = "def down(n):\n    if n == 0:\n        return 0\n    return down(n - 1)\n"
    return [
        _loop("for over a list", _syntax("For"), "for y in xs:\n    pass",
              setup="xs = list(range(1000))"),
        _loop("for over a dict (key snapshot)", _syntax("For"), "for y in d:\n    pass",
              setup="d = {}\nfor i in range(1000):\n    d[i] = i"),
        _loop("for over a str", _syntax("For"), "for y in s:\n    pass", setup="s = 'x' * 1000"),
        _loop("break", _syntax("Break"), "while True:\n    break", repeat=8),
        _loop("continue", _syntax("Continue"), "for y in t:\n    continue",
              setup="t = (1, 2, 3, 4)", repeat=8),
        _loop("function call", _syntax("Call", "keyword", "Return"), "a = g(b, q=b)",
              setup="b = 1", prelude=prelude_call, repeat=8),
        _loop("recursion to depth 60", _syntax("Call", "Return"), "a = down(60)",
              prelude=prelude_down),
        _loop("list comprehension", _syntax("ListComp", "comprehension"),
              "a = [y for y in xs]", setup="xs = list(range(1000))"),
        _loop("list comprehension, filtered", _syntax("ListComp", "comprehension"),
              "a = [y for y in xs if y is None]", setup="xs = list(range(1000))"),
        _loop("nested list comprehension", _syntax("ListComp", "comprehension"),
              "a = [y for x in xs for y in t]", setup="xs = list(range(100))\nt = (1, 2, 3)"),
        _loop("dict comprehension", _syntax("DictComp", "comprehension"),
              "a = {y: y for y in xs}", setup="xs = list(range(1000))"),
    ]  # fmt: skip


def _displays_and_items() -> list[MicroLoop]:
    items = ", ".join(["b"] * 64)
    pairs = ", ".join(f"{i}: b" for i in range(64))
    return [
        _loop("list display, 64 items", _syntax("List"), f"a = [{items}]", setup="b = 1"),
        _loop("tuple display, 64 items", _syntax("Tuple"), f"a = ({items})", setup="b = 1"),
        _loop("dict display, 64 keys", _syntax("Dict"), f"a = {{{pairs}}}", setup="b = 1"),
        _loop("list index", _syntax("Subscript"), "a = xs[500]", setup="xs = list(range(1000))",
              repeat=8),
        _loop("dict lookup, long key", _syntax("Subscript"), "a = d[k]",
              setup="k = 'k' * 2000\nd = {k: 1}", repeat=8),
        _loop("str slice", _syntax("Subscript", "Slice"), "a = s[1:]", setup="s = 'x' * 20000"),
        _loop("list slice, reversed", _syntax("Subscript", "Slice"), "a = xs[::-1]",
              setup="xs = list(range(10000))"),
        _loop("bytes slice", _syntax("Subscript", "Slice"), "a = s[1:]", setup="s = b'x' * 20000"),
        _loop("list item store", _syntax("Assign", "Subscript"), "xs[5] = b",
              setup="xs = [0] * 10\nb = 1", repeat=8),
        _loop("dict insert, new keys", _syntax("Assign", "Subscript"), "d[i] = i\ni = i + 1",
              setup="d = {}\ni = 0"),
        _loop("dict insert, long new keys", _syntax("Assign", "Subscript"),
              "d[k + str(i)] = i\ni = i + 1", setup="d = {}\ni = 0\nk = 'k' * 200"),
        _loop("augmented item", _syntax("AugAssign", "Subscript"), "d['n'] += 1",
              setup="d = {'n': 0}", repeat=8),
        _loop("augmented name", _syntax("AugAssign"), "x += 1", setup="x = 0", repeat=8),
        _loop("del dict item", _syntax("Delete", "Del", "Subscript"), "d['k'] = 1\ndel d['k']",
              setup="d = {}"),
        _loop("del list front", _syntax("Delete", "Del", "Subscript"), "xs.append(1)\ndel xs[0]",
              setup="xs = [0] * 50000"),
    ]  # fmt: skip


def _operators() -> list[MicroLoop]:
    ints = f"b = {_BIG}\nh = {_HALF}\nc = 3"
    strs = "s = 'x' * 20000\nr = 'x' * 20000"
    lists = "xs = list(range(10000))\nys = list(range(10000))"
    nested = f"p = {_FLAT}\nq = {_FLAT}"
    prefixed = f"u = {_PREFIXED}\nw = {_PREFIXED}"
    long_a = "la = 'x' * 20000 + 'a'\nlb = 'x' * 20000 + 'b'"
    return [
        _loop("int + int, 512 bits", _syntax("Add"), "a = h + h", setup=ints, repeat=8),
        _loop("str + str", _syntax("Add"), "a = s + r", setup=strs),
        _loop("str growth by +", _syntax("Add"), "g = g + 'x'", setup="g = ''"),
        _loop("bytes + bytes", _syntax("Add"), "a = s + s", setup="s = b'x' * 20000"),
        _loop("list + list", _syntax("Add"), "a = xs + ys", setup=lists),
        _loop("tuple + tuple", _syntax("Add"), "a = t + t", setup="t = tuple(range(10000))"),
        _loop("int - int, 512 bits", _syntax("Sub"), "a = b - h", setup=ints, repeat=8),
        _loop("int * int, 256x256 bits", _syntax("Mult"), "a = h * h", setup=ints, repeat=8),
        _loop("small int * int", _syntax("Mult"), "a = c * c", setup=ints, repeat=8),
        _loop("str * n", _syntax("Mult"), "a = 'xy' * 50000"),
        _loop("bytes * n", _syntax("Mult"), "a = b'xy' * 50000"),
        _loop("list * n", _syntax("Mult"), "a = [b] * 20000", setup="b = 1"),
        _loop("tuple * n", _syntax("Mult"), "a = t * 5000", setup="t = (1, 2, 3, 4)"),
        _loop("int // int, 512 by 256 bits", _syntax("FloorDiv"), "a = b // h", setup=ints,
              repeat=8),
        _loop("int % int, 512 by 256 bits", _syntax("Mod"), "a = b % h", setup=ints, repeat=8),
        _loop("int ** n, 508-bit result", _syntax("Pow"), "a = c ** 320", setup=ints, repeat=8),
        _loop("int ** 2, 256 bits", _syntax("Pow"), "a = h ** 2", setup=ints, repeat=8),
        _loop("int << n", _syntax("LShift"), "a = c << 509", setup=ints, repeat=8),
        _loop("int >> n", _syntax("RShift"), "a = b >> 3", setup=ints, repeat=8),
        _loop("int & int", _syntax("BitAnd"), "a = b & h", setup=ints, repeat=8),
        _loop("int | int", _syntax("BitOr"), "a = b | h", setup=ints, repeat=8),
        _loop("int ^ int", _syntax("BitXor"), "a = b ^ h", setup=ints, repeat=8),
        _loop("str == str, equal", _syntax("Eq"), "a = s == r", setup=strs),
        _loop("nested list == list", _syntax("Eq"), "a = p == q", setup=nested),
        _loop("list == list, long strings", _syntax("Eq"), "a = u == w", setup=prefixed),
        _loop("dict == dict", _syntax("Eq"), "a = d == e",
              setup="d = {i: [] for i in range(2000)}\ne = {i: [] for i in range(2000)}"),
        _loop("str != str", _syntax("NotEq"), "a = s != r", setup=strs),
        _loop("nested list != list", _syntax("NotEq"), "a = p != q", setup=nested),
        _loop("int < int, 512 bits", _syntax("Lt"), "a = h < b", setup=ints, repeat=8),
        _loop("str < str, common prefix", _syntax("Lt"), "a = la < lb", setup=long_a),
        _loop("list < list, long strings", _syntax("Lt"), "a = u < w", setup=prefixed),
        _loop("str <= str", _syntax("LtE"), "a = la <= lb", setup=long_a),
        _loop("nested list <= list", _syntax("LtE"), "a = p <= q", setup=nested),
        _loop("str > str", _syntax("Gt"), "a = lb > la", setup=long_a),
        _loop("list >= list", _syntax("GtE"), "a = u >= w", setup=prefixed),
        _loop("str in str, worst pattern", _syntax("In"), "a = n in s",
              setup="s = 'ab' * 14500\nn = 'ab' * 48 + 'bb'"),
        _loop("str in str, long pattern", _syntax("In"), "a = n in s",
              setup="s = 'a' * 100000\nn = 'a' * 1000 + 'b'"),
        _loop("value in list of long strings", _syntax("In"), "a = k in u",
              setup=f"u = {_PREFIXED}\nk = 'x' * 2000 + '1'"),
        _loop("key in dict, long key", _syntax("In"), "a = k in d",
              setup="k = 'k' * 20000\nd = {k: 1}", repeat=8),
        _loop("str not in str", _syntax("NotIn"), "a = n not in s",
              setup="s = 'ab' * 14500\nn = 'ab' * 48 + 'bb'"),
        _loop("value not in nested list", _syntax("NotIn"), "a = [0] not in p", setup=nested),
        _loop("list in range (a linear search)", _syntax("In"), "a = [0] in r",
              setup="r = range(3000)"),
        _loop("str not in range (a linear search)", _syntax("NotIn"), "a = 'x' not in r",
              setup="r = range(3000)"),
    ]  # fmt: skip


def _builtins() -> list[MicroLoop]:
    def b(name: str) -> list[str]:
        return [f"builtin:{name}"]

    return [
        _loop("len", b("len"), "a = len(xs)", setup="xs = [0] * 10000", repeat=8),
        _loop("range", b("range"), "a = range(0, 100000, 1)", repeat=8),
        _loop("min of long strings", b("min"), "a = min(u)", setup=f"u = {_PREFIXED}"),
        _loop("min with key", b("min"), "a = min(u, key=len)", setup=f"u = {_PREFIXED}"),
        _loop("max of nested lists", b("max"), "a = max(p)", setup=f"p = {_PAIRS}"),
        _loop("max of two", b("max"), "a = max(c, h)", setup=f"c = 3\nh = {_HALF}", repeat=8),
        _loop("sum of 512-bit ints", b("sum"), "a = sum(xs)",
              setup="xs = [1 << 500] * 500"),
        _loop("sorted, long common prefixes", b("sorted"), "a = sorted(u)",
              setup=f"u = {_PREFIXED}"),
        _loop("sorted, nested lists", b("sorted"), "a = sorted(p)",
              setup="p = [[i % 7, [i % 3, [i]]] for i in range(500)]"),
        _loop("sorted with key", b("sorted"), "a = sorted(xs, key=abs, reverse=True)",
              setup="xs = list(range(-500, 500))"),
        _loop("any", b("any"), "a = any(zs)", setup="zs = [0] * 10000"),
        _loop("all", b("all"), "a = all(zs)", setup="zs = [1] * 10000"),
        _loop("zip of three", b("zip"), "a = zip(xs, xs, xs)", setup="xs = list(range(5000))"),
        _loop("enumerate", b("enumerate"), "a = enumerate(xs)", setup="xs = list(range(5000))"),
        _loop("reversed", b("reversed"), "a = reversed(xs)", setup="xs = list(range(5000))"),
        _loop("abs, 512 bits", b("abs"), "a = abs(n)", setup=f"n = -{_BIG}", repeat=8),
        _loop("isinstance, seven types", b("isinstance"),
              "a = isinstance(c, (str, bytes, list, dict, tuple, bool, int))", setup="c = 1",
              repeat=8),
        _loop("require", b("require"), "require(c, 'not reached')", setup="c = 1", repeat=8),
        _loop("revert (ends the call)", b("revert"), "", expect="reverted",
              tail="i = 0\nwhile i < 5000:\n    i = i + 1\nrevert('m' * 1024)"),
        _loop("int of 154 digits", b("int"), "a = int(s)", setup="s = '9' * 154", repeat=8),
        _loop("int of int", b("int"), "a = int(c)", setup="c = 7", repeat=8),
        _loop("str of a 512-bit int", b("str"), "a = str(n)", setup=f"n = {_BIG}", repeat=8),
        _loop("str of str", b("str"), "a = str(s)", setup="s = 'x' * 1000", repeat=8),
        _loop("bool of a list", b("bool"), "a = bool(xs)", setup="xs = [0] * 1000", repeat=8),
        _loop("bytes of a list", b("bytes"), "a = bytes(xs)", setup="xs = [255] * 10000"),
        _loop("bytes of bytes", b("bytes"), "a = bytes(s)", setup="s = b'x' * 1000", repeat=8),
        _loop("list of a str", b("list"), "a = list(s)", setup="s = 'x' * 10000"),
        _loop("list of a range", b("list"), "a = list(range(1000, 11000))"),
        _loop("dict of pairs", b("dict"), "a = dict(p)", setup=f"p = {_PAIRS}"),
        _loop("dict of a dict", b("dict"), "a = dict(d)",
              setup="d = {i: i for i in range(2000)}"),
        _loop("tuple of a list", b("tuple"), "a = tuple(xs)", setup="xs = list(range(10000))"),
    ]  # fmt: skip


def _methods() -> list[MicroLoop]:
    def m(name: str) -> list[str]:
        return [f"method:{name}"]

    big_dict = "d = {i: [i] for i in range(2000)}\nk = 'k' * 20000\nd[k] = 1"
    non_ascii = (
        "\u0130\u00df\ufb03"  # dotted I, sharp s, ffi ligature: case mapping changes the length
    )
    return [
        _loop("dict.get, long key", m("dict.get"), "a = d.get(k)", setup=big_dict, repeat=8),
        _loop("dict.keys", m("dict.keys"), "a = d.keys()", setup=big_dict),
        _loop("dict.values", m("dict.values"), "a = d.values()", setup=big_dict),
        _loop("dict.items", m("dict.items"), "a = d.items()", setup=big_dict),
        _loop("dict.pop and re-insert", m("dict.pop"), "a = d.pop(k)\nd[k] = a", setup=big_dict),
        _loop("dict.setdefault", m("dict.setdefault"), "a = d.setdefault(k, 0)", setup=big_dict,
              repeat=8),
        _loop("list.append", m("list.append"), "xs.append(1)\nxs.pop()",
              setup="xs = []", repeat=8),
        _loop("list.extend", m("list.extend"), "xs.extend(ys)\nxs = []",
              setup="xs = []\nys = list(range(10000))"),
        _loop("list.pop(0), long list", m("list.pop"), "xs.append(xs.pop(0))",
              setup="xs = list(range(50000))"),
        _loop("list.insert(0), long list", m("list.insert"), "xs.insert(0, 1)\nxs.pop()",
              setup="xs = list(range(50000))"),
        _loop("list.index, long strings", m("list.index"), "a = u.index(k)",
              setup=f"u = {_PREFIXED}\nk = 'x' * 2000 + '801'"),
        _loop("list.count, nested", m("list.count"), "a = p.count([0])", setup=f"p = {_FLAT}"),
        _loop("str.lower, non-ASCII", m("str.lower"), "a = s.lower()", params="s",
              args=(non_ascii * 3000,)),
        _loop("str.upper, non-ASCII", m("str.upper"), "a = s.upper()", params="s",
              args=(non_ascii * 3000,)),
        _loop("str.startswith, long prefix", m("str.startswith"), "a = s.startswith(r)",
              setup="s = 'x' * 20000\nr = 'x' * 20000"),
        _loop("str.endswith, long suffix", m("str.endswith"), "a = s.endswith(r)",
              setup="s = 'x' * 20000\nr = 'x' * 20000"),
        _loop("str.split on whitespace", m("str.split"), "a = s.split()", setup="s = 'a ' * 5000"),
        _loop("str.split, worst separator", m("str.split"), "a = s.split(n)",
              setup="s = 'ab' * 14500\nn = 'ab' * 48 + 'bb'"),
        _loop("str.join, many pieces", m("str.join"), "a = ','.join(xs)",
              setup="xs = ['x'] * 10000"),
        _loop("str.replace, amplifying", m("str.replace"), "a = s.replace('a', r)",
              setup="s = 'a' * 1000\nr = 'x' * 100"),
        _loop("str.replace, worst pattern", m("str.replace"), "a = s.replace(n, 'c')",
              setup="s = 'ab' * 14500\nn = 'ab' * 48 + 'bb'"),
        _loop("str.strip, ASCII chars", m("str.strip"), "a = s.strip(c)",
              setup="s = 'a' * 5000\nc = 'b' * 5000 + 'a'"),
        _loop("str.strip, non-ASCII chars", m("str.strip"), "a = s.strip(c)", params="s, c",
              args=("\u4e00" * 5000, "\u4e01" * 5000 + "\u4e00")),
        _loop("str.find, worst pattern", m("str.find"), "a = s.find(n)",
              setup="s = 'ab' * 14500\nn = 'ab' * 48 + 'bb'"),
        _loop("bytes.hex", m("bytes.hex"), "a = s.hex()", setup="s = b'x' * 20000"),
    ]  # fmt: skip


def _host() -> list[MicroLoop]:
    def h(*names: str) -> list[str]:
        return [f"ctx.{name}" for name in names]

    fat_callee = "".join(f"def f{i}(a):\n    return a\n" for i in range(400))
    fat_callee += "@public\ndef ping(ctx, p=0):\n    return 1\n"
    nested_callee = f"@public\ndef nested(ctx):\n    return {_DICTS}\n"
    nesting_callee = (
        "@public\ndef down(ctx, n):\n    if n > 0:\n        ctx.call('callee', 'down', [n - 1])\n"
        "    return n\n"
    )
    return [
        _loop("storage.get, missing key", h("storage.get"), "a = ctx.storage.get(k)",
              setup="k = 'k' * 200", repeat=8),
        _loop("storage.get, many small items", h("storage.get"), "a = ctx.storage.get('k')",
              setup=f"ctx.storage.set('k', {_DICTS})"),
        _loop("storage.get, one-byte ints", h("storage.get"), "a = ctx.storage.get('k')",
              setup="ctx.storage.set('k', [7] * 2000)"),
        _loop("storage.get, 8-byte strings", h("storage.get"), "a = ctx.storage.get('k')",
              setup="ctx.storage.set('k', ['abcdefg' + str(i % 10) for i in range(2000)])"),
        _loop("storage.has", h("storage.has"), "a = ctx.storage.has(k)",
              setup="k = 'k' * 200\nctx.storage.set(k, [1] * 2000)", repeat=8),
        _loop("storage.set, nested value", h("storage.set"), "ctx.storage.set('k', p)",
              setup=f"p = {_DICTS}"),
        _loop("storage.set, small value", h("storage.set"), "ctx.storage.set('k', 1)", repeat=8),
        _loop("storage.delete", h("storage.delete"), "ctx.storage.delete(k)",
              setup="k = 'k' * 200", repeat=8),
        _loop("storage.items", h("storage.items"), "a = ctx.storage.items('p', 100)",
              setup="for i in range(100):\n    ctx.storage.set('p' + str(i), [])"),
        _loop("storage.items, dense values", h("storage.items"), "a = ctx.storage.items('p', 4)",
              setup="for i in range(4):\n    ctx.storage.set('p' + str(i), [{}] * 1000)"),
        _loop("emit, nested data", h("emit"), "ctx.emit('E', p)", setup=f"p = {_DICTS}"),
        _loop("emit, no data", h("emit"), "ctx.emit('E')", repeat=8),
        _loop("call a contract with 400 defs", h("call"), "a = ctx.call('callee', 'ping')",
              callee=fat_callee),
        _loop("call returning a nested list", h("call"), "a = ctx.call('callee', 'nested')",
              callee=nested_callee),
        _loop("call with nested arguments", h("call"), "a = ctx.call('callee', 'ping', [p])",
              setup=f"p = {_DICTS}", callee=fat_callee),
        _loop("call nesting to depth 30", h("call"), "a = ctx.call('callee', 'down', [30])",
              callee=nesting_callee),
        _loop("crypto.hash, 64 KiB", h("crypto.hash"), "a = ctx.crypto.hash(s)",
              setup="s = b'x' * 65536"),
        _loop("crypto.hash, empty", h("crypto.hash"), "a = ctx.crypto.hash(b'')", repeat=8),
        _loop("crypto.verify", h("crypto.verify"), "a = ctx.crypto.verify(k, m, s)",
              params="k, m, s", args=()),  # args filled in by `measure` from the suite
    ]  # fmt: skip


CATALOGUE: Final[tuple[MicroLoop, ...]] = (
    REFERENCE,
    *_cheap_syntax(),
    *_control_flow(),
    *_displays_and_items(),
    *_operators(),
    *_builtins(),
    *_methods(),
    *_host(),
)


# -- the host -------------------------------------------------------------------------------------


@dataclass
class CalibrationHost:
    """An in-memory `ContractHost`: a dict with a sorted key index, the real crypto suite.

    The executor's overlay costs more per storage access than this; the calibration measures
    the contract runtime's own work, which is what gas must bound.
    """

    suite: CryptoSuite
    callee: CompiledContract | None = None
    sender: str = "alice"
    org: str = "org1"
    roles: tuple[str, ...] = ("member",)
    contract: str = "calibration"
    channel: str = "main"
    height: int = 7
    timestamp_ms: int = 1_700_000_000_000
    tx_id: bytes = b"\x01" * 32
    data: dict[str, bytes] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)

    def storage_get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def storage_set(self, key: str, raw: bytes) -> None:
        if key not in self.data:
            bisect.insort(self.keys, key)
        self.data[key] = raw

    def storage_delete(self, key: str) -> None:
        if self.data.pop(key, None) is not None:
            del self.keys[bisect.bisect_left(self.keys, key)]

    def storage_items(self, prefix: str, limit: int) -> tuple[list[tuple[str, bytes]], int]:
        found: list[tuple[str, bytes]] = []
        for key in self.keys[bisect.bisect_left(self.keys, prefix) :]:
            if not key.startswith(prefix) or len(found) == limit:
                break
            found.append((key, self.data[key]))
        return found, len(found)

    def call(
        self, contract: str, method: str, args: list[Value], gas_limit: int, depth: int, view: bool
    ) -> CallResult:
        if contract != CALLEE or self.callee is None:
            return CallResult(None, 0, (), ("reverted", "no such contract"))
        return call_contract(self.callee, method, args, self, gas_limit, view=view, depth=depth)

    def hash(self, data: bytes) -> bytes:
        return self.suite.hash(data)

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        return self.suite.verify(public_key, message, signature)


# -- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measurement:
    """One run of one loop: wall time, gas used and how it ended."""

    name: str
    ns: int
    gas_used: int
    error: tuple[str, str] | None

    @property
    def ns_per_gas(self) -> float:
        return self.ns / max(self.gas_used, 1)


@dataclass(frozen=True, slots=True)
class Calibration:
    """A loop against the reference, each the fastest of its repeats, in ns per gas."""

    loop: MicroLoop
    loop_ns_per_gas: float
    reference_ns_per_gas: float
    error: tuple[str, str] | None

    @property
    def ratio(self) -> float:
        return self.loop_ns_per_gas / self.reference_ns_per_gas

    @property
    def ended_as_expected(self) -> bool:
        return self.error is not None and self.error[0] == self.loop.expect


def measure(
    loop: MicroLoop, clock: Callable[[], int], suite: CryptoSuite, budget: int = BUDGET_DEFAULT
) -> Measurement:
    """Run `loop` once under `budget` gas; `clock()` is a monotonic time in nanoseconds."""
    compiled = compile_contract(loop.source)
    callee = compile_contract(loop.callee) if loop.callee is not None else None
    host = CalibrationHost(suite=suite, callee=callee)
    args = list(loop.args)
    if "ctx.crypto.verify" in loop.covers:
        public_key = suite.public_key_from_seed(SEED)
        args = [public_key, MESSAGE, suite.sign(SEED, MESSAGE)]
    start = clock()
    result = call_contract(compiled, ENTRY, args, host, budget, view=False)
    elapsed = clock() - start
    return Measurement(loop.name, elapsed, result.gas_used, result.error)


def calibrate(
    loop: MicroLoop,
    clock: Callable[[], int],
    suite: CryptoSuite,
    *,
    repeats: int = 3,
    budget: int = BUDGET_DEFAULT,
) -> Calibration:
    """`loop` and `REFERENCE` run alternately `repeats` times each; the fastest of each."""
    best_loop = best_reference = float("inf")
    error: tuple[str, str] | None = None
    for _ in range(repeats):
        reference = measure(REFERENCE, clock, suite, budget)
        best_reference = min(best_reference, reference.ns_per_gas)
        run = measure(loop, clock, suite, budget)
        best_loop = min(best_loop, run.ns_per_gas)
        error = run.error
    return Calibration(loop, best_loop, best_reference, error)
