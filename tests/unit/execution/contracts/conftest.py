"""An in-memory `ContractHost` and a `run` helper for the contract runtime tests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taihang.execution.contracts import CallResult, call_contract, compile_contract

# The spec's token example, as shipped for users (comments included: they must compile too).
TOKEN_SOURCE = (Path(__file__).parents[4] / "examples" / "contracts" / "token.py").read_text()


class FakeHost:
    """Storage in a dict; cross-contract calls dispatch to `contracts` by name."""

    def __init__(self, contract: str = "token", sender: str = "alice") -> None:
        self.data: dict[str, bytes] = {}
        self.sender = sender
        self.org = "org1"
        self.roles = ("member",)
        self.contract = contract
        self.channel = "main"
        self.height = 7
        self.timestamp_ms = 1_700_000_000_000
        self.tx_id = b"\x01" * 32
        self.contracts: dict[str, tuple[str, FakeHost]] = {}

    def storage_get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def storage_set(self, key: str, raw: bytes) -> None:
        self.data[key] = raw

    def storage_delete(self, key: str) -> None:
        self.data.pop(key, None)

    def storage_items(self, prefix: str, limit: int) -> tuple[list[tuple[str, bytes]], int]:
        found = sorted((k, v) for k, v in self.data.items() if k.startswith(prefix))[:limit]
        return found, len(found)

    def call(
        self, contract: str, method: str, args: list[Any], gas_limit: int, depth: int, view: bool
    ) -> CallResult:
        source, host = self.contracts[contract]
        return call_contract(
            compile_contract(source), method, args, host, gas_limit, view=view, depth=depth
        )

    def hash(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        return signature == hashlib.sha256(public_key + message).digest()


Runner = Callable[..., CallResult]


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def run(host: FakeHost) -> Runner:
    """`run(source, method, *args, gas=..., view=False, deploy=False)` on the `host` fixture."""

    def runner(
        source: str,
        method: str,
        *args: Any,
        gas: int = 1_000_000,
        view: bool = False,
        deploy: bool = False,
    ) -> CallResult:
        compiled = compile_contract(source)
        return call_contract(compiled, method, list(args), host, gas, view=view, is_deploy=deploy)

    return runner
