"""`taihang contract new|test|list|show|upgrade|freeze|unfreeze` (docs/contracts.md).

`new` writes a working contract and its tests; `test` runs a test file (or a contract's
`test_<name>.py`) on an in-memory ledger with the chain's compiler and gas
(`taihang.sdk.contract_testing`), printing every call with its gas and each test's outcome.
The rest manage deployed contracts through the `contracts` system contract. Exit codes as for
`deploy`: 0 ok (every test passed), 2 a transaction or test failed, 1 the command failed (a
contract that does not compile included: it is shown with the line and a caret).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from taihang.cli.contracts import (
    DEFAULT_HOME,
    DEPLOY_GAS_LIMIT,
    EXIT_COMMAND,
    EXIT_FAILED_TX,
    INVOKE_GAS_LIMIT,
    HomeOption,
    KeyOption,
    echo,
    fail,
    load,
    read_source,
    transact,
)

if TYPE_CHECKING:
    from taihang.sdk.contract_test_runner import TestOutcome, TestReport
    from taihang.sdk.contract_testing import CallRecord
    from taihang.sdk.contracts import Contracts

T = TypeVar("T")
EXIT_TEST_FAILED = EXIT_FAILED_TX
VALUE_CHARS_MAX = 60
TextJsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ReceiptJsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (the only format).")]


# --- new -------------------------------------------------------------------------------------
CONTRACT_TEMPLATE = """\
# ruff: noqa: F821  (the sandbox provides public, view, require and revert)
# {name}: a counter that anyone may increase and only its owner may reset.
# Test:    taihang contract test {name}.py
# Deploy:  taihang contract deploy {name}.py --name {name} --args '[0]'


@public
def init(ctx, start):
    require(start >= 0, "start must not be negative")
    ctx.storage.set("owner", ctx.sender)
    ctx.storage.set("count", start)


@public
def increment(ctx, by):
    require(by > 0, "by must be positive")
    count = ctx.storage.get("count", 0) + by
    ctx.storage.set("count", count)
    ctx.emit("Incremented", {{"by": by, "count": count, "sender": ctx.sender}})
    return count


@public
def reset(ctx):
    require(ctx.sender == ctx.storage.get("owner"), "only the owner may reset")
    ctx.storage.set("count", 0)


@view
def count(ctx):
    return ctx.storage.get("count", 0)


@view
def owner(ctx):
    return ctx.storage.get("owner")
"""

TEST_TEMPLATE = '''\
"""Tests of {name}.py: `taihang contract test test_{name}.py` runs each test_* function with a
fresh in-memory ledger (accounts alice, bob in org1, carol, dave in org2; alice sends unless
sender= says otherwise), the chain's compiler and its gas."""

from taihang.sdk.contract_testing import Ledger


def test_init_sets_the_count_and_owner(ledger: Ledger) -> None:
    counter = ledger.deploy("{name}.py", args=[5])
    assert counter.call("count") == 5
    assert counter.call("owner") == ledger.address("alice")


def test_increment_adds_and_emits(ledger: Ledger) -> None:
    counter = ledger.deploy("{name}.py", args=[0])
    receipt = counter.transact("increment", 3, sender="bob")
    assert receipt.return_value == 3
    assert [e.name for e in receipt.events] == ["Incremented"]
    assert counter.call("count") == 3


def test_only_the_owner_may_reset(ledger: Ledger) -> None:
    counter = ledger.deploy("{name}.py", args=[7])
    with ledger.reverts("only the owner may reset"):
        counter.transact("reset", sender="bob")
    counter.transact("reset")
    assert counter.call("count") == 0


def test_increment_refuses_zero(ledger: Ledger) -> None:
    counter = ledger.deploy("{name}.py", args=[0])
    with ledger.reverts("by must be positive"):
        counter.transact("increment", 0)
'''


def new(
    name: Annotated[str, typer.Argument(help="The contract's name (a-z, 0-9, _).")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to write NAME.py and test_NAME.py.")
    ] = Path("."),
) -> None:
    """Write NAME.py, a small working contract, and test_NAME.py, its passing tests."""
    from taihang.execution.lifecycle import NAME_PATTERN, RESERVED_NAMES

    if NAME_PATTERN.match(name) is None or name.startswith("test"):
        fail(
            f"{name!r} is not a contract name: 1 to 64 lowercase letters, digits and _,"
            " starting with a letter (and not with 'test')"
        )
    if name in RESERVED_NAMES:
        fail(f"{name!r} is reserved for a built-in contract")
    contract, tests = directory / f"{name}.py", directory / f"test_{name}.py"
    for path in (contract, tests):
        if path.exists():
            fail(f"{path} exists; not overwriting it")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        contract.write_text(CONTRACT_TEMPLATE.format(name=name), encoding="utf-8")
        tests.write_text(TEST_TEMPLATE.format(name=name), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {directory}: {exc}")
    typer.echo(f"created {contract} and {tests}")
    typer.echo(f"next: taihang contract test {tests}")


# --- test ------------------------------------------------------------------------------------
def run_tests(
    file: Annotated[Path, typer.Argument(help="A test file test_X.py, or a contract X.py.")],
    as_json: TextJsonOption = False,
) -> None:
    """Run a contract's tests on an in-memory ledger: the chain's compiler and gas, no network."""
    from taihang.errors import TaihangError
    from taihang.sdk.contract_test_runner import (
        check_contract_file,
        find_contract_file,
        find_test_file,
        run_test_file,
    )
    from taihang.sdk.contract_testing import ContractSourceRejected

    try:
        if file.is_file() and not file.name.startswith("test_"):
            check_contract_file(file)  # a contract that does not compile, before its tests
        tests = find_test_file(file)
        contract = find_contract_file(tests)
        if contract is not None and contract != file:
            check_contract_file(contract)
        printer = None if as_json else _TestPrinter(tests)
        report = run_test_file(
            tests,
            on_call=None if printer is None else printer.on_call,
            on_outcome=None if printer is None else printer.on_outcome,
        )
    except ContractSourceRejected as exc:
        fail(f"contract does not compile\n{exc.message}")
    except TaihangError as exc:  # no file, no tests, a file that does not load
        fail(exc.message)
    if as_json:
        typer.echo(json.dumps(report_json(report), sort_keys=True))
    else:
        typer.echo(_summary(report))
    raise typer.Exit(compute_test_exit_code(report))


def compute_test_exit_code(report: TestReport) -> int:
    if report.count("error"):
        return EXIT_COMMAND
    return EXIT_TEST_FAILED if report.count("fail") else 0


def report_json(report: TestReport) -> dict[str, Any]:
    """The report as `taihang contract test --json` prints it."""
    return {
        "file": str(report.path),
        "passed": report.count("pass"),
        "failed": report.count("fail"),
        "errors": report.count("error"),
        "tests": [_outcome_json(o) for o in report.outcomes],
    }


def _outcome_json(outcome: TestOutcome) -> dict[str, Any]:
    from taihang.codec import value_to_json

    failure = outcome.failure
    return {
        "name": outcome.name,
        "status": outcome.status,
        "duration_ms": outcome.duration_ms,
        "failure": None
        if failure is None
        else {
            "type": failure.kind,
            "message": failure.message,
            "line": failure.line,
            "source": failure.source,
        },
        "calls": [
            {
                "kind": c.kind,
                "contract": c.contract,
                "method": c.method,
                "args": value_to_json(list(_shown_args(c))),
                "sender": c.sender,
                "status": c.status,
                "gas_used": c.gas_used,
                "error": c.error,
                "return_value": value_to_json(c.return_value),
            }
            for c in outcome.calls
        ],
    }


def _shown_args(call: CallRecord) -> tuple[Any, ...]:
    """The call's arguments, without the source of a deploy or upgrade."""
    if call.contract == "contracts" and call.method in ("deploy", "upgrade"):
        return (call.args[0], *call.args[2:])
    return call.args


class _TestPrinter:
    """Prints each call as it happens and each test's outcome once it ends."""

    def __init__(self, tests: Path) -> None:
        from taihang.sdk.contract_testing import DEFAULT_ACCOUNTS, compute_test_address

        self.tests = tests
        self.names = {compute_test_address(name): name for name in DEFAULT_ACCOUNTS}
        self.lines: list[str] = []
        self.started = False  # the file's name comes once its tests have loaded

    def on_call(self, call: CallRecord) -> None:
        self.lines.append(f"      {format_call(call, self.names)}")

    def on_outcome(self, outcome: TestOutcome) -> None:
        if not self.started:
            typer.echo(f"{self.tests}")
            self.started = True
        mark = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}[outcome.status]
        typer.echo(f"  {mark} {outcome.name} ({outcome.duration_ms:.1f} ms)")
        for line in self.lines:
            typer.echo(line)
        self.lines.clear()
        failure = outcome.failure
        if failure is None:
            return
        if failure.line is not None:
            typer.echo(f"    {self.tests.name}:{failure.line}: {failure.source.strip()}")
        for index, text in enumerate(f"{failure.kind}: {failure.message}".splitlines()):
            typer.echo(f"    {'' if index == 0 else '  '}{text}")


def format_call(call: CallRecord, names: dict[str, str]) -> str:
    """One line per call: `transfer(bob, 10) by alice  ok  4,251 gas`."""
    args = call.args
    if call.contract == "contracts" and call.method == "deploy" and len(args) == 4:
        what = f"deploy {args[0]} (version {args[2]}, init {_show(args[3], names)})"
    elif call.contract == "contracts" and call.method == "upgrade" and len(args) == 3:
        what = f"upgrade {args[0]} to version {args[2]}"
    elif call.contract == "contracts" and call.method in ("freeze", "unfreeze") and args:
        what = f"{call.method} {args[0]}"
    else:
        shown = ", ".join(_show(a, names) for a in args)
        what = f"{call.contract}.{call.method}({shown})"
    if call.kind == "view":
        result = _show(call.return_value, names) if call.status == "ok" else "failed"
        return f"{what} -> {result}"
    text = f"{what} by {call.sender}  {call.status}  {call.gas_used:,} gas"
    return f"{text}  {call.error}" if call.error else text


def _show(value: Any, names: dict[str, str]) -> str:
    if isinstance(value, str) and value in names:
        return names[value]
    if isinstance(value, bytes):
        text = "0x" + value.hex()
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(v, names) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{_show(k, names)}: {_show(v, names)}" for k, v in value.items())
        text += "}"
    else:
        text = repr(value)
    return text if len(text) <= VALUE_CHARS_MAX else text[: VALUE_CHARS_MAX - 3] + "..."


def _summary(report: TestReport) -> str:
    total_ms = sum(o.duration_ms for o in report.outcomes)
    parts = [f"{report.count('pass')} passed", f"{report.count('fail')} failed"]
    errors = report.count("error")
    if errors:
        parts.append(f"{errors} error{'' if errors == 1 else 's'}")
    return f"{', '.join(parts)} in {total_ms:.1f} ms"


# --- the network -------------------------------------------------------------------------------
def list_contracts(home: HomeOption = DEFAULT_HOME, as_json: TextJsonOption = False) -> None:
    """List the deployed contracts: name, version, frozen, org, deployer, source hash."""
    infos = _read(home, lambda c: c.list())
    if as_json:
        echo([i.to_json() for i in infos])
        return
    typer.echo(f"{'NAME':<20} {'VERSION':<8} {'FROZEN':<6} {'ORG':<8} {'DEPLOYER':<42} SOURCE")
    for i in infos:
        frozen = "yes" if i.frozen else "no"
        line = f"{i.name:<20} {i.version:<8} {frozen:<6} {i.org:<8} {i.deployer:<42}"
        typer.echo(f"{line} {i.source_hash[:16]}")


def show(
    name: Annotated[str, typer.Argument(help="The contract.")],
    source: Annotated[bool, typer.Option("--source", help="Also print the source.")] = False,
    home: HomeOption = DEFAULT_HOME,
    as_json: TextJsonOption = False,
) -> None:
    """Show a deployed contract's record (and with --source its source)."""
    info = _read(home, lambda c: c.get(name))
    text = _read(home, lambda c: c.get_source(name)) if source else None
    if as_json:
        data = info.to_json()
        if text is not None:
            data["source"] = text
        echo(data)
        return
    for key, value in info.to_json().items():
        typer.echo(
            f"{key + ':':<13}{'yes' if value is True else 'no' if value is False else value}"
        )
    if text is not None:
        typer.echo("")
        typer.echo(text.rstrip("\n"))


def upgrade(
    name: Annotated[str, typer.Argument(help="The contract.")],
    file: Annotated[Path, typer.Argument(help="The new source file.")],
    version: Annotated[
        str | None, typer.Option(help="The new version (default: the current one plus 1).")
    ] = None,
    home: HomeOption = DEFAULT_HOME,
    key: KeyOption = None,
    gas_limit: Annotated[int, typer.Option(help="Gas for the compile.")] = DEPLOY_GAS_LIMIT,
    as_json: ReceiptJsonOption = True,
) -> None:
    """Replace NAME's code with FILE, its state kept (a member of the deployer's org)."""
    from taihang.sdk.contracts import compute_next_version

    text = read_source(file)
    label = version or _read(home, lambda c: compute_next_version(c.get(name).version))
    transact(home, key, lambda c: c.upgrade(name, text, version=label, gas_limit=gas_limit))


def freeze(
    name: Annotated[str, typer.Argument(help="The contract.")],
    home: HomeOption = DEFAULT_HOME,
    key: KeyOption = None,
    gas_limit: Annotated[int, typer.Option(help="The gas limit.")] = INVOKE_GAS_LIMIT,
    as_json: ReceiptJsonOption = True,
) -> None:
    """Freeze NAME: it refuses transactions, its views still answer."""
    transact(home, key, lambda c: c.freeze(name, gas_limit=gas_limit))


def unfreeze(
    name: Annotated[str, typer.Argument(help="The contract.")],
    home: HomeOption = DEFAULT_HOME,
    key: KeyOption = None,
    gas_limit: Annotated[int, typer.Option(help="The gas limit.")] = INVOKE_GAS_LIMIT,
    as_json: ReceiptJsonOption = True,
) -> None:
    """Unfreeze NAME."""
    transact(home, key, lambda c: c.unfreeze(name, gas_limit=gas_limit))


def _read(home: Path, query: Callable[[Contracts], T]) -> T:
    """`query(contracts)` against the network, without a signer; exit 1 on failure."""
    from taihang.errors import TaihangError
    from taihang.sdk.client import Client
    from taihang.sdk.contracts import Contracts

    network = load(home)
    try:
        with Client(network.api) as client:
            return query(Contracts(client))
    except TaihangError as exc:
        fail(exc.message)
