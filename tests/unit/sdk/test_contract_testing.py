"""The in-memory ledger and test runner of `taihang.sdk.contract_testing`, and the SDK's
compile-error formatting (`taihang.sdk.contracts`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taihang.errors import InvalidInput
from taihang.execution.contracts import ContractCompileError, compile_contract
from taihang.sdk.contract_test_runner import (
    TestFileError,
    compare,
    find_contract_file,
    find_test_file,
    load_tests,
    run_test_file,
)
from taihang.sdk.contract_testing import (
    CallFailed,
    ContractSourceRejected,
    Ledger,
    TransactionFailed,
    compute_test_address,
)
from taihang.sdk.contracts import (
    ContractInfo,
    ContractNotFound,
    Contracts,
    compute_next_version,
    find_error_column,
    format_compile_error,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "contracts"

CLOCK = """
@public
def stamp(ctx):
    ctx.storage.set("at", [ctx.height, ctx.timestamp_ms, ctx.sender, ctx.org])

@public
def spin(ctx):
    while True:
        pass

@view
def at(ctx):
    return ctx.storage.get("at")
"""


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(base_dir=EXAMPLES)


def test_ledger_deploy_transact_and_call_the_token(ledger: Ledger) -> None:
    token = ledger.deploy("token.py", args=[1000])
    bob = ledger.address("bob")
    receipt = token.transact("transfer", bob, 10)
    assert receipt.ok and receipt.status == "ok" and receipt.error == ""
    assert receipt.gas_used > 0
    assert receipt.height == ledger.height == 2
    assert receipt.events[0].name == "Transfer"
    assert token.call("balance_of", bob) == 10
    kinds = [(c.kind, c.method, c.status) for c in ledger.calls]
    assert kinds == [
        ("transaction", "deploy", "ok"),
        ("transaction", "transfer", "ok"),
        ("view", "balance_of", "ok"),
    ]
    assert ledger.calls[1].gas_used == receipt.gas_used
    assert ledger.calls[2].gas_used is None


def test_gas_matches_a_second_ledger_exactly() -> None:
    """Same source, same calls, same gas: the harness adds nothing of its own."""
    gas = []
    for _ in range(2):
        ledger = Ledger(base_dir=EXAMPLES)
        token = ledger.deploy("token.py", args=[1000])
        gas.append(token.transact("transfer", ledger.address("bob"), 10).gas_used)
    assert gas[0] == gas[1] > 0


def test_transact_raises_with_the_receipt_and_try_transact_returns_it(ledger: Ledger) -> None:
    token = ledger.deploy("token.py", args=[5])
    with pytest.raises(TransactionFailed) as raised:
        token.transact("transfer", ledger.address("bob"), 6)
    assert raised.value.result.status == "reverted"
    assert raised.value.result.error == "insufficient balance"
    assert raised.value.result.gas_used > 0
    assert "transfer reverted: insufficient balance" in str(raised.value)
    failed = token.try_transact("transfer", ledger.address("bob"), 6)
    assert failed.status == "reverted" and not failed.ok


def test_reverts_checks_the_message_and_the_status(ledger: Ledger) -> None:
    token = ledger.deploy("token.py", args=[5])
    bob = ledger.address("bob")
    with ledger.reverts("insufficient") as caught:
        token.transact("transfer", bob, 6)
    assert caught.message == "insufficient balance"
    with pytest.raises(AssertionError, match="nothing failed"), ledger.reverts():
        token.transact("transfer", bob, 1)
    with pytest.raises(AssertionError, match="containing 'other'"), ledger.reverts("other"):
        token.transact("transfer", bob, 600)
    clock = ledger.deploy_source(CLOCK, name="clock")
    with ledger.reverts(status="out_of_gas"):
        clock.transact("spin", gas_limit=50_000)
    with pytest.raises(AssertionError, match="expected reverted, got out_of_gas"), ledger.reverts():
        clock.transact("spin", gas_limit=50_000)
    with ledger.reverts("has no public or view method") as caught:
        clock.call("nothing")
    assert isinstance(caught.failure, CallFailed)


def test_blocks_senders_and_time(ledger: Ledger) -> None:
    clock = ledger.deploy_source(CLOCK, name="clock")
    clock.transact("stamp", sender="carol")
    carol = ledger.address("carol")
    assert clock.call("at") == [2, 2000, carol, "org2"]
    ledger.advance(3, ms=500)
    clock.transact("stamp")
    assert clock.call("at") == [6, 4500, ledger.address("alice"), "org1"]
    assert ledger.address("alice") == compute_test_address("alice")
    with pytest.raises(InvalidInput, match="no test account 'eve'"):
        clock.transact("stamp", sender="eve")


def test_custom_accounts_and_org_rules() -> None:
    ledger = Ledger(accounts={"ops": "org1", "audit": "org3"}, base_dir=EXAMPLES)
    ledger.deploy("token.py", args=[1], sender="ops")
    assert ledger.info("token").org == "org1"
    with ledger.reverts("only a member of org org1"):
        ledger.freeze("token", sender="audit")


def test_upgrade_freeze_unfreeze_and_list(ledger: Ledger, tmp_path: Path) -> None:
    token = ledger.deploy("token.py", args=[100])
    bob = ledger.address("bob")
    token.transact("transfer", bob, 10)
    richer = tmp_path / "token_v2.py"
    richer.write_text(
        (EXAMPLES / "token.py").read_text() + "\n\n@view\ndef answer(ctx):\n    return 42\n"
    )
    ledger.upgrade("token", richer)
    assert token.info().version == "2"
    assert token.call("answer") == 42
    assert token.call("balance_of", bob) == 10  # state kept
    ledger.upgrade("token", richer, version="v3-final")
    assert token.info().version == "v3-final"
    with pytest.raises(InvalidInput, match="not a number"):
        ledger.upgrade("token", richer)
    with ledger.reverts("only a member of org org1"):
        ledger.freeze("token", sender="carol")
    ledger.freeze("token", sender="bob")
    assert token.info().frozen is True
    with ledger.reverts("is frozen"):
        token.transact("transfer", bob, 1)
    assert token.call("balance_of", bob) == 10  # views still answer
    ledger.unfreeze("token")
    token.transact("transfer", bob, 1)
    ledger.deploy("registry.py")
    assert [i.name for i in ledger.list()] == ["registry", "token"]
    assert token.storage("balance/" + bob) == 11
    with pytest.raises(ContractNotFound):
        ledger.contract("nothing")


def test_deploy_refuses_a_source_that_does_not_compile(ledger: Ledger, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("@public\ndef f(ctx):\n    return 1.5\n")
    with pytest.raises(ContractSourceRejected) as raised:
        ledger.deploy(bad)
    assert raised.value.message.splitlines() == [
        f"{bad}:3:12: float and complex numbers are not allowed; use fixed-point ints",
        "        return 1.5",
        "               ^",
    ]
    assert ledger.calls == []  # nothing was sent
    with ledger.reverts("compile error at line 3"):  # the chain's own answer
        ledger.deploy_source(bad.read_text(), name="bad", check=False)
    with pytest.raises(InvalidInput, match="cannot read"):
        ledger.deploy(tmp_path / "missing.py")


@pytest.mark.parametrize(
    ("source", "line", "column"),
    [
        ("x = [1]\n", 1, 0),  # a mutable module constant: the statement
        ("@public\ndef f(ctx):\n    return ctx._secret\n", 3, 11),
        ("@public\ndef f(ctx):\n    import os\n", 3, 4),
        ("@public\ndef f(ctx):\n    return {1, 2}\n", 3, 11),
        ("@public\ndef f(ctx):\n    return 1 < 2 < 3\n", 3, 11),
    ],
)
def test_compile_errors_carry_a_column(source: str, line: int, column: int) -> None:
    with pytest.raises(ContractCompileError) as raised:
        compile_contract(source)
    assert (raised.value.line, raised.value.column) == (line, column)


def test_format_compile_error_finds_syntax_error_columns() -> None:
    source = "@public\ndef f(ctx):\n\treturn (1 +\n"
    with pytest.raises(ContractCompileError) as raised:
        compile_contract(source)
    assert raised.value.column is not None  # the parser's offset
    assert raised.value.reason == "syntax error" and raised.value.detail  # CPython's words
    assert find_error_column(raised.value, source) == raised.value.column
    shown = format_compile_error(raised.value, source, "f.py")
    assert shown.startswith(f"f.py:3:{raised.value.column + 1}: syntax error (")
    text = format_compile_error(ContractCompileError(2, "odd", 4), "a\n\tb = 1\n", "c.py")
    assert text.splitlines() == ["c.py:2:5: odd", "    \tb = 1", "    \t   ^"]
    assert format_compile_error(ContractCompileError(9, "far"), "a\n", "c.py") == "c.py:9: far"


def test_compute_next_version() -> None:
    assert compute_next_version("1") == "2"
    assert compute_next_version("41") == "42"
    with pytest.raises(InvalidInput):
        compute_next_version("1.0")


def test_compare_shows_both_sides() -> None:
    assert compare(1, "==", 1)
    with pytest.raises(AssertionError, match=r"assert \[1\] == \[2\]"):
        compare([1], "==", [2])
    with pytest.raises(AssertionError, match="assert 3 not in"):
        compare(3, "not in", [3])


FAILING = """
from taihang.sdk.contract_testing import Ledger

calls = []


def next_value():
    calls.append(1)
    return len(calls)


def test_passes(ledger: Ledger) -> None:
    ledger.deploy("token.py", args=[3])


def test_compare_evaluates_each_side_once():
    assert next_value() == 2


def test_reverted(ledger):
    token = ledger.deploy("token.py", args=[3])
    token.transact("transfer", ledger.address("bob"), 4)


def test_bad_parameters(other):
    pass


def test_compile_error(ledger):
    ledger.deploy_source("def f(ctx):\\n    return 1.5\\n", name="bad")


def helper_not_a_test(ledger):
    raise RuntimeError("never called")
"""


def test_run_test_file_reports_each_outcome(tmp_path: Path) -> None:
    (tmp_path / "token.py").write_text((EXAMPLES / "token.py").read_text())
    tests = tmp_path / "test_token.py"
    tests.write_text(FAILING)
    seen: list[str] = []
    report = run_test_file(tests, on_outcome=lambda o: seen.append(o.name))
    by_name = {o.name: o for o in report.outcomes}
    assert (
        seen
        == list(by_name)
        == [
            "test_passes",
            "test_compare_evaluates_each_side_once",
            "test_reverted",
            "test_bad_parameters",
            "test_compile_error",
        ]
    )
    assert by_name["test_passes"].status == "pass"
    assert by_name["test_passes"].calls[0].gas_used > 0
    compared = by_name["test_compare_evaluates_each_side_once"].failure
    assert compared is not None
    assert (compared.kind, compared.message, compared.line) == (
        "AssertionError",
        "assert 1 == 2",
        17,
    )
    assert compared.source == "assert next_value() == 2"
    reverted = by_name["test_reverted"]
    assert reverted.status == "fail" and reverted.failure is not None
    assert reverted.failure.kind == "TransactionFailed" and reverted.failure.line == 22
    assert "insufficient balance" in reverted.failure.message
    assert "may take one parameter" in str(by_name["test_bad_parameters"].failure)
    assert by_name["test_compile_error"].status == "error"
    assert (report.count("pass"), report.count("fail"), report.count("error")) == (1, 3, 1)
    assert find_contract_file(tests) == tmp_path / "token.py"
    assert find_test_file(tmp_path / "token.py") == tests


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("def helper():\n    pass\n", r"has no test_\* functions"),
        ("def test_x(:\n", "syntax error"),
        ("import no_such_module_here\n", "cannot load: ModuleNotFoundError"),
    ],
)
def test_load_tests_refuses_files_it_cannot_run(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "test_x.py"
    path.write_text(text)
    with pytest.raises(TestFileError, match=message):
        load_tests(path)


def test_find_test_file_needs_a_file_and_tests(tmp_path: Path) -> None:
    with pytest.raises(TestFileError, match="no such file"):
        find_test_file(tmp_path / "nothing.py")
    (tmp_path / "lonely.py").write_text("")
    with pytest.raises(TestFileError, match=r"write test_lonely\.py"):
        find_test_file(tmp_path / "lonely.py")


class FakeClient:
    """What `Contracts` asks of a `Client` for queries, answered from a dict."""

    def __init__(self, records: dict[str, dict[str, Any]]) -> None:
        self.records = records

    def query(self, contract: str, method: str, args: list[Any] | None = None) -> Any:
        assert contract == "contracts"
        if method == "list":
            return [self.records[n] for n in sorted(self.records)]
        return self.records.get(args[0]) if args else None


def test_contracts_sdk_queries_and_needs_an_account_to_send() -> None:
    record = {
        "name": "token",
        "version": "3",
        "source_hash": bytes(32),
        "deployer": "ab" * 20,
        "org": "org1",
        "frozen": False,
    }
    contracts = Contracts(FakeClient({"token": record}))  # type: ignore[arg-type]
    info = contracts.get("token")
    assert info == ContractInfo("token", "3", "00" * 32, "ab" * 20, "org1", False)
    assert info.to_json()["source_hash"] == "00" * 32
    assert contracts.list() == [info]
    assert contracts.find("other") is None
    with pytest.raises(ContractNotFound):
        contracts.get("other")
    with pytest.raises(InvalidInput, match="needs an account"):
        contracts.freeze("token")
    with pytest.raises(ContractCompileError):
        contracts.deploy("x", "def f(:\n")  # checked before anything else


def test_the_national_suite_runs_too() -> None:
    ledger = Ledger(crypto="sm", base_dir=EXAMPLES)
    token = ledger.deploy("token.py", args=[5])
    assert token.transact("transfer", ledger.address("bob"), 2).gas_used > 0
    assert token.call("balance_of", ledger.address("bob")) == 2
    assert ledger.address("bob") == compute_test_address("bob", "sm")
