"""`taihang contract deploy|invoke|call` as scripts use them, on a one-node network."""

from __future__ import annotations

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
