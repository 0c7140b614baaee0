"""Benchmark: a contract call against the same function run as plain Python (issue 9).

    .venv/bin/python tests/bench/bench_contract_overhead.py [--calls 20000] [--repeats 5]

Both run the shipped token's `transfer` between two accounts, in one process, alternating
runs so machine noise hits both alike:
- contract: `call_contract` on the compiled token (rewritten for gas and size checks, fresh
  globals per call, values crossing the host as canonical bytes) over an in-memory host;
- plain over the host: the same source executed as ordinary Python (`@public`/`require` as
  trivial functions) with a `ctx` whose storage and events cross the same host as canonical
  bytes, which is the least any ledger must do: the runtime's own overhead is the ratio;
- bare Python: the same, with `ctx.storage` a dict of Python values (no encoding at all).
The ratios are the overhead per call; docs/benchmarks.md records it with the machine.
Not a pass/fail test; pytest does not collect it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import msgspec

from taihang.codec import Value, decode_value, encode_value
from taihang.crypto import get_suite
from taihang.execution.contracts import call_contract, compile_contract
from taihang.execution.contracts.calibration import CalibrationHost
from taihang.ledger.receipt import Event

TOKEN = (Path(__file__).parents[2] / "examples" / "contracts" / "token.py").read_text()
ALICE, BOB = "a1" * 20, "b2" * 20
SUITE = get_suite("ed25519")


def make_host() -> CalibrationHost:
    """The calibration's in-memory host: storage as canonical bytes, as the executor keeps it."""
    return CalibrationHost(SUITE, sender=ALICE, contract="token")


class PlainStorage:
    def __init__(self) -> None:
        self.data: dict[str, Value] = {}

    def get(self, key: str, default: Value = None) -> Value:
        return self.data.get(key, default)

    def set(self, key: str, value: Value) -> None:
        self.data[key] = value


class PlainContext:
    def __init__(self) -> None:
        self.sender = ALICE
        self.storage = PlainStorage()
        self.events: list[tuple[str, Value]] = []

    def emit(self, name: str, data: Value) -> None:
        self.events.append((name, data))


class HostStorage:
    """Plain Python over the same host: values cross it as canonical bytes, nothing else."""

    def __init__(self, host: CalibrationHost) -> None:
        self.host = host

    def get(self, key: str, default: Value = None) -> Value:
        raw = self.host.storage_get(key)
        return default if raw is None else decode_value(raw)

    def set(self, key: str, value: Value) -> None:
        self.host.storage_set(key, encode_value(value))


class HostContext:
    def __init__(self, host: CalibrationHost) -> None:
        self.sender = host.sender
        self.storage = HostStorage(host)
        self.events: list[Event] = []

    def emit(self, name: str, data: Value) -> None:
        self.events.append(Event(contract="token", name=name, data=msgspec.Raw(encode_value(data))))


def plain_transfer() -> Any:
    def require(condition: object, message: str = "") -> None:
        if not condition:
            raise ValueError(message)

    names: dict[str, Any] = {"public": lambda f: f, "view": lambda f: f, "require": require}
    exec(compile(TOKEN, "token.py", "exec"), names)
    return names["transfer"]


def time_contract(calls: int) -> float:
    compiled = compile_contract(TOKEN)
    host = make_host()
    result = call_contract(compiled, "init", [10**15], host, 1_000_000, view=False, is_deploy=True)
    assert result.is_ok, result.error
    start = time.perf_counter()
    for _ in range(calls):
        result = call_contract(compiled, "transfer", [BOB, 1], host, 1_000_000, view=False)
    elapsed = time.perf_counter() - start
    assert result.is_ok, result.error
    return elapsed / calls


def time_plain(calls: int) -> float:
    transfer = plain_transfer()
    ctx = PlainContext()
    ctx.storage.set("balance/" + ALICE, 10**15)
    start = time.perf_counter()
    for _ in range(calls):
        transfer(ctx, BOB, 1)
    elapsed = time.perf_counter() - start
    assert ctx.storage.get("balance/" + BOB) == calls
    return elapsed / calls


def time_plain_over_host(calls: int) -> float:
    transfer = plain_transfer()
    host = make_host()
    ctx = HostContext(host)
    ctx.storage.set("balance/" + ALICE, 10**15)
    start = time.perf_counter()
    for _ in range(calls):
        transfer(HostContext(host), BOB, 1)
    elapsed = time.perf_counter() - start
    assert ctx.storage.get("balance/" + BOB) == calls
    return elapsed / calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    contract, plain, over_host = [], [], []
    for _ in range(options.repeats):
        contract.append(time_contract(options.calls))
        plain.append(time_plain(options.calls))
        over_host.append(time_plain_over_host(options.calls))
    rows = [("contract transfer", contract), ("plain over host", over_host), ("bare Python", plain)]
    for label, times in rows:
        best, median = min(times) * 1e6, statistics.median(times) * 1e6
        print(f"{label:18} {best:6.2f} us/call (median {median:.2f})")
    print(f"overhead vs plain Python over the same host: {min(contract) / min(over_host):.1f}x")
    print(f"overhead vs bare Python (dict storage):      {min(contract) / min(plain):.1f}x")


if __name__ == "__main__":
    main()
