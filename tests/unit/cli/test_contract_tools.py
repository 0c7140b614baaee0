"""`taihang contract new|test|list|show|upgrade|freeze|unfreeze` and the local compile check of
`deploy`, without a network; the example contracts' own tests run here, so `make test` runs
them. The network commands are exercised against a real node in tests/e2e/test_contract_cli.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taihang.cli import contract_tools, contracts
from taihang.cli.main import app
from taihang.sdk import contracts as sdk_contracts
from taihang.sdk.contract_test_runner import run_test_file
from taihang.sdk.contract_testing import CallRecord

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "contracts"
EXAMPLE_TESTS = sorted(EXAMPLES.glob("test_*.py"))
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["contract", *args])
    return result.exit_code, result.stdout, result.stderr


def test_every_example_has_tests() -> None:
    contracts_found = {p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("test_")}
    contracts_found.discard("conftest")
    assert {"token", "registry", "voting"} <= contracts_found
    assert {p.stem.removeprefix("test_") for p in EXAMPLE_TESTS} == contracts_found


@pytest.mark.parametrize("tests", EXAMPLE_TESTS, ids=lambda p: p.name)
def test_example_tests_pass(tests: Path) -> None:
    report = run_test_file(tests)
    failures = [(o.name, o.failure) for o in report.outcomes if o.status != "pass"]
    assert failures == []
    assert len(report.outcomes) >= 5


@pytest.mark.parametrize("target", ["test_voting.py", "voting.py"])
def test_contract_test_command_runs_a_file_or_a_contracts_tests(target: str) -> None:
    code, out, _ = invoke("test", str(EXAMPLES / target))
    assert code == 0, out
    assert "  PASS test_threshold_executes_the_proposal" in out
    assert "voting.approve(1) by bob  ok  " in out  # each call with its gas
    assert out.rstrip().splitlines()[-1].startswith("7 passed, 0 failed in ")


FAILING = """
from taihang.sdk.contract_testing import Ledger


def test_good(ledger: Ledger) -> None:
    token = ledger.deploy("token.py", args=[10])
    token.transact("transfer", ledger.address("bob"), 3)


def test_bad(ledger: Ledger) -> None:
    token = ledger.deploy("token.py", args=[10])
    token.transact("transfer", ledger.address("bob"), 3)
    assert token.call("balance_of", ledger.address("bob")) == 4
"""


@pytest.fixture
def failing(tmp_path: Path) -> Path:
    (tmp_path / "token.py").write_text((EXAMPLES / "token.py").read_text())
    tests = tmp_path / "test_token.py"
    tests.write_text(FAILING)
    return tests


def test_a_failing_test_is_reported_with_its_line_and_values(failing: Path) -> None:
    code, out, _ = invoke("test", str(failing))
    assert code == 2
    lines = out.splitlines()
    assert any(line.startswith("  PASS test_good (") for line in lines)
    assert any(line.startswith("  FAIL test_bad (") for line in lines)
    assert any(
        re.fullmatch(r"      token.transfer\(bob, 3\) by alice  ok  [\d,]+ gas", x) for x in lines
    )
    assert "      token.balance_of(bob) -> 3" in lines
    assert (
        '    test_token.py:13: assert token.call("balance_of", ledger.address("bob")) == 4' in lines
    )
    assert "    AssertionError: assert 3 == 4" in lines
    assert lines[-1].startswith("1 passed, 1 failed in ")


def test_json_report(failing: Path) -> None:
    code, out, _ = invoke("test", str(failing), "--json")
    assert code == 2
    report = json.loads(out)
    assert (report["passed"], report["failed"], report["errors"]) == (1, 1, 0)
    good, bad = report["tests"]
    assert good["status"] == "pass" and good["failure"] is None
    deploy, transfer = good["calls"]
    assert (deploy["method"], deploy["args"], deploy["status"]) == (
        "deploy",
        ["token", "1", [10]],
        "ok",
    )
    assert transfer["gas_used"] > 0 and transfer["sender"] == "alice"
    assert bad["failure"] == {
        "type": "AssertionError",
        "message": "assert 3 == 4",
        "line": 13,
        "source": 'assert token.call("balance_of", ledger.address("bob")) == 4',
    }


BAD_CONTRACT = "@public\ndef transfer(ctx, to):\n    return to / 2\n"
DIVISION = "true division / is not allowed (no floats); use //"


def test_a_contract_that_does_not_compile_fails_the_command(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(BAD_CONTRACT)
    (tmp_path / "test_broken.py").write_text("def test_x(ledger):\n    pass\n")
    for target in ("broken.py", "test_broken.py"):
        code, out, err = invoke("test", str(tmp_path / target))
        assert code == 1 and out == ""
        assert err.splitlines() == [
            "error: contract does not compile",
            f"{tmp_path / 'broken.py'}:3:12: {DIVISION}",
            "        return to / 2",
            "               ^",
        ]


def test_a_compile_error_inside_a_test_is_an_error(tmp_path: Path) -> None:
    tests = tmp_path / "test_inline.py"
    tests.write_text(f"def test_x(ledger):\n    ledger.deploy_source({BAD_CONTRACT!r}, name='b')\n")
    code, out, _ = invoke("test", str(tests))
    assert code == 1
    assert "  ERROR test_x (" in out
    assert f"<source>:3:12: {DIVISION}" in out


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ({}, "no such file"),
        ({"lonely.py": "@view\ndef f(ctx):\n    return 1\n"}, "write test_lonely.py"),
        ({"test_empty.py": "x = 1\n"}, "has no test_* functions"),
    ],
)
def test_files_the_runner_cannot_use(tmp_path: Path, setup: dict[str, str], message: str) -> None:
    for name, text in setup.items():
        (tmp_path / name).write_text(text)
    target = next(iter(setup), "missing.py")
    code, _, err = invoke("test", str(tmp_path / target))
    assert code == 1
    assert message in err


def test_new_writes_a_contract_whose_tests_pass(tmp_path: Path) -> None:
    code, out, _ = invoke("new", "piggy_bank", "--dir", str(tmp_path / "work"))
    assert code == 0, out
    contract, tests = tmp_path / "work" / "piggy_bank.py", tmp_path / "work" / "test_piggy_bank.py"
    assert contract.is_file() and tests.is_file()
    code, out, _ = invoke("test", str(contract))
    assert code == 0, out
    assert "4 passed, 0 failed" in out
    code, _, err = invoke("new", "piggy_bank", "--dir", str(tmp_path / "work"))
    assert code == 1 and "exists; not overwriting it" in err


@pytest.mark.parametrize("name", ["Token", "1st", "_x", "a-b", "test_thing", "asset", "x" * 65])
def test_new_refuses_bad_names(tmp_path: Path, name: str) -> None:
    code, _, err = invoke("new", name, "--dir", str(tmp_path))
    assert code == 1 and "error:" in err
    assert list(tmp_path.iterdir()) == []


def test_deploy_and_upgrade_check_the_source_before_anything_else(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(BAD_CONTRACT)
    home = tmp_path / "no-network"  # never reached: the check comes first
    for args in (["deploy", str(bad), "--name", "bad"], ["upgrade", "bad", str(bad)]):
        code, out, err = invoke(*args, "--home", str(home), "--json")
        assert code == 1 and out == ""
        assert f"{bad}:3:12: {DIVISION}" in err
        assert err.rstrip().endswith("^")


@pytest.mark.parametrize(
    "args", [["list"], ["show", "token"], ["freeze", "token"], ["unfreeze", "token"]]
)
def test_network_commands_without_a_network_fail_the_command(
    tmp_path: Path, args: list[str]
) -> None:
    code, out, err = invoke(*args, "--home", str(tmp_path / "none"))
    assert code == 1 and out == ""
    assert err.startswith("error: ")


def test_format_call_names_test_accounts_and_elides_sources() -> None:
    names = {"ab" * 20: "bob"}
    deploy = CallRecord(
        "transaction",
        "contracts",
        "deploy",
        ("tok", "SOURCE", "1", [5]),
        "alice",
        "ok",
        5,
        "",
        None,
    )
    assert contract_tools.format_call(deploy, names) == (
        "deploy tok (version 1, init [5]) by alice  ok  5 gas"
    )
    failed = CallRecord(
        "transaction",
        "tok",
        "send",
        ("ab" * 20, b"\x01", "x" * 100),
        "carol",
        "reverted",
        1234,
        "no",
        None,
    )
    text = contract_tools.format_call(failed, names)
    assert text.startswith("tok.send(bob, 0x01, 'xxxxx")
    assert text.endswith("...) by carol  reverted  1,234 gas  no")
    view = CallRecord("view", "tok", "get", (), None, "failed", None, "", None)
    assert contract_tools.format_call(view, names) == "tok.get() -> failed"


def test_cli_gas_limits_match_the_sdk() -> None:
    assert contracts.DEPLOY_GAS_LIMIT == sdk_contracts.DEPLOY_GAS_LIMIT
    assert contracts.INVOKE_GAS_LIMIT == sdk_contracts.INVOKE_GAS_LIMIT
