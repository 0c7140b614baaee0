"""Benchmark of the state tree on RocksDB with synced batches (ADR 0003 reports its numbers).

    .venv/bin/python tests/bench/bench_state_tree.py [--accounts 50000] [--blocks 30]

Workload: a state of `2 * accounts` keys (a nonce and a balance per account), then blocks of
`transfers` transfers; each writes the sender's nonce and balance and the recipient's balance
(a tenth of recipients are new accounts, so the state grows). Per block it times
`compute_update` and the synced write of its puts, then point reads through `get`, and proofs.
Not a pass/fail test; pytest does not collect it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from taihang.crypto.jmt import verify_state_proof
from taihang.store.kv import RocksKV
from taihang.store.state_tree import CACHE_DEPTH_DEFAULT, StateTree


def _nonce_key(account: int) -> bytes:
    return b"accounts/nonce/" + account.to_bytes(20, "big")


def _balance_key(account: int) -> bytes:
    return b"asset/balance/" + account.to_bytes(20, "big")


def _read_write_bytes() -> int | None:
    """Bytes this process sent to the block layer (WAL, flushes, compaction), Linux only."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _load_genesis(tree: StateTree, kv: RocksKV, accounts: int) -> float:
    started = time.perf_counter()
    chunk = 20_000
    for first in range(0, accounts, chunk):
        writes: dict[bytes, bytes | None] = {}
        for account in range(first, min(first + chunk, accounts)):
            writes[_nonce_key(account)] = (0).to_bytes(8, "big")
            writes[_balance_key(account)] = (1_000_000).to_bytes(8, "big")
        tree.apply_writes(writes, sync=True)
    return time.perf_counter() - started


def _block_writes(rng: random.Random, accounts: list[int], transfers: int) -> dict[bytes, bytes]:
    writes: dict[bytes, bytes] = {}
    for _ in range(transfers):
        sender = rng.choice(accounts)
        if rng.random() < 0.1:
            recipient = len(accounts)
            accounts.append(recipient)
        else:
            recipient = rng.choice(accounts)
        writes[_nonce_key(sender)] = rng.randrange(1 << 32).to_bytes(8, "big")
        writes[_balance_key(sender)] = rng.randrange(1 << 48).to_bytes(8, "big")
        writes[_balance_key(recipient)] = rng.randrange(1 << 48).to_bytes(8, "big")
    return writes


def _run_blocks(tree: StateTree, kv: RocksKV, args: argparse.Namespace) -> None:
    rng = random.Random(7)
    accounts = list(range(args.accounts))
    compute_s, write_s, keys, logical_bytes = [], [], 0, 0
    disk_before = _read_write_bytes()
    for _ in range(args.blocks):
        writes = _block_writes(rng, accounts, args.transfers)
        started = time.perf_counter()
        new_root, puts = tree.compute_update(writes)
        computed = time.perf_counter()
        kv.write(puts, sync=True)
        written = time.perf_counter()
        tree.commit_update(new_root)
        compute_s.append(computed - started)
        write_s.append(written - computed)
        keys += len(writes)
        logical_bytes += sum(len(k) + len(v or b"") for k, v in puts.items())
    disk_after = _read_write_bytes()
    total_s = sum(compute_s) + sum(write_s)
    print(
        f"blocks: {args.blocks} x ~{keys // args.blocks} keys; state now {2 * len(accounts)} keys"
    )
    print(f"  compute_update    median {statistics.median(compute_s) * 1e3:7.1f} ms/block")
    print(f"  synced write      median {statistics.median(write_s) * 1e3:7.1f} ms/block")
    print(f"  keys/s (compute + synced write): {keys / total_s:,.0f}")
    print(f"  keys/s (compute_update alone):   {keys / sum(compute_s):,.0f}")
    print(f"  batch bytes per written key:     {logical_bytes / keys:,.0f}")
    if disk_before is not None and disk_after is not None:
        print(f"  disk bytes per written key:      {(disk_after - disk_before) / keys:,.0f}")


def _run_reads(tree: StateTree, args: argparse.Namespace) -> None:
    rng = random.Random(11)
    keys = [_balance_key(rng.randrange(args.accounts)) for _ in range(args.reads)]
    started = time.perf_counter()
    for key in keys:
        tree.get(key)
    elapsed = time.perf_counter() - started
    print(f"point reads (get): {args.reads / elapsed:,.0f}/s")
    sample = keys[:2_000]
    started = time.perf_counter()
    proofs = [(key, *tree.prove(key)) for key in sample]
    proved = time.perf_counter()
    for key, value, proof in proofs:
        verify_state_proof(tree.root, key, value, proof)
    verified = time.perf_counter()
    print(f"proofs: {len(sample) / (proved - started):,.0f} built/s, ", end="")
    print(f"{len(sample) / (verified - proved):,.0f} verified/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=50_000, help="state keys = 2 x accounts")
    parser.add_argument("--transfers", type=int, default=1_000, help="transfers per block")
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--reads", type=int, default=100_000)
    parser.add_argument("--cache-depth", type=int, default=CACHE_DEPTH_DEFAULT)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        kv = RocksKV(Path(directory) / "db")
        tree = StateTree(kv, cache_depth=args.cache_depth)
        genesis_s = _load_genesis(tree, kv, args.accounts)
        print(f"genesis: {2 * args.accounts} keys in {genesis_s:.1f} s")
        _run_blocks(tree, kv, args)
        _run_reads(tree, args)
        kv.close()


if __name__ == "__main__":
    main()
