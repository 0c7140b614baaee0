"""`taihang contract deploy|invoke|call` as scripts use them, on a one-node network."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from e2e_support import RunningNode, run_cli

pytestmark = pytest.mark.e2e

TOKEN = Path(__file__).parents[2] / "examples" / "contracts" / "token.py"
RECEIPT_FIELDS = {"status", "gas_used", "return_value", "events", "error"}


def cli(node: RunningNode, *args: str, code: int = 0) -> Any:
    result = run_cli("contract", *args, "--json", home=node.network.path, check=False)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout) if code != 1 else result.stderr


def test_deploy_invoke_call_the_token(node: RunningNode) -> None:
    admin = {k.name: k.address for k in node.network.keystore.list()}["admin"]
    bob = "b0" * 20

    deployed = cli(node, "deploy", str(TOKEN), "--name", "token", "--args", "[1000]")
    assert set(deployed) >= RECEIPT_FIELDS
    assert deployed["status"] == "ok" and deployed["error"] is None
    assert deployed["gas_used"] > 0
    assert deployed["return_value"]["name"] == "token"

    sent = cli(node, "invoke", "token", "transfer", "--args", json.dumps([bob, 250]))
    assert sent["status"] == "ok" and sent["error"] is None
    assert sent["events"] == [
        {
            "contract": "token",
            "name": "Transfer",
            "data": {"from": admin, "to": bob, "amount": 250},
        }
    ]
    assert cli(node, "call", "token", "balance_of", "--args", json.dumps([bob])) == 250
    assert cli(node, "call", "token", "balance_of", "--args", json.dumps([admin])) == 750

    # A failed transaction: exit 2, the failure kind and the contract's message.
    failed = cli(node, "invoke", "token", "transfer", "--args", json.dumps([bob, 10**6]), code=2)
    assert failed["status"] == "reverted"
    assert failed["error"] == {"code": "reverted", "message": "insufficient balance"}
    again = cli(node, "deploy", str(TOKEN), "--name", "token", "--args", "[1]", code=2)
    assert "already exists" in again["error"]["message"]
    assert cli(node, "call", "token", "balance_of", "--args", json.dumps([bob])) == 250
    not_a_view = cli(node, "call", "token", "transfer", "--args", json.dumps([bob, 1]), code=2)
    assert set(not_a_view["error"]) == {"code", "message"}

    # The command itself failed: exit 1.
    assert "JSON" in cli(node, "invoke", "token", "transfer", "--args", "[oops", code=1)
    assert "nobody" in cli(node, "invoke", "token", "transfer", "--key", "nobody", code=1)
    assert "cannot read" in cli(node, "deploy", "missing.py", "--name", "x", code=1)


REGISTRY = TOKEN.with_name("registry.py")


def text_cli(node: RunningNode, *args: str, code: int = 0) -> str:
    result = run_cli("contract", *args, home=node.network.path, check=False)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return result.stdout if code == 0 else result.stderr


def test_list_show_upgrade_freeze_unfreeze(node: RunningNode, tmp_path: Path) -> None:
    admin = {k.name: k.address for k in node.network.keystore.list()}["admin"]
    bob = "b0" * 20
    assert cli(node, "list") == []
    cli(node, "deploy", str(TOKEN), "--name", "token", "--args", "[1000]")
    cli(node, "deploy", str(REGISTRY), "--name", "registry")

    listed = cli(node, "list")
    assert [c["name"] for c in listed] == ["registry", "token"]
    token = listed[1]
    assert token == {
        "name": "token",
        "version": "1",
        "source_hash": hashlib.sha256(TOKEN.read_bytes()).hexdigest(),
        "deployer": admin,
        "org": "org1",
        "frozen": False,
    }
    assert cli(node, "show", "token") == token
    assert cli(node, "show", "token", "--source")["source"] == TOKEN.read_text()
    table = text_cli(node, "list")
    assert table.splitlines()[0].split() == [
        "NAME",
        "VERSION",
        "FROZEN",
        "ORG",
        "DEPLOYER",
        "SOURCE",
    ]
    assert "token" in table and "registry" in table
    shown = text_cli(node, "show", "token")
    assert "version:     1" in shown and "frozen:      no" in shown
    assert "no contract named 'nothing'" in cli(node, "show", "nothing", code=1)

    # Upgrade: the version goes up by one unless given; the state stays.
    cli(node, "invoke", "token", "transfer", "--args", json.dumps([bob, 5]))
    v2 = tmp_path / "token_v2.py"
    v2.write_text(TOKEN.read_text() + "\n\n@view\ndef supply_note(ctx):\n    return 'v2'\n")
    upgraded = cli(node, "upgrade", "token", str(v2))
    assert upgraded["status"] == "ok"
    assert upgraded["events"][0]["name"] == "Upgraded"
    assert cli(node, "show", "token")["version"] == "2"
    assert cli(node, "call", "token", "supply_note") == "v2"
    assert cli(node, "call", "token", "balance_of", "--args", json.dumps([bob])) == 5
    assert cli(node, "upgrade", "token", str(v2), "--version", "2.1")["status"] == "ok"
    assert cli(node, "show", "token")["version"] == "2.1"
    assert "not a number" in cli(node, "upgrade", "token", str(v2), code=1)
    bad = tmp_path / "bad.py"
    bad.write_text("@view\ndef f(ctx):\n    return 0.5\n")
    err = cli(node, "upgrade", "token", str(bad), "--version", "3", code=1)
    assert f"{bad}:3:12: float and complex numbers are not allowed" in err
    assert err.rstrip().endswith("^")

    # Freeze: transactions are refused, views answer; unfreeze restores.
    frozen = cli(node, "freeze", "token")
    assert frozen["status"] == "ok" and frozen["events"][0]["name"] == "Frozen"
    assert cli(node, "show", "token")["frozen"] is True
    refused = cli(node, "invoke", "token", "transfer", "--args", json.dumps([bob, 1]), code=2)
    assert refused["error"] == {"code": "reverted", "message": "contract 'token' is frozen"}
    assert cli(node, "call", "token", "balance_of", "--args", json.dumps([bob])) == 5
    again = cli(node, "freeze", "token", code=2)
    assert "already frozen" in again["error"]["message"]
    assert cli(node, "unfreeze", "token")["status"] == "ok"
    assert (
        cli(node, "invoke", "token", "transfer", "--args", json.dumps([bob, 1]))["status"] == "ok"
    )
    assert "no contract named" in cli(node, "freeze", "nothing", code=2)["error"]["message"]

    # Deploy checks the source first: exit 1, nothing sent.
    err = cli(node, "deploy", str(bad), "--name", "bad", code=1)
    assert f"{bad}:3:12:" in err
    assert [c["name"] for c in cli(node, "list")] == ["registry", "token"]
