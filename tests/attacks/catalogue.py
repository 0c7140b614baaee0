"""The contract attack catalogue (spec: shared/spec/contracts.md, "What the sandbox must hold
against").

Each `Attack` is a hostile contract and the transactions that call it, with the outcome the
sandbox must produce:

- `rejected`: the deploy receipt is `reverted` with `compile error at line L: ...` (L is
  `line` unless that is 0) containing `message` (the attack never runs);
- `stopped`: the deploy succeeds, every call but the last is `ok`, and the last receipt has
  status `status` (`out_of_gas` or `reverted`) and an error containing `message` (equal to it
  when `exact`: normalised errors carry no CPython message text);
- `harmless`: the receipts are as `statuses` says (all `ok` by default) and `check` holds on
  the results (the sender cannot be forged, state does not leak between calls, ...).

`tests/attacks/run_attack.py ID` runs one entry in a process of its own with a memory limit;
`test_attack_catalogue.py` runs every entry that way under a watchdog (harmless entries and
entries with `hash_seeds` or `second_env` twice, under different `PYTHONHASHSEED`s and the
`second_env` variables, and compares the results). An entry
with `xfail` set documents a sandbox bug that the entry exposes: its test is a strict xfail
until the source is fixed.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from taihang.constants import GAS_LIMIT_MAX

Expect = Literal["rejected", "stopped", "harmless"]
Value = Any  # a canonical value (taihang.codec.Value)

TARGET: Final = "target"  # the attack contract's name
CANARY: Final = "canary"  # a token deployed first and used after the attack
CANARY_SOURCE: Final = (
    Path(__file__).resolve().parents[2] / "examples" / "contracts" / "token.py"
).read_text()
GAS_DEFAULT: Final = 1_000_000  # the default transaction gas limit
GAS_MAX: Final = GAS_LIMIT_MAX  # the most gas the network accepts in one transaction
P61: Final = 2**61 - 1  # CPython's int hash modulus: k and k + P61 collide

FAMILIES: Final = (
    "subclasses-walk",  # attribute walks to object.__subclasses__
    "frames",  # frames via generators, tracebacks and exceptions
    "format-traversal",  # str.format / format_map / string.Formatter
    "computed-getattr",  # getattr with computed dunder strings
    "type-three-arg",  # three-argument type
    "import-eval-builtins",  # __import__, eval, exec, compile, open, builtins lookup
    "restrictedpython-cve",  # the six RestrictedPython CVEs since 2023
    "cpu-bomb",
    "memory-bomb",
    "hash-collision",  # int hash-collision keys through every dict-insertion path
    "swallow-out-of-gas",
    "forge-sender",
    "module-state",  # leftover module state
    "mutable-default",
    "nondeterminism",  # hash order, id, repr, float summation, error message text
    "deep-nesting",  # deep-nesting compile attacks
    "homoglyph",  # homoglyph identifiers
)


@dataclass(frozen=True, slots=True)
class Result:
    """What a `check` sees of a run: one entry per call, in order."""

    returns: list[Value]
    statuses: list[str]
    errors: list[str]
    events: list[list[str]]
    signer: str  # the address that signed the calls
    deployer: str  # the address that signed the deploys


@dataclass(frozen=True, slots=True)
class Attack:
    id: str
    family: str
    why: str
    source: str
    expect: Expect
    message: str = ""
    status: Literal["", "out_of_gas", "reverted"] = ""
    exact: bool = False
    line: int = 0  # rejected: the line the compile error names (0: any)
    calls: tuple[tuple[str, tuple[Value, ...]], ...] = ()
    init_args: tuple[Value, ...] = ()
    helpers: tuple[tuple[str, str, tuple[Value, ...]], ...] = ()  # (name, source, init args)
    contract: str = ""  # where the calls go; TARGET when empty
    signer: Literal["caller", "deployer"] = "caller"  # who signs the calls
    gas_limit: int = GAS_DEFAULT
    statuses: tuple[str, ...] = ()  # harmless: expected call statuses (default all "ok")
    check: Callable[[Result], None] | None = field(default=None, compare=False)
    hash_seeds: bool = False
    second_env: tuple[tuple[str, str], ...] = ()  # more variables for the second run
    xfail: str = ""


def public(body: str, params: str = "ctx", name: str = "f") -> str:
    """A contract with one `@public` function `name(params)` whose body is `body`."""
    return f"@public\ndef {name}({params}):\n" + textwrap.indent(textwrap.dedent(body), "    ")


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


CALL_F: Final = (("f", ()),)


def equals(*expected: Value) -> Callable[[Result], None]:
    """A check that the calls returned `expected`, in order."""

    def check(result: Result) -> None:
        assert result.returns == list(expected), result.returns

    return check


def rejected(
    id: str, family: str, why: str, source: str, message: str, *, line: int | None = None
) -> Attack:
    return Attack(id, family, why, source, "rejected", message=message, line=line or 0)


def stopped(
    id: str,
    family: str,
    why: str,
    source: str,
    message: str,
    *,
    status: Literal["out_of_gas", "reverted"] = "reverted",
    exact: bool = False,
    calls: tuple[tuple[str, tuple[Value, ...]], ...] = CALL_F,
    gas_limit: int = GAS_DEFAULT,
    helpers: tuple[tuple[str, str, tuple[Value, ...]], ...] = (),
    hash_seeds: bool = False,
    xfail: str = "",
) -> Attack:
    return Attack(
        id,
        family,
        why,
        source,
        "stopped",
        message=message,
        status=status,
        exact=exact,
        calls=calls,
        gas_limit=gas_limit,
        helpers=helpers,
        hash_seeds=hash_seeds,
        xfail=xfail,
    )


def out_of_gas(id: str, family: str, why: str, source: str, *, xfail: str = "") -> Attack:
    """A bomb run with the most gas the network accepts: it must end as `out_of_gas`."""
    return stopped(
        id, family, why, source, "OutOfGas", status="out_of_gas", gas_limit=GAS_MAX, xfail=xfail
    )


def limited(id: str, family: str, why: str, source: str, limit: str, *, xfail: str = "") -> Attack:
    """An attack under the most gas that must hit the size or depth limit `limit`."""
    return stopped(
        id, family, why, source, f"limit exceeded: {limit}", gas_limit=GAS_MAX, xfail=xfail
    )


def contract_error(
    id: str, family: str, why: str, source: str, error: str, **kwargs: Any
) -> Attack:
    """Stopped with a normalised error: exactly `contract error: <class name>`."""
    return stopped(id, family, why, source, f"contract error: {error}", exact=True, **kwargs)


# Bugs the catalogue found and the fixes that closed them (issue 8):
# - `d.get` without a call built a functools.partial for no gas: now BOUND_METHOD gas;
# - comprehension results escaped the 100,000-item limit: now checked by `_t_comp`;
# - `x in range(n)` with a non-int x was priced 0 but scans the range in C: now n gas;
# - `s.strip(chars)` is O(len(s) * len(chars)) in C but was charged the sum: now the product;
# - small dicts took ~64-230 bytes for 1-3 gas: now DICT and DICT_ENTRY gas;
# - long decimal literals met CPython's per-process int_max_str_digits before our 512-bit
#   check, so receipts could differ between nodes: now refused before parsing;
# - zip and enumerate over str or bytes built lists past the item limit: now checked.
# An entry still marks an open bug with `xfail=<reason>`.

SPIN: Final = "while True:\n    pass\n"
ECHO: Final = src(
    """
    @public
    def who(ctx):
        return [ctx.sender, ctx.org, ctx.roles]

    @public
    def spin(ctx):
        while True:
            pass

    @public
    def fail(ctx):
        revert("callee says no")
    """
)


def _subclasses_walk() -> list[Attack]:
    family = "subclasses-walk"
    return [
        # Found after the first catalogue: the operands of `is` skipped the rewrite and ran as
        # raw Python, reaching the host and the overlay.
        contract_error(
            "is-operand-reaches-the-host",
            family,
            "the left operand of `is` once ran unchecked: ctx.host.overlay was one walk away",
            public("return ctx.host.storage_set('k', b'') is None\n"),
            "AttributeError",
        ),
        contract_error(
            "is-operand-charges-negative-gas",
            family,
            "through the unchecked `is` operand, the runtime's meter could be refunded",
            public("return ctx.rt.meter.charge(-10000000) is None\n"),
            "AttributeError",
        ),
        rejected(
            "subclasses-tuple-class-bases",
            family,
            "the classic walk from a literal to object.__subclasses__()",
            public("return ().__class__.__bases__[0].__subclasses__()\n"),
            "names starting with _ are not allowed",
            line=3,
        ),
        rejected(
            "subclasses-mro-walk",
            family,
            "__mro__ reaches object as well",
            public("x = [].__class__.__mro__\nreturn x\n"),
            "attribute '__mro__'",
            line=3,
        ),
        rejected(
            "subclasses-ctx-class",
            family,
            "a host object's class leads to its module globals",
            public("return ctx.__class__.__init__.__globals__\n"),
            "names starting with _ are not allowed",
            line=3,
        ),
        contract_error(
            "subclasses-host-internals",
            family,
            "host objects expose only their listed attributes, not the host or the overlay",
            public("return ctx.storage.host\n"),
            "AttributeError",
        ),
        contract_error(
            "subclasses-ctx-runtime",
            family,
            "the runtime behind ctx (the gas meter) is not reachable",
            public("return ctx.rt\n"),
            "AttributeError",
        ),
        contract_error(
            "subclasses-partial-func",
            family,
            "builtins are functools.partial objects; their .func leads to module globals",
            public("g = len\nreturn g.func\n"),
            "AttributeError",
        ),
        contract_error(
            "subclasses-bound-method-args",
            family,
            "a bound value method is a partial whose .args hold the runtime",
            public("m = {}.get\nreturn m.args\n"),
            "AttributeError",
        ),
        contract_error(
            "subclasses-type-builtin-py-type",
            family,
            "the int builtin wraps the real type object",
            public("return int.py_type\n"),
            "AttributeError",
        ),
        contract_error(
            "subclasses-subscript-host",
            family,
            "subscripting a host object with a dunder string is no way around attributes",
            public('return ctx["__class__"]\n'),
            "TypeError",
        ),
    ]


def _frames() -> list[Attack]:
    family = "frames"
    return [
        rejected(
            "frames-generator-function",
            family,
            "a generator's gi_frame.f_back walks to the caller's globals",
            src(
                """
                def g(x):
                    yield x

                @public
                def f(ctx):
                    return g(ctx).gi_frame.f_back.f_globals
                """
            ),
            "yield (generators) is not allowed",
            line=2,
        ),
        rejected(
            "frames-generator-expression",
            family,
            "a generator expression is a generator too",
            public("return (x for x in [1]).gi_frame\n"),
            "generator expressions are not allowed",
            line=3,
        ),
        rejected(
            "frames-traceback-from-exception",
            family,
            "a caught exception's __traceback__.tb_frame reaches the executor's frames",
            public("try:\n    ctx.nope\nexcept Exception as e:\n    return e\n"),
            "try/except is not allowed",
            line=3,
        ),
        rejected(
            "frames-with-exit-traceback",
            family,
            "a context manager's __exit__ receives the traceback",
            public("with ctx as c:\n    pass\n"),
            "with is not allowed",
            line=3,
        ),
        rejected(
            "frames-coroutine",
            family,
            "a coroutine's cr_frame is a frame too",
            src(
                """
                async def g(ctx):
                    return 1
                """
            ),
            "async functions are not allowed",
            line=1,
        ),
        contract_error(
            "frames-attribute-names-at-run-time",
            family,
            "frame attribute names without underscores are refused by the attribute allow-list",
            public("xs = [i for i in range(3)]\nreturn xs.gi_frame\n"),
            "AttributeError",
        ),
        contract_error(
            "frames-f-back-on-host",
            family,
            "f_back is not an attribute a host object lists",
            public("return ctx.emit.f_back\n"),
            "AttributeError",
        ),
        contract_error(
            "frames-exception-class-by-name",
            family,
            "exception classes are not in the sandbox's names",
            public("return ZeroDivisionError\n"),
            "NameError",
        ),
    ]


def _format_traversal() -> list[Attack]:
    family = "format-traversal"
    return [
        contract_error(
            "format-str-format-attribute",
            family,
            "str.format resolves {0.attr} with C getattr, past every guard",
            public('return "{0.storage.host.overlay}".format(ctx)\n'),
            "AttributeError",
        ),
        contract_error(
            "format-format-map",
            family,
            "format_map traverses a mapping's values the same way",
            public('return "{x.func}".format_map({"x": len})\n'),
            "AttributeError",
        ),
        contract_error(
            "format-percent-mapping",
            family,
            "printf-style formatting with a mapping would call repr and str on host objects",
            public('return "%(a)s" % {"a": ctx}\n'),
            "ForbiddenOperation",
        ),
        rejected(
            "format-builtin-format",
            family,
            "format(obj, spec) calls obj.__format__",
            public('return format(ctx, "x")\n'),
            "name 'format' is not available in contracts",
            line=3,
        ),
        rejected(
            "format-f-string",
            family,
            "f-strings format values without going through the helpers",
            public('return f"{ctx.sender!r:>10}"\n'),
            "f-strings are not allowed",
            line=3,
        ),
        rejected(
            "format-string-formatter-import",
            family,
            "string.Formatter().get_field walks attributes",
            public('import string\nreturn string.Formatter().get_field("0.x", [ctx], {})\n'),
            "import is not allowed",
            line=3,
        ),
        contract_error(
            "format-str-of-container",
            family,
            "str() of a container would format host objects with repr",
            public("return str([ctx])\n"),
            "TypeError",
        ),
    ]


def _computed_getattr() -> list[Attack]:
    family = "computed-getattr"
    return [
        rejected(
            "getattr-computed-dunder",
            family,
            "a dunder name built at run time escapes a syntactic check",
            public('name = "_" + "_class__"\nreturn getattr(ctx, name)\n'),
            "name 'getattr' is not available in contracts",
            line=4,
        ),
        rejected(
            "getattr-vars",
            family,
            "vars(obj) is __dict__ under another name",
            public("return vars(ctx)\n"),
            "name 'vars' is not available in contracts",
            line=3,
        ),
        rejected(
            "getattr-dunder-getattribute",
            family,
            "calling __getattribute__ directly with a computed name",
            public('return ctx.__getattribute__("_" + "_dict__")\n'),
            "names starting with _ are not allowed",
            line=3,
        ),
        rejected(
            "getattr-helper-by-name",
            family,
            "the runtime's own _t_attr helper takes a computed name",
            public('return _t_attr(ctx, "_" + "_class__")\n'),
            "name '_t_attr'",
            line=3,
        ),
        rejected(
            "getattr-hasattr-probe",
            family,
            "hasattr probes attributes with computed names",
            public('return hasattr(ctx, "rt")\n'),
            "name 'hasattr' is not available in contracts",
            line=3,
        ),
        contract_error(
            "getattr-method-named-by-data",
            family,
            "an attribute name held in a dict is only a string: subscripting ctx fails",
            public('names = {"k": "_" + "_dict__"}\nreturn ctx[names["k"]]\n'),
            "TypeError",
        ),
    ]


def _type_three_arg() -> list[Attack]:
    family = "type-three-arg"
    return [
        rejected(
            "type-three-argument",
            family,
            "type(name, bases, dict) builds a class with arbitrary dunders",
            public('return type("X", (), {})\n'),
            "name 'type' is not available in contracts",
            line=3,
        ),
        rejected(
            "type-via-class-of-class",
            family,
            "the type of a type is type",
            public('return ().__class__.__class__("X", (), {})\n'),
            "names starting with _ are not allowed",
            line=3,
        ),
        rejected(
            "type-class-statement",
            family,
            "a class statement is three-argument type in disguise",
            src(
                """
                class X:
                    pass
                """
            ),
            "class definitions are not allowed",
            line=1,
        ),
        contract_error(
            "type-builtin-called-with-three",
            family,
            "the value-type builtins are conversions, not type constructors",
            public('t = int\nreturn t("X", (), {})\n'),
            "TypeError",
        ),
    ]


def _import_eval_builtins() -> list[Attack]:
    family = "import-eval-builtins"
    cases = [
        ("import-statement", "import os\nreturn os\n", "import is not allowed"),
        ("import-from", "from os import system\nreturn 1\n", "import is not allowed"),
        ("import-dunder-import", 'return __import__("os")\n', "name '__import__'"),
        ("import-eval", 'return eval("1")\n', "name 'eval' is not available"),
        ("import-exec", 'return exec("x = 1")\n', "name 'exec' is not available"),
        ("import-compile", 'return compile("1", "f", "eval")\n', "name 'compile' is not"),
        ("import-open", 'return open("/etc/passwd")\n', "name 'open' is not available"),
        ("import-builtins-dunder", "return __builtins__\n", "name '__builtins__'"),
        ("import-globals", "return globals()\n", "name 'globals' is not available"),
    ]
    attacks = [
        rejected(
            id, family, f"{id.split('-', 1)[1]} reaches code or files", public(body), msg, line=3
        )
        for id, body, msg in cases
    ]
    attacks.append(
        contract_error(
            "import-unlisted-builtin",
            family,
            "a builtin missing from the table is a NameError, not a lookup in CPython's builtins",
            public("return chr(65)\n"),
            "NameError",
        )
    )
    return attacks


def _restrictedpython_cves() -> list[Attack]:
    family = "restrictedpython-cve"
    return [
        rejected(
            "cve-2023-37271-generator-gi-frame",
            family,
            "RestrictedPython < 6.1: a generator's gi_frame.f_back.f_back.f_globals escaped",
            src(
                """
                def g(ctx):
                    yield ctx

                @public
                def f(ctx):
                    gen = g(ctx)
                    return gen.gi_frame.f_back.f_back.f_globals
                """
            ),
            "yield (generators) is not allowed",
            line=2,
        ),
        contract_error(
            "cve-2023-41039-str-format-attribute",
            family,
            "RestrictedPython < 6.2: str.format read attributes of reachable objects",
            public('return "{0.storage.host}".format(ctx)\n'),
            "AttributeError",
        ),
        contract_error(
            "cve-2023-41039-format-map",
            family,
            "RestrictedPython < 6.2: format_map, the mapping form of the same read",
            public('return "{c.rt.meter}".format_map({"c": ctx})\n'),
            "AttributeError",
        ),
        rejected(
            "cve-2024-47532-attribute-error-obj",
            family,
            "RestrictedPython < 7.3: a caught AttributeError's .obj handed back the object",
            public("try:\n    ctx.rt\nexcept AttributeError as e:\n    return e.obj\n"),
            "try/except is not allowed",
            line=3,
        ),
        rejected(
            "cve-2025-22153-try-except-star",
            family,
            "RestrictedPython < 8.0: try/except* confused exception types on CPython 3.11+",
            public("try:\n    ctx.rt\nexcept* AttributeError as group:\n    return group\n"),
            "try/except* is not allowed",
            line=3,
        ),
        rejected(
            "cve-2026-55830-positional-only-shadows-helper",
            family,
            "RestrictedPython < 8.3: a positional-only parameter shadowed a guard hook",
            src(
                """
                def unguarded(_t_attr, x, /):
                    return x.rt

                @public
                def f(ctx):
                    return unguarded(len, ctx)
                """
            ),
            "name '_t_attr'",
            line=1,
        ),
        out_of_gas(
            "cve-2026-55830-positional-only-shadows-builtin",
            family,
            "shadowing a builtin with a positional-only parameter leaves metering intact",
            src(
                """
                def nop(a, b):
                    return a

                def spin(range, require, /):
                    while True:
                        require(1, "x")

                @public
                def f(ctx):
                    spin(0, nop)
                """
            ),
        ),
        contract_error(
            "cve-2026-76825-string-formatter-get-field",
            family,
            "RestrictedPython < 8.4: string.Formatter().get_field returned live objects",
            public('return Formatter().get_field("0.storage.host", [ctx], {})\n'),
            "NameError",
        ),
    ]


def _cpu_bombs() -> list[Attack]:
    family = "cpu-bomb"
    return [
        out_of_gas("cpu-infinite-while", family, "the plainest bomb", public(SPIN)),
        out_of_gas(
            "cpu-infinite-for-over-range",
            family,
            "for loops are charged per iteration too",
            public("while True:\n    for i in range(100000):\n        pass\n"),
        ),
        limited(
            "cpu-loop-over-growing-list",
            family,
            "appending to the list being looped over never ends by itself",
            public("xs = [0]\nfor x in xs:\n    xs.append(x)\n"),
            "sequence items",
        ),
        limited(
            "cpu-deep-recursion",
            family,
            "unbounded recursion must end at the call-depth limit, not in RecursionError",
            src(
                """
                def down(n):
                    return down(n + 1)

                @public
                def f(ctx):
                    return down(0)
                """
            ),
            "call depth",
        ),
        limited(
            "cpu-cross-contract-recursion",
            family,
            "a contract calling itself through ctx.call nests host frames as well",
            public('return ctx.call("target", "f", [])\n'),
            "call depth",
        ),
        out_of_gas(
            "cpu-exponential-recursion",
            family,
            "shallow but exponential recursion: depth limits do not help, gas does",
            src(
                """
                def fib(n):
                    if n < 2:
                        return n
                    return fib(n - 1) + fib(n - 2)

                @public
                def f(ctx):
                    return fib(60)
                """
            ),
        ),
        limited(
            "cpu-huge-range",
            family,
            "range(10**12) is cheap to build and endless to walk",
            public("for i in range(10 ** 12):\n    pass\n"),
            "sequence items",
        ),
        out_of_gas(
            "cpu-sum-of-range",
            family,
            "sum walks a range in C",
            public("while True:\n    sum(range(100000))\n"),
        ),
        out_of_gas(
            "cpu-quadratic-string-building",
            family,
            "s = s + c copies s every time: quadratic work",
            public('s = ""\nwhile True:\n    s = s + "x"\n'),
        ),
        out_of_gas(
            "cpu-sorted-huge-list",
            family,
            "sorted is n log n in C",
            public("xs = list(range(100000))\nwhile True:\n    sorted(xs, reverse=True)\n"),
        ),
        out_of_gas(
            "cpu-sorted-long-equal-strings",
            family,
            "every comparison scans a long common prefix",
            public(
                'xs = ["a" * 10000 + str(i % 7) for i in range(2000)]\n'
                "while True:\n    sorted(xs)\n"
            ),
        ),
        out_of_gas(
            "cpu-sorted-with-contract-key",
            family,
            "a key function called back from C is charged like any call",
            src(
                """
                def key(x):
                    return -x

                @public
                def f(ctx):
                    xs = list(range(100000))
                    while True:
                        sorted(xs, key=key)
                """
            ),
        ),
        out_of_gas(
            "cpu-list-count-of-long-lists",
            family,
            "list.count compares every element against a long value",
            public("xs = [[0] * 1000] * 1000\nwhile True:\n    xs.count([0] * 1000)\n"),
        ),
        out_of_gas(
            "cpu-substring-search-worst-case",
            family,
            "a needle that almost matches everywhere",
            public(
                's = "a" * 1000000\nneedle = "a" * 48 + "b" + "a" * 49\n'
                'while True:\n    needle in s\n    s.find(needle)\n    s.replace(needle, "")\n'
            ),
        ),
        out_of_gas(
            "cpu-deep-equal-comparison",
            family,
            "== of nested lists recurses in C",
            public(
                "a = 0\nb = 0\nfor i in range(30):\n    a = [a, a]\n    b = [b, b]\n"
                "while True:\n    a == b\n"
            ),
        ),
        out_of_gas(
            "cpu-max-of-long-lists",
            family,
            "max compares whole lists",
            public("xs = [[1] * 10000 for i in range(100)]\nwhile True:\n    max(xs)\n"),
        ),
        out_of_gas(
            "cpu-int-parse-and-format",
            family,
            "int(str) and str(int) are superlinear in the digits",
            public('s = "9" * 150\nwhile True:\n    str(int(s))\n'),
        ),
        out_of_gas(
            "cpu-big-int-arithmetic",
            family,
            "512-bit multiplication and division",
            public("x = 2 ** 255 - 19\nwhile True:\n    (x * x) // (x - 2) % x\n"),
        ),
        out_of_gas(
            "cpu-contains-in-range",
            family,
            "`None in range(n)` compares every element in C; ranges are priced as empty",
            public("r = range(100000)\nwhile True:\n    None in r\n"),
        ),
        out_of_gas(
            "cpu-strip-long-chars",
            family,
            "strip(chars) searches all of chars for every character it strips",
            public(
                's = "a" * 1000000\nchars = "b" * 999999 + "a"\nwhile True:\n    s.strip(chars)\n'
            ),
        ),
        Attack(
            "cpu-scan-past-deleted-keys",
            family,
            "prefix scans that walk past keys this transaction deleted, again and again",
            src(
                """
                @public
                def fill(ctx):
                    for i in range(2000):
                        ctx.storage.set("k" + str(i), i)

                @public
                def f(ctx):
                    for i in range(2000):
                        ctx.storage.delete("k" + str(i))
                    while True:
                        ctx.storage.items("k", 1)
                """
            ),
            "stopped",
            message="OutOfGas",
            status="out_of_gas",
            calls=(("fill", ()), ("f", ())),
            gas_limit=GAS_MAX,
        ),
        out_of_gas(
            "cpu-dict-items-snapshot",
            family,
            "items() builds a list of 100,000 tuples",
            public("d = {i: i for i in range(100000)}\nwhile True:\n    d.items()\n"),
        ),
    ]


def _memory_bombs() -> list[Attack]:
    family = "memory-bomb"
    return [
        limited(
            "memory-is-operand",
            family,
            "a 1 GB string built as the unchecked operand of `is` (fixed: both sides metered)",
            public("return ('x' * 1000000000) is None\n"),
            "string bytes",
        ),
        limited(
            "memory-str-repeat",
            family,
            '"x" * n allocates n bytes at once',
            public('return len("x" * 10 ** 12)\n'),
            "string bytes",
        ),
        limited(
            "memory-list-repeat",
            family,
            "[0] * n allocates 8n bytes at once",
            public("return len([0] * 10 ** 12)\n"),
            "sequence items",
        ),
        limited(
            "memory-big-int-power",
            family,
            "10**10**10 is a 4 GB integer",
            public("return 10 ** 10 ** 10\n"),
            "int bits",
        ),
        limited(
            "memory-big-int-shift",
            family,
            "1 << n is an n-bit integer",
            public("return 1 << 10 ** 12\n"),
            "int bits",
        ),
        contract_error(
            "memory-printf-width",
            family,
            "'%*d' % (n, 1) pads to n characters",
            public('return "%*d" % (10 ** 9, 1)\n'),
            "ForbiddenOperation",
            gas_limit=GAS_MAX,
        ),
        contract_error(
            "memory-bytes-printf-width",
            family,
            "the same through bytes",
            public('return b"%0*d" % (10 ** 9, 1)\n'),
            "ForbiddenOperation",
            gas_limit=GAS_MAX,
        ),
        limited(
            "memory-str-replace-amplifier",
            family,
            "replace multiplies the length by len(new)",
            public('s = "x" * 100000\nreturn len(s.replace("x", "y" * 1000))\n'),
            "string bytes",
        ),
        limited(
            "memory-list-extend-doubling",
            family,
            "extend(self) doubles a list each time",
            public("xs = [0]\nwhile True:\n    xs.extend(xs)\n"),
            "sequence items",
        ),
        limited(
            "memory-str-join-amplifier",
            family,
            "a long separator is copied between every pair",
            public('sep = "x" * 1000000\nreturn len(sep.join(["a", "b", "c"]))\n'),
            "string bytes",
        ),
        limited(
            "memory-bytes-hex-amplifier",
            family,
            "hex() doubles the length",
            public('return len((b"x" * 1000000).hex())\n'),
            "string bytes",
        ),
        limited(
            "memory-split-into-pieces",
            family,
            "split makes one object per piece",
            public('return len(("x " * 500000).split())\n'),
            "sequence items",
        ),
        contract_error(
            "memory-bytes-from-int",
            family,
            "bytes(n) allocates n zero bytes from one small int",
            public("return len(bytes(10 ** 9))\n"),
            "TypeError",
            gas_limit=GAS_MAX,
        ),
        out_of_gas(
            "memory-hoard-strings",
            family,
            "keep as many 1 MiB strings as the gas pays for",
            public('keep = []\nwhile True:\n    keep.append("x" * 1000000 + "y")\n'),
        ),
        out_of_gas(
            "memory-nested-dict-growth",
            family,
            "one small dict per step, each holding the previous one",
            public('d = {}\nwhile True:\n    d = {"a": d}\n'),
        ),
        out_of_gas(
            "memory-dict-of-dicts",
            family,
            "dict comprehensions of empty dicts: many objects for little gas",
            public("keep = []\nwhile True:\n    keep.append({i: {} for i in range(100000)})\n"),
        ),
        out_of_gas(
            "memory-bound-method-hoard",
            family,
            "a bound value method is a new object on every attribute load",
            public(
                "d = {}\nkeep = []\nwhile True:\n    keep.append([d.get for i in range(100000)])\n"
            ),
        ),
        limited(
            "memory-comprehension-past-item-limit",
            family,
            "a nested comprehension builds one list longer than the sequence limit",
            public("return len([0 for i in range(100000) for j in range(3)])\n"),
            "sequence items",
        ),
        limited(
            "memory-zip-of-long-string",
            family,
            "zip over a 1 MB string makes a million one-item tuples",
            public('return len(zip("x" * 1000000))\n'),
            "sequence items",
        ),
        limited(
            "memory-enumerate-of-long-string",
            family,
            "enumerate over a 1 MB string makes a million (int, str) tuples",
            public('return len(enumerate("x" * 1000000))\n'),
            "sequence items",
        ),
        limited(
            "memory-storage-value",
            family,
            "a huge storage value",
            public('ctx.storage.set("k", "x" * 1000000)\n'),
            "storage value",
        ),
        limited(
            "memory-event-data",
            family,
            "a huge event",
            public('ctx.emit("E", "x" * 1000000)\n'),
            "event data",
        ),
        limited(
            "memory-return-value",
            family,
            "a huge return value",
            public('return "x" * 1000000\n'),
            "return value",
        ),
    ]


def _hash_collisions() -> list[Attack]:
    family = "hash-collision"
    key = "2 ** 61 - 1"  # hashes to 0, as does 0: colliding keys
    paths = [
        ("display", f"return {{{key}: 1}}\n"),
        ("setitem", f"d = {{}}\nd[{key}] = 1\n"),
        ("comprehension", f"return {{k: 1 for k in [{key}]}}\n"),
        ("dict-of-pairs", f"return dict([({key}, 1)])\n"),
        ("setdefault", f"d = {{}}\nd.setdefault({key}, 1)\n"),
        ("augmented-item", f"d = {{0: 1}}\nd[{key}] += 1\n"),
        ("get", f"return {{}}.get({key})\n"),
        ("in", f"return {key} in {{}}\n"),
        ("pop", f"return {{}}.pop({key}, 0)\n"),
        ("delete", f"d = {{0: 1}}\ndel d[{key}]\n"),
        ("negative", f"return {{-({key}): 1}}\n"),
    ]
    attacks = [
        contract_error(
            f"hash-collision-{path}",
            family,
            f"int keys that collide modulo 2**61 - 1, through {path}",
            public(body),
            "InvalidValue",
        )
        for path, body in paths
    ]
    colliding = {P61 * k: k for k in range(1, 8)}  # as many as 64-bit map keys allow
    attacks += [
        contract_error(
            "hash-collision-from-transaction-args",
            family,
            "colliding keys arrive in a transaction's arguments and are used as keys",
            public("for k in d:\n    d[k] = 0\n", params="ctx, d"),
            "InvalidValue",
            calls=(("f", (colliding,)),),
        ),
        Attack(
            "hash-collision-small-ints",
            family,
            "ints below the modulus hash to themselves: low-bit clashes are cheap to resolve",
            public(
                "d = {}\nfor i in range(50000):\n    d[i * 1048576] = i\n"
                "d[-1] = 1\nd[-2] = 2\nreturn [len(d), d[-1], d[-2]]\n"
            ),
            "harmless",
            calls=CALL_F,
            gas_limit=GAS_MAX,
            check=equals([50002, 1, 2]),
            hash_seeds=True,
        ),
    ]
    return attacks


def _swallow_out_of_gas() -> list[Attack]:
    family = "swallow-out-of-gas"
    return [
        rejected(
            "swallow-try-except-base",
            family,
            "catching BaseException would turn out-of-gas into a normal return",
            public("try:\n    while True:\n        pass\nexcept BaseException:\n    return 1\n"),
            "try/except is not allowed",
            line=3,
        ),
        rejected(
            "swallow-try-finally-return",
            family,
            "a return in finally discards the exception",
            public("try:\n    while True:\n        pass\nfinally:\n    return 1\n"),
            "try/except is not allowed",
            line=3,
        ),
        rejected(
            "swallow-with-suppress",
            family,
            "a context manager's __exit__ returning True swallows the exception",
            public("with ctx.storage:\n    while True:\n        pass\n"),
            "with is not allowed",
            line=3,
        ),
        stopped(
            "swallow-callee-out-of-gas",
            family,
            "the callee's out-of-gas ends the caller too, with all the gas used",
            public('ctx.call("echo", "spin", [])\nreturn "survived"\n'),
            "OutOfGas",
            status="out_of_gas",
            helpers=(("echo", ECHO, ()),),
        ),
        stopped(
            "swallow-callee-revert",
            family,
            "the callee's revert cannot be ignored by the caller",
            public('ctx.call("echo", "fail", [])\nreturn "survived"\n'),
            "callee says no",
            helpers=(("echo", ECHO, ()),),
        ),
        out_of_gas(
            "swallow-in-sort-key",
            family,
            "out-of-gas raised in a key function called back from C code",
            src(
                """
                def key(x):
                    while True:
                        pass

                @public
                def f(ctx):
                    return sorted([3, 1, 2], key=key)
                """
            ),
        ),
        out_of_gas(
            "swallow-in-max-key",
            family,
            "out-of-gas raised in min/max key functions",
            src(
                """
                def key(x):
                    while True:
                        pass

                @public
                def f(ctx):
                    return max([3, 1, 2], key=key)
                """
            ),
        ),
        limited(
            "swallow-limit-in-key",
            family,
            "a limit raised in a key function ends the call as well",
            src(
                """
                def key(x):
                    return "x" * 10 ** 9

                @public
                def f(ctx):
                    return min([3, 1, 2], key=key)
                """
            ),
            "string bytes",
        ),
    ]


def _forge_sender() -> list[Attack]:
    family = "forge-sender"

    def signer_is_sender(result: Result) -> None:
        assert result.returns == [[result.signer, "org2", ["member"]]], result.returns

    def callee_sees_contract(result: Result) -> None:
        assert result.returns == [[TARGET, "", []]], result.returns

    def balance_untouched(result: Result) -> None:
        assert result.returns == [0], result.returns

    token = CANARY_SOURCE
    return [
        contract_error(
            "view-writes-in-a-transaction",
            family,
            "a @view called by a transaction must stay read-only (it once wrote and emitted)",
            src(
                """
                @view
                def f(ctx):
                    ctx.storage.set("owner", "mallory")
                    ctx.emit("Owned", "mallory")
                """
            ),
            "ReadOnlyError",
        ),
        rejected(
            "sender-attribute-assignment",
            family,
            "overwrite ctx.sender before acting",
            public('ctx.sender = "mallory"\n'),
            "attribute assignment is not allowed",
            line=3,
        ),
        Attack(
            "sender-is-the-signer",
            family,
            "ctx.sender, org and roles come from the signed transaction",
            public("return [ctx.sender, ctx.org, ctx.roles]\n"),
            "harmless",
            calls=CALL_F,
            check=signer_is_sender,
        ),
        Attack(
            "sender-cross-contract-call",
            family,
            "a callee sees the calling contract as sender, never the signer",
            public('return ctx.call("echo", "who", [])\n'),
            "harmless",
            calls=CALL_F,
            helpers=(("echo", ECHO, ()),),
            check=callee_sees_contract,
        ),
        Attack(
            "sender-spend-signers-tokens-through-contract",
            family,
            "the deployer holds canary tokens; a contract it calls cannot spend them",
            public('return ctx.call("canary", "transfer", ["mallory", 1])\n'),
            "stopped",
            message="insufficient balance",
            status="reverted",
            calls=CALL_F,
            signer="deployer",
        ),
        Attack(
            "sender-storage-key-traversal",
            family,
            "a storage key with ../ stays inside the contract's own namespace",
            public(
                'ctx.storage.set("../canary/balance/" + ctx.sender, 10 ** 6)\n'
                'ctx.storage.set("/../../canary/balance/" + ctx.sender, 10 ** 6)\n'
                'return ctx.call("canary", "balance_of", [ctx.sender])\n'
            ),
            "harmless",
            calls=CALL_F,
            check=balance_untouched,
        ),
        stopped(
            "sender-builtin-asset-as-signer",
            family,
            "a contract tries to move the signer's built-in asset balance",
            public('return ctx.call("asset", "transfer", ["mallory", 1])\n'),
            "no deployed contract named 'asset'",
        ),
        stopped(
            "sender-freeze-through-system-contract",
            family,
            "a contract tries to freeze another contract with its signer's authority",
            public('return ctx.call("contracts", "freeze", ["canary"])\n'),
            "no deployed contract named 'contracts'",
        ),
        contract_error(
            "sender-fake-ctx-dict",
            family,
            "a dict posing as ctx has no host behind it",
            src(
                """
                def pay(ctx):
                    return ctx.storage.get("k")

                @public
                def f(ctx):
                    return pay({"sender": "mallory", "storage": {}})
                """
            ),
            "AttributeError",
        ),
        Attack(
            "sender-token-init-only-once",
            family,
            "calling init again would mint a second supply to the caller",
            token,
            "harmless",
            init_args=(1000,),
            calls=(("init", (10**9,)), ("balance_of", ("x",))),
            statuses=("reverted", "ok"),
            check=init_refused,
        ),
    ]


def init_refused(result: Result) -> None:
    assert result.errors[0] == "init runs only at deploy", result.errors
    assert result.returns[1] == 0, result.returns


def _module_state() -> list[Attack]:
    family = "module-state"

    def events_do_not_leak(result: Result) -> None:
        assert result.events == [[], []], result.events
        assert result.returns[1] == 1, result.returns

    return [
        rejected(
            "module-list-constant",
            family,
            "a module-level list would carry data from one transaction to the next",
            "CACHE = []\n" + public("CACHE.append(1)\nreturn len(CACHE)\n"),
            "module constants must be immutable literals",
            line=1,
        ),
        rejected(
            "module-dict-constant",
            family,
            "a module-level dict, the same leak",
            "SEEN = {}\n",
            "module constants must be immutable literals",
            line=1,
        ),
        rejected(
            "module-computed-constant",
            family,
            "a module-level call runs code at import",
            'X = len("abc")\n',
            "module constants must be immutable literals",
            line=1,
        ),
        rejected(
            "module-top-level-loop",
            family,
            "statements at top level run on every call, outside any function's metering",
            "for i in range(10 ** 9):\n    pass\n",
            "module top level may only hold defs",
            line=1,
        ),
        rejected(
            "module-global-statement",
            family,
            "global rebinds module state from a function",
            "COUNT = 0\n" + public("global COUNT\nCOUNT = COUNT + 1\nreturn COUNT\n"),
            "global is not allowed",
            line=4,
        ),
        Attack(
            "module-state-per-call",
            family,
            "each call re-runs the module: a dict built in one call is gone in the next",
            src(
                """
                LIMIT = (1, 2, 3)

                def fresh():
                    return {}

                @public
                def f(ctx):
                    d = fresh()
                    d[len(d)] = 1
                    return [len(d), len(LIMIT)]
                """
            ),
            "harmless",
            calls=(("f", ()), ("f", ())),
            check=equals([1, 3], [1, 3]),
        ),
        Attack(
            "module-runtime-reuse-after-failure",
            family,
            "a call that emits and then fails at the depth limit leaves nothing for the next",
            src(
                """
                def down(n):
                    return down(n + 1)

                @public
                def fail(ctx):
                    ctx.emit("Leak", 1)
                    down(0)

                @public
                def deep(ctx, n):
                    if n == 0:
                        return 1
                    return deep(ctx, n - 1)
                """
            ),
            "harmless",
            calls=(("fail", ()), ("deep", (60,))),
            statuses=("reverted", "ok"),
            check=events_do_not_leak,
        ),
    ]


def _mutable_defaults() -> list[Attack]:
    family = "mutable-default"
    return [
        rejected(
            "default-list",
            family,
            "def f(x=[]) shares one list across calls",
            public("acc.append(1)\nreturn len(acc)\n", params="ctx, acc=[]"),
            "default arguments must be immutable literals",
            line=2,
        ),
        rejected(
            "default-dict",
            family,
            "the same with a dict, on an internal helper",
            "def helper(seen={}):\n    return seen\n",
            "default arguments must be immutable literals",
            line=1,
        ),
        rejected(
            "default-tuple-holding-list",
            family,
            "a tuple is immutable, its list element is not",
            public("return x\n", params="ctx, x=(1, [])"),
            "default arguments must be immutable literals",
            line=2,
        ),
        rejected(
            "default-computed",
            family,
            "a default computed by a call runs at definition time",
            public("return x\n", params="ctx, x=len('ab')"),
            "default arguments must be immutable literals",
            line=2,
        ),
        Attack(
            "default-none-idiom",
            family,
            "the None idiom builds a fresh list on every call",
            src(
                """
                def collect(x, acc=None):
                    if acc is None:
                        acc = []
                    acc.append(x)
                    return acc

                @public
                def f(ctx, extra=(1, 2)):
                    collect(1)
                    return len(collect(2)) + len(extra)
                """
            ),
            "harmless",
            calls=(("f", ()), ("f", ())),
            check=equals(3, 3),
        ),
    ]


def _nondeterminism() -> list[Attack]:
    family = "nondeterminism"

    def insertion_order(result: Result) -> None:
        keys = result.returns[0]
        assert keys == [f"k{i}" for i in range(0, 2000, 2)] + ["k1", "k3", b"b", "z"], keys[-5:]

    return [
        rejected("nondet-set-literal", family, "set order follows the hash seed",
                 public("return list({'a', 'b', 'c'})\n"), "set literals are not allowed", line=3),
        rejected("nondet-set-comprehension", family, "the same through a comprehension",
                 public("return list({x for x in 'abc'})\n"), "set comprehensions", line=3),
        rejected("nondet-set-builtin", family, "set() by name",
                 public("return list(set('abc'))\n"), "name 'set' is not available", line=3),
        rejected("nondet-id", family, "id() is a memory address",
                 public("return id(ctx)\n"), "name 'id' is not available", line=3),
        rejected("nondet-hash", family, "hash() of a str follows the hash seed",
                 public("return hash('abc')\n"), "name 'hash' is not available", line=3),
        rejected("nondet-repr", family, "repr() may show memory addresses",
                 public("return repr(ctx)\n"), "name 'repr' is not available", line=3),
        rejected("nondet-float-literal", family, "float summation differs by order and platform",
                 public("return 0.1 + 0.2\n"), "float and complex numbers are not allowed",
                 line=3),
        rejected("nondet-true-division", family, "/ makes floats",
                 public("return 1 / 3\n"), "true division / is not allowed", line=3),
        rejected("nondet-float-builtin", family, "float() by name",
                 public("return float('0.1')\n"), "name 'float' is not available", line=3),
        Attack(
            "nondet-int-literal-digit-limit",
            family,
            "the compile error of a 5,001-digit literal must not depend on process settings",
            public("return 1" + "0" * 5000 + "\n"),
            "rejected",
            message="",
            line=3,
            second_env=(("PYTHONINTMAXSTRDIGITS", "0"),),
        ),
        contract_error("nondet-negative-power", family, "2 ** -1 is a float",
                       public("return 2 ** -1\n"), "ForbiddenOperation"),
        contract_error("nondet-float-parse", family, "int() refuses float text",
                       public("return int('1.5')\n"), "ValueError", hash_seeds=True),
        contract_error("nondet-str-of-dict", family, "str() of a dict is repr text",
                       public("return str({'a': 1})\n"), "TypeError"),
        contract_error("nondet-error-text-key", family,
                       "a KeyError's message holds the key's repr; only the class is recorded",
                       public("return {'secret': 1}['missing']\n"), "KeyError", hash_seeds=True),
        contract_error("nondet-error-text-name", family,
                       "NameError's text changed between CPython versions (suggestions)",
                       public("lenn = 1\nreturn lena\n"), "NameError", hash_seeds=True),
        contract_error("nondet-error-text-type", family,
                       "TypeError's text names types and changes between versions",
                       public("return 'a' + 1\n"), "TypeError", hash_seeds=True),
        contract_error("nondet-error-text-mixed-sort", family,
                       "sorting mixed types fails in C with a detailed message",
                       public("return sorted([1, 'a', b'b'])\n"), "TypeError", hash_seeds=True),
        Attack(
            "nondet-dict-order",
            family,
            "dict order after deletes and re-inserts must not depend on the hash seed",
            public(
                "d = {}\nfor i in range(2000):\n    d['k' + str(i)] = i\n"
                "for i in range(1, 2000, 2):\n    del d['k' + str(i)]\n"
                "d['k1'] = 1\nd['k3'] = 3\nd[b'b'] = 0\nd['z'] = 0\nreturn list(d)\n"
            ),
            "harmless",
            calls=CALL_F,
            check=insertion_order,
            hash_seeds=True,
        ),
        Attack(
            "nondet-bool-int-key-merge",
            family,
            "True and 1 are one key: the result is fixed, not seed dependent",
            public("d = {1: 'a', True: 'b', 'x': 0}\nreturn [len(d), d[1], list(d)]\n"),
            "harmless",
            calls=CALL_F,
            check=equals([2, "b", [1, "x"]]),
            hash_seeds=True,
        ),
        Attack(
            "nondet-gas-and-state",
            family,
            "string-keyed work under different hash seeds gives the same gas and state",
            public(
                "d = {}\nfor i in range(3000):\n    d[str(i * 7919)] = [i, str(i)]\n"
                "ks = sorted(d.keys())\nctx.storage.set('first', ks[:5])\n"
                "ctx.emit('Done', len(ks))\nreturn [ks[0], ks[-1], 'x' in d, '7919' in d]\n"
            ),
            "harmless",
            calls=CALL_F,
            check=equals(["0", "9993778", False, True]),
            hash_seeds=True,
        ),
    ]  # fmt: skip


def _deep_nesting() -> list[Attack]:
    family = "deep-nesting"
    deep = "the contract is nested too deeply"
    return [
        rejected(
            "nest-parentheses",
            family,
            "the tokenizer's own limit: a syntax error, without CPython's wording",
            public("return " + "(" * 300 + "1" + ")" * 300 + "\n"),
            "line 3: syntax error",
            line=3,
        ),
        rejected(
            "nest-unary-minus",
            family,
            "40,000 unary minus signs: a recursive parser",
            public("return " + "-" * 40000 + "1\n"),
            deep,
        ),
        rejected(
            "nest-not-chain",
            family,
            "10,000 nots",
            public("return " + "not " * 10000 + "1\n"),
            deep,
        ),
        rejected(
            "nest-attribute-chain",
            family,
            "a 20,000-link attribute chain is a 20,000-deep tree",
            public("return ctx" + ".a" * 20000 + "\n"),
            deep,
        ),
        rejected(
            "nest-binop-chain",
            family,
            "1+1+...+1 is left-nested",
            public("return 1" + "+1" * 20000 + "\n"),
            deep,
        ),
        rejected(
            "nest-call-chain",
            family,
            "len(1)(1)(1)...",
            public("return len" + "(1)" * 14000 + "\n"),
            deep,
        ),
        rejected(
            "nest-conditional-expressions",
            family,
            "a if b else (c if d else ...)",
            public("return " + "1 if 1 else " * 3000 + "1\n"),
            deep,
        ),
        rejected(
            "nest-displays-past-limit",
            family,
            "nested displays within the tokenizer limit but past the contract limit",
            public("return " + "[" * 150 + "]" * 150 + "\n"),
            "code nested deeper than 64 levels",
            line=3,
        ),
        rejected(
            "nest-indented-blocks",
            family,
            "deeply indented if blocks",
            public("".join(" " * (4 * i) + "if 1:\n" for i in range(70)) + " " * 280 + "pass\n"),
            "code nested deeper than 64 levels",
        ),
        Attack(
            "nest-deepest-accepted-expression",
            family,
            "an expression just inside the nesting limit compiles, rewrites and runs",
            public("return " + "(" * 61 + "1" + " + 1)" * 61 + "\n"),
            "harmless",
            calls=CALL_F,
            check=equals(62),
        ),
        limited(
            "nest-deepest-accepted-display",
            family,
            "a list display just inside the compile limit is past the value nesting limit",
            public("return " + "[" * 61 + "]" * 61 + "\n"),
            "nesting depth",
        ),
        limited(
            "nest-runtime-deep-compare",
            family,
            "a 100,000-deep list built at run time, compared",
            public(
                "a = 0\nb = 0\nfor i in range(100000):\n    a = [a]\n    b = [b]\nreturn a == b\n"
            ),
            "nesting depth",
        ),
        limited(
            "nest-runtime-self-reference",
            family,
            "a list that contains itself, compared and returned",
            public("a = []\na.append(a)\nreturn a == [a]\n"),
            "nesting depth",
        ),
        limited(
            "nest-runtime-deep-store",
            family,
            "a deeply nested value written to storage",
            public("a = 0\nfor i in range(1000):\n    a = [a]\nctx.storage.set('k', a)\n"),
            "nesting depth",
        ),
        Attack(
            "nest-runtime-deep-dealloc",
            family,
            "freeing a million-deep list must not overflow the C stack",
            public(
                "a = 0\nfor i in range(100000):\n    a = [a]\n    a = [a]\n    a = {'k': a}\n"
                "a = 0\nreturn 7\n"
            ),
            "harmless",
            calls=CALL_F,
            gas_limit=GAS_MAX,
            check=equals(7),
        ),
    ]


def _homoglyphs() -> list[Attack]:
    family = "homoglyph"
    ascii_only = "contract source must be ASCII"

    def cyrillic(result: Result) -> None:
        assert result.returns == ["\u0430"], result.returns

    return [
        rejected(
            "homoglyph-cyrillic-identifier",
            family,
            "a Cyrillic a looks like the Latin one: two different names on screen",
            public("\u0430 = 1\na = 2\nreturn \u0430\n"),
            ascii_only,
            line=3,
        ),
        rejected(
            "homoglyph-fullwidth-underscore",
            family,
            "NFKC folds a fullwidth low line into _ after a text check",
            public("return ctx.\uff3f\uff3fclass\uff3f\uff3f\n"),
            ascii_only,
            line=3,
        ),
        rejected(
            "homoglyph-math-letters-spell-getattr",
            family,
            "mathematical italic letters normalise to getattr",
            public("return \U0001d454etattr(ctx, 'rt')\n"),
            ascii_only,
            line=3,
        ),
        rejected(
            "homoglyph-in-string-literal",
            family,
            "a look-alike key in a string literal",
            public("return ctx.storage.get('b\u0430lance')\n"),
            ascii_only,
            line=3,
        ),
        rejected(
            "homoglyph-bidi-override",
            family,
            "a right-to-left override hides code in a comment (trojan source)",
            public("x = 1  # \u202e } \u2066 if admin:\nreturn x\n"),
            ascii_only,
            line=3,
        ),
        rejected(
            "homoglyph-nul-byte",
            family,
            "a NUL byte can end the text some tools show",
            public("return 1\x00\n"),
            "contains a NUL byte",
        ),
        Attack(
            "homoglyph-escape-in-ascii-string",
            family,
            "an escape in ASCII source is only data",
            public("return '\\u0430'\n"),
            "harmless",
            calls=CALL_F,
            check=cyrillic,
        ),
    ]


ATTACKS: Final[tuple[Attack, ...]] = tuple(
    _subclasses_walk()
    + _frames()
    + _format_traversal()
    + _computed_getattr()
    + _type_three_arg()
    + _import_eval_builtins()
    + _restrictedpython_cves()
    + _cpu_bombs()
    + _memory_bombs()
    + _hash_collisions()
    + _swallow_out_of_gas()
    + _forge_sender()
    + _module_state()
    + _mutable_defaults()
    + _nondeterminism()
    + _deep_nesting()
    + _homoglyphs()
)
_BY_ID: Final = {attack.id: attack for attack in ATTACKS}


def find_attack(attack_id: str) -> Attack:
    return _BY_ID[attack_id]
