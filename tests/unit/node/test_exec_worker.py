"""The contract executor worker: the same results as in-process execution, and its safety nets.

Blocks run twice over identical dict states, once in this process (`Executor`) and once in a
real worker process (`ExecutorProcess`); receipts, write sets and nonces must be identical.
The safety nets are tripped for real: a watchdog shorter than a max-gas loop, an address-space
limit below what a legitimately priced allocation needs, and a worker killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taihang.codec import Value, decode_value, encode_value
from taihang.constants import GAS_LIMIT_MAX
from taihang.errors import ContractReverted
from taihang.execution import BlockContext, Executor, build_genesis_writes
from taihang.execution.executor import BlockExecutor, BlockResult
from taihang.ledger.genesis import Genesis, MemberSpec, OrgSpec, ValidatorSpec
from taihang.ledger.transaction import Transaction, decode_transaction
from taihang.node.exec_client import ExecutorHalted, ExecutorProcess
from taihang.testing.ledger import SUITE, DictState, addr, key_of, sign_tx

CHANNEL = "main"
TOKEN = (Path(__file__).parents[3] / "examples" / "contracts" / "token.py").read_text()
HOSTILE = """
@public
def spin(ctx):
    n = 0
    while True:
        n += 1

@public
def hog(ctx, pieces):
    kept = []
    for i in range(pieces):
        kept.append("x" * 1000000)
    return len(kept)

@view
def echo(ctx, value):
    return value
"""


GENESIS = Genesis(
    protocol_version=1,
    channel=CHANNEL,
    crypto="ed25519",
    timestamp_ms=0,
    orgs=[OrgSpec(id="org1", name="One", ca_cert_pem="")],
    validators=[ValidatorSpec(name="v1", org="org1", public_key=key_of(1).hex())],
    members=[
        MemberSpec(
            public_key=key_of(who).hex(),
            org="org1",
            roles=["admin", "member"],
        )
        for who in (11, 12, 13)
    ],
)


class CountingState(DictState):
    """Executed state in a dict that counts the reads the node serves."""

    def __init__(self) -> None:
        super().__init__(build_genesis_writes(GENESIS))
        self.reads = 0

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return super().get(key)


class Runner:
    """Blocks of signed transactions against one executor and its own state."""

    def __init__(self, executor: BlockExecutor) -> None:
        self.executor = executor
        self.state = CountingState()
        self.height = 0
        self.nonces: dict[int, int] = {}

    def tx(self, who: int, contract: str, method: str, *args: Any, gas: int = 2_000_000) -> bytes:
        nonce = self.nonces.get(who, 0)
        self.nonces[who] = nonce + 1
        return sign_tx(who, nonce, contract, method, list(args), gas_limit=gas).raw

    def block(self, raws: list[bytes]) -> BlockResult:
        self.height += 1
        txs: list[Transaction] = [decode_transaction(raw, SUITE) for raw in raws]
        context = BlockContext(CHANNEL, self.height, self.height * 1_000)
        result = self.executor.execute_block(self.state, context, txs)
        self.state.apply(result.writes)
        return result

    def query(self, contract: str, method: str, *args: Value) -> Value:
        return self.executor.query(
            self.state, contract, method, list(args), base_height=self.height
        )


@pytest.fixture
def worker() -> Iterator[ExecutorProcess]:
    process = ExecutorProcess("ed25519")
    yield process
    process.close()


def deploy(runner: Runner, name: str, source: str, *init_args: Value) -> BlockResult:
    return runner.block(
        [runner.tx(11, "contracts", "deploy", name, source, "1.0", list(init_args))]
    )


def token_workload(runner: Runner) -> list[BlockResult]:
    results = [deploy(runner, "token", TOKEN, 1_000_000)]
    results.append(deploy(runner, "hostile", HOSTILE))
    for round_ in range(3):
        raws = [
            runner.tx(11, "token", "transfer", addr(12), 10 + round_),
            runner.tx(12, "token", "transfer", addr(13), 3),
            runner.tx(13, "token", "transfer", addr(11), 10**9),  # reverts: no such balance
            runner.tx(12, "hostile", "spin", gas=50_000),  # out of gas
            runner.tx(13, "asset", "no_such_method"),
        ]
        results.append(runner.block(raws))
    return results


def test_worker_results_equal_in_process_execution(worker: ExecutorProcess) -> None:
    local, remote = Runner(Executor(SUITE)), Runner(worker)
    expected = token_workload(local)
    actual = token_workload(remote)
    for mine, theirs in zip(expected, actual, strict=True):
        assert theirs.receipts == mine.receipts
        assert theirs.writes == mine.writes
        assert theirs.nonces == mine.nonces
    statuses = {r.status for result in actual for r in result.receipts}
    assert statuses == {"ok", "reverted", "out_of_gas"}
    assert remote.state.data == local.state.data
    assert remote.query("token", "balance_of", addr(12)) == local.query(
        "token", "balance_of", addr(12)
    )
    assert worker.starts == 1


def test_worker_caches_state_between_blocks(worker: ExecutorProcess) -> None:
    runner = Runner(worker)
    deploy(runner, "token", TOKEN, 1_000_000)
    runner.block([runner.tx(11, "token", "transfer", addr(12), 5)])
    reads = runner.state.reads
    runner.block([runner.tx(11, "token", "transfer", addr(12), 5)])
    # The second transfer touches the same keys: the worker's cache (updated with its own
    # writes) answers them, so the node serves no reads at all.
    assert runner.state.reads == reads
    assert runner.query("token", "balance_of", addr(12)) == 10


def test_worker_cache_is_dropped_when_the_state_moves_elsewhere(worker: ExecutorProcess) -> None:
    runner = Runner(worker)
    deploy(runner, "token", TOKEN, 1_000_000)
    runner.block([runner.tx(11, "token", "transfer", addr(12), 5)])
    # Someone else changed the executed state (say, a restore): a query over another height
    # must not be answered from the worker's cache.
    key = b"token/balance/" + addr(12).encode()
    assert key in runner.state.data
    runner.state.data[key] = encode_value(777)
    runner.height += 5
    assert runner.query("token", "balance_of", addr(12)) == 777


def test_query_errors_keep_their_kind(worker: ExecutorProcess) -> None:
    runner = Runner(worker)
    deploy(runner, "hostile", HOSTILE)
    assert runner.query("hostile", "echo", {"a": [1, b"\x00"]}) == {"a": [1, b"\x00"]}
    with pytest.raises(ContractReverted, match="no contract named 'nothing'"):
        runner.query("nothing", "echo", 1)
    with pytest.raises(ContractReverted):
        runner.query("hostile", "spin")  # a public method is not a view
    assert worker.starts == 1  # failed queries are answers, not worker failures


def test_watchdog_halts_a_silent_worker() -> None:
    # A max-gas loop takes about a second; a 0.2 s watchdog must see a silent worker.
    process = ExecutorProcess("ed25519", watchdog_s=0.2)
    try:
        runner = Runner(process)
        deploy(runner, "hostile", HOSTILE)
        with pytest.raises(ExecutorHalted, match=r"silent for 0\.2 s"):
            runner.block([runner.tx(12, "hostile", "spin", gas=GAS_LIMIT_MAX)])
        assert process.pid is None  # the stuck worker was stopped, never reused
    finally:
        process.close()


def _address_space_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmPeak")


def test_memory_limit_halts_instead_of_writing_a_receipt(worker: ExecutorProcess) -> None:
    runner = Runner(worker)
    deploy(runner, "hostile", HOSTILE)
    assert worker.pid is not None
    baseline = _address_space_mb(worker.pid)
    # 48 pieces of 1 MB are priced within a max-gas transaction; give the worker less room.
    tight = ExecutorProcess("ed25519", memory_mb=baseline + 24)
    try:
        tight_runner = Runner(tight)
        deploy(tight_runner, "hostile", HOSTILE)
        with pytest.raises(ExecutorHalted, match="MemoryError"):
            tight_runner.block([tight_runner.tx(12, "hostile", "hog", 48, gas=GAS_LIMIT_MAX)])
    finally:
        tight.close()
    # With the default limit the same transaction is simply executed.
    result = runner.block([runner.tx(12, "hostile", "hog", 48, gas=GAS_LIMIT_MAX)])
    assert result.receipts[0].status == "ok"
    assert decode_value(bytes(result.receipts[0].return_value)) == 48


def test_a_killed_worker_halts_the_block_and_the_next_request_starts_a_fresh_one(
    worker: ExecutorProcess,
) -> None:
    runner = Runner(worker)
    deploy(runner, "hostile", HOSTILE)
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(ExecutorHalted, match="exited unexpectedly"):
        runner.block([runner.tx(12, "hostile", "echo", 1)])
    assert runner.query("hostile", "echo", 5) == 5
    assert worker.starts == 2


def test_worker_inherits_no_secrets_and_limits_itself(
    worker: ExecutorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAIHANG_TEST_SECRET", "do-not-leak")
    process = ExecutorProcess("ed25519", memory_mb=1024)
    try:
        runner = Runner(process)
        deploy(runner, "hostile", HOSTILE)  # the worker is up and has served a block
        assert process.pid is not None
        environ = Path(f"/proc/{process.pid}/environ").read_bytes()
        assert b"TAIHANG_TEST_SECRET" not in environ
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        address_space = next(line for line in limits.splitlines() if "address space" in line)
        assert str(1024 * 1024 * 1024) in address_space
        descriptors = os.listdir(f"/proc/{process.pid}/fd")
        assert len(descriptors) <= 8  # stdio and the two protocol pipes; nothing inherited
    finally:
        process.close()
