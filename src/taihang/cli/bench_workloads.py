"""What `taihang bench --workload W` sends: the built-in transfer, or Python contract calls.

- `transfer`: `asset.transfer(recipient, 1)`, the built-in (no contract code).
- `contract-transfer`: `bench_token.transfer(recipient, 1)`, a Python token contract (the
  spec's token with an owner-only `mint` for funding), deployed once per network.
- `storage-heavy`: `bench_store.churn(slot)`, a Python contract doing 50 storage operations
  per call (25 reads and 25 writes of counters in the sender's own slot range).

Set-up (deploys, funding) happens before measuring and is skipped when already done, so
repeated runs against one network reuse it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taihang.errors import TaihangError
from taihang.sdk.account import Account, Call

BENCH_TOKEN = "bench_token"
BENCH_STORE = "bench_store"
TOKEN_FUNDING = 10**12
STORAGE_OPS_PER_CALL = 50

BENCH_TOKEN_SOURCE = '''"""The benchmark's token: the spec's transfers; the deployer mints."""


@public
def init(ctx):
    ctx.storage.set("owner", ctx.sender)


@public
def mint(ctx, to, amount):
    require(ctx.sender == ctx.storage.get("owner"), "only the owner mints")
    ctx.storage.set("balance/" + to, ctx.storage.get("balance/" + to, 0) + amount)


@public
def transfer(ctx, to, amount):
    require(amount > 0, "amount must be positive")
    sender_key = "balance/" + ctx.sender
    balance = ctx.storage.get(sender_key, 0)
    require(balance >= amount, "insufficient balance")
    ctx.storage.set(sender_key, balance - amount)
    ctx.storage.set("balance/" + to, ctx.storage.get("balance/" + to, 0) + amount)
    ctx.emit("Transfer", {"from": ctx.sender, "to": to, "amount": amount})


@view
def balance_of(ctx, owner):
    return ctx.storage.get("balance/" + owner, 0)
'''

BENCH_STORE_SOURCE = '''"""The benchmark's storage-heavy contract: 50 storage operations a call."""


@public
def churn(ctx, slot):
    base = "counter/" + ctx.sender + "/"
    for i in range(25):
        key = base + str((slot + i) % 100)
        ctx.storage.set(key, ctx.storage.get(key, 0) + 1)
'''

CallFor = Callable[[int, int, str], tuple[str, str, list[Any]]]  # (tx index, sender, recipient)
Setup = Callable[[Account, list[str], "SendCalls"], None]
SendCalls = Callable[[Account, list[Call], str], None]  # (sender, calls, progress label)


@dataclass(frozen=True)
class Workload:
    name: str
    call_for: CallFor
    gas_limit: int  # a few times what a call uses: blocks hold BLOCK_GAS_LIMIT / gas_limit calls
    setup: Setup | None = None


def _deploy_once(admin: Account, name: str, source: str, send: SendCalls) -> bool:
    """Deploy `name` unless it exists; True when it was deployed now."""
    if admin.client.query("contracts", "get", [name]) is not None:
        return False
    send(admin, [("contracts", "deploy", [name, source, "1", []])], f"deploying {name}")
    return True


def _setup_token(admin: Account, addresses: list[str], send: SendCalls) -> None:
    _deploy_once(admin, BENCH_TOKEN, BENCH_TOKEN_SOURCE, send)
    unfunded = [a for a in addresses if not admin.client.query(BENCH_TOKEN, "balance_of", [a])]
    calls: list[Call] = [(BENCH_TOKEN, "mint", [a, TOKEN_FUNDING]) for a in unfunded]
    send(admin, calls, "minting bench_token")


def _setup_store(admin: Account, addresses: list[str], send: SendCalls) -> None:
    _deploy_once(admin, BENCH_STORE, BENCH_STORE_SOURCE, send)


WORKLOADS: dict[str, Workload] = {
    "transfer": Workload(
        "transfer",
        lambda i, sender, to: ("asset", "transfer", [to, 1]),
        gas_limit=20_000,  # uses about 3,000
    ),
    "contract-transfer": Workload(
        "contract-transfer",
        lambda i, sender, to: (BENCH_TOKEN, "transfer", [to, 1]),
        gas_limit=20_000,  # uses about 4,300
        setup=_setup_token,
    ),
    "storage-heavy": Workload(
        "storage-heavy",
        lambda i, sender, to: (BENCH_STORE, "churn", [i % 100]),
        gas_limit=100_000,  # uses about 21,000
        setup=_setup_store,
    ),
}


def get_workload(name: str) -> Workload:
    workload = WORKLOADS.get(name)
    if workload is None:
        raise TaihangError(f"unknown workload {name!r}; choose one of {', '.join(WORKLOADS)}")
    return workload
