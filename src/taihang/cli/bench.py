"""`taihang bench`: committed TPS and submit-to-commit latency against a running network.

From a separate process, against the network exactly as `taihang up` configured it: it
registers and funds `accounts` sender accounts with the development key and sets up the
workload (`bench_workloads`: deploys, funding; not measured), pre-signs N of the workload's
calls, submits them in batches at a target rate or flat out, and counts a
transaction only when its receipt is readable over REST (any status). Seeds derive from the
genesis hash, so repeated runs reuse the same accounts.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from taihang.cli.bench_workloads import Workload, get_workload
from taihang.cli.network import Network, load_network
from taihang.codec import decode
from taihang.crypto import CryptoSuite, get_suite
from taihang.errors import TransientError
from taihang.ledger.transaction import TxEnvelope, compute_address, compute_tx_id
from taihang.sdk.account import Account, Call
from taihang.sdk.client import AsyncClient, Client
from taihang.sdk.keys import load_key
from taihang.sdk.signer import KeySigner
from taihang.sdk.tx import DEFAULT_EXPIRY_BLOCKS, build_signed_tx

SETUP_CHUNK = 50  # below the mempool's per-sender and nonce-gap limits
FUNDING = 10**12
COMMIT_TIMEOUT_S = 60.0
IN_FLIGHT_BATCHES = 2


@dataclass
class BenchResult:
    submitted: int = 0
    committed: int = 0
    ok: int = 0
    first_submit: float = 0.0
    last_commit: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    verify_per_s: float = 0.0  # this machine's single-core signature checks, same run

    @property
    def all_committed(self) -> bool:
        return self.submitted > 0 and self.committed == self.submitted

    def summary(self) -> dict[str, Any]:
        seconds = max(self.last_commit - self.first_submit, 1e-9)
        ordered = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

        return {
            "submitted": self.submitted,
            "committed": self.committed,
            "tps": round(self.committed / seconds, 1) if self.committed else 0.0,
            "p50_ms": pct(0.50),
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
            "success_rate": round(self.ok / self.submitted, 4) if self.submitted else 0.0,
            "rejected": dict(sorted(self.rejected.items())),
            "verify_per_s": round(self.verify_per_s),
        }


def measure_verify_rate(suite: CryptoSuite, seconds: float = 1.0) -> float:
    """Signature verifications per second on one core, for the report's signature bound."""
    seed = suite.tagged_hash(b"taihang/bench/verify", b"")
    public_key = suite.public_key_from_seed(seed)
    message = bytes(200)  # about a transfer's body
    signature = suite.sign(seed, message)
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(200):
            suite.verify(public_key, message, signature)
        count += 200
    return count / elapsed


def account_seeds(suite: CryptoSuite, genesis_hash: bytes, count: int) -> list[bytes]:
    return [
        suite.tagged_hash(b"taihang/bench/account", genesis_hash + i.to_bytes(4, "big"))
        for i in range(count)
    ]


def _send_chunked(admin: Account, calls: list[Call], label: str, *, progress: Progress) -> None:
    """Send setup calls in chunks that fit the mempool's per-sender limits; wait for each."""
    task = progress.add_task(label, total=len(calls))
    for start in range(0, len(calls), SETUP_CHUNK):
        chunk = calls[start : start + SETUP_CHUNK]
        results = admin.submit_batch(chunk)
        errors = [r.error for r in results if r.error is not None]
        if errors:
            raise TransientError(f"setup transaction rejected: {errors[0].detail}")
        last = results[-1].id
        assert last is not None
        receipt = admin.client.wait_for_receipt(last).receipt
        assert receipt is not None
        if receipt.status != "ok":
            raise TransientError(f"setup transaction failed: {receipt.error_message}")
        progress.advance(task, len(chunk))


def setup_accounts(
    client: Client, network: Network, seeds: list[bytes], progress: Progress
) -> list[str]:
    """Register and fund the accounts that are not yet funded members; return addresses."""
    suite = get_suite(network.crypto)
    admin = Account(client, KeySigner(load_key(network.keystore.path_for("admin"))))
    keys = [suite.public_key_from_seed(s) for s in seeds]
    addresses: list[str] = [compute_address(suite, k) for k in keys]
    new = [k for k, a in zip(keys, addresses, strict=True) if client.get_account(a).member is None]
    unfunded = [a for a in addresses if not client.query("asset", "balance", [a])]
    _send_chunked(
        admin,
        [("members", "add", [k, ["member"]]) for k in new],
        "registering accounts",
        progress=progress,
    )
    _send_chunked(
        admin,
        [("asset", "issue", [a, FUNDING]) for a in unfunded],
        "funding accounts",
        progress=progress,
    )
    return addresses


def presign(
    client: Client,
    network: Network,
    seeds: list[bytes],
    addresses: list[str],
    txs: int,
    progress: Progress,
    workload: Workload,
) -> list[tuple[bytes, bytes]]:
    """(tx id, envelope) pairs in submission order: nonce layer by layer across accounts."""
    suite = get_suite(network.crypto)
    height = client.status().height
    nonces = [client.next_nonce(a) for a in addresses]
    task = progress.add_task("signing", total=txs)
    out: list[tuple[bytes, bytes]] = []
    count = len(seeds)
    for i in range(txs):
        sender = i % count
        recipient = (sender + 1 + i // count) % count
        contract, method, args = workload.call_for(i, sender, addresses[recipient])
        raw = build_signed_tx(
            seed=seeds[sender],
            suite_name=network.crypto,
            channel=network.channel,
            nonce=nonces[sender],
            contract=contract,
            method=method,
            args=args,
            expires_at_height=height + DEFAULT_EXPIRY_BLOCKS,
            gas_limit=workload.gas_limit,
        )
        nonces[sender] += 1
        out.append((tx_id_of(raw, suite), raw))
        if i % 500 == 0:
            progress.update(task, completed=i)
    progress.update(task, completed=txs)
    return out


def tx_id_of(raw: bytes, suite: CryptoSuite) -> bytes:
    envelope = decode(raw, TxEnvelope)
    return compute_tx_id(suite, envelope.body)


async def submit_and_watch(
    api: str,
    signed: list[tuple[bytes, bytes]],
    batch: int,
    rate: float | None,
    progress: Progress,
) -> BenchResult:
    result = BenchResult()
    sent_at: dict[str, float] = {}
    task = progress.add_task("committed", total=len(signed))
    async with AsyncClient(api, timeout_s=60.0) as client:
        start_height = (await client.status()).executed_height
        watcher = asyncio.create_task(_watch(client, start_height, sent_at, result, progress, task))
        await _submit(client, signed, batch, rate, sent_at, result)
        deadline = time.monotonic() + COMMIT_TIMEOUT_S
        while sent_at and time.monotonic() < deadline and not watcher.done():
            await asyncio.sleep(0.05)
        watcher.cancel()
    return result


async def _submit(
    client: AsyncClient,
    signed: list[tuple[bytes, bytes]],
    batch: int,
    rate: float | None,
    sent_at: dict[str, float],
    result: BenchResult,
) -> None:
    gate = asyncio.Semaphore(IN_FLIGHT_BATCHES)
    result.first_submit = time.monotonic()

    async def post(chunk: list[tuple[bytes, bytes]]) -> None:
        now = time.monotonic()
        for tx_id, _ in chunk:
            sent_at[tx_id.hex()] = now
        try:
            answers = await client.submit_batch([raw for _, raw in chunk])
        finally:
            gate.release()
        for (tx_id, _), answer in zip(chunk, answers, strict=True):
            if answer.error is not None:
                sent_at.pop(tx_id.hex(), None)
                code = answer.error.code
                result.rejected[code] = result.rejected.get(code, 0) + 1

    tasks = []
    for index, start in enumerate(range(0, len(signed), batch)):
        if rate:
            delay = result.first_submit + index * batch / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await gate.acquire()
        chunk = signed[start : start + batch]
        result.submitted += len(chunk)
        tasks.append(asyncio.create_task(post(chunk)))
    await asyncio.gather(*tasks)


async def _watch(
    client: AsyncClient,
    height: int,
    sent_at: dict[str, float],
    result: BenchResult,
    progress: Progress,
    task: Any,
) -> None:
    """Read every newly executed block's receipts; a tx counts when its receipt is read."""
    while True:
        executed = (await client.status()).executed_height
        while height < executed:
            height += 1
            receipts = (await client.get_receipts(height)).receipts
            now = time.monotonic()
            for receipt in receipts:
                sent = sent_at.pop(receipt.tx_id, None)
                if sent is None:
                    continue
                result.committed += 1
                result.ok += receipt.status == "ok"
                result.latencies_ms.append((now - sent) * 1000)
                result.last_commit = now
            progress.update(task, completed=result.committed)
        await asyncio.sleep(0.02)


def run_bench(
    home: Path,
    *,
    txs: int,
    rate: float | None,
    accounts: int,
    batch: int,
    workload: str = "transfer",
) -> BenchResult:
    chosen = get_workload(workload)
    network = load_network(home)
    suite = get_suite(network.crypto)
    with (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            transient=False,
            console=_stderr_console(),
        ) as progress,
        Client(network.api) as client,
    ):
        genesis_hash = bytes.fromhex(client.status().genesis_hash)
        seeds = account_seeds(suite, genesis_hash, accounts)
        addresses = setup_accounts(client, network, seeds, progress)
        if chosen.setup is not None:
            admin = Account(client, KeySigner(load_key(network.keystore.path_for("admin"))))
            chosen.setup(admin, addresses, partial(_send_chunked, progress=progress))
        signed = presign(client, network, seeds, addresses, txs, progress, chosen)
        verify_per_s = measure_verify_rate(suite)
        result = asyncio.run(submit_and_watch(network.api, signed, batch, rate, progress))
        result.verify_per_s = verify_per_s
        return result


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)
