"""Run one entry of the contract attack catalogue on a real executor, in this process.

Usage: `python tests/attacks/run_attack.py ATTACK_ID`. The process first caps its own address
space (`MEMORY_LIMIT_BYTES`; only the imports come before), then builds a chain in memory from
a real genesis, deploys the entry's contracts through the `contracts` system contract with
really signed transactions, runs each of the entry's calls as a transaction of its own block,
and finally runs a canary transaction (a token transfer) to show that the chain keeps
committing. It prints one JSON line (see `run_entry`) and exits 0.

Anything that escapes `Executor.execute_block` (MemoryError, RecursionError, AssertionError,
a crash) is left to kill the process with a non-zero exit: on a node, that is the executor's
safety net tripping and the node halting, which no catalogue entry may cause.

Two ids are not catalogue entries but check that the nets are real:
`self-test-memory` allocates past the memory limit outside the sandbox and `self-test-hang`
never finishes.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from taihang.codec import Value
from taihang.crypto import get_suite
from taihang.execution import BlockContext, Executor, build_genesis_writes
from taihang.ledger.genesis import MemberSpec
from taihang.ledger.receipt import Receipt
from taihang.testing.ledger import DictState, sign_tx

HERE = Path(__file__).resolve().parent
for extra in (HERE, HERE.parent / "unit" / "execution"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from catalogue import CANARY, CANARY_SOURCE, GAS_MAX, TARGET, Attack, find_attack  # noqa: E402
from execution_keys import addr, key_of, make_genesis  # noqa: E402

MEMORY_LIMIT_BYTES = 1 << 30  # the executor worker's address-space limit in this harness
SUITE = get_suite("ed25519")
CHANNEL = "main"
DEPLOYER, CALLER = 21, 22  # both members: the deployer in org1, the caller in org2
EXPIRY = 10_000
CANARY_SUPPLY = 1_000


def genesis_writes() -> dict[bytes, bytes]:
    genesis = make_genesis(
        CHANNEL,
        [
            MemberSpec(public_key=key_of(DEPLOYER).hex(), org="org1", roles=["admin", "member"]),
            MemberSpec(public_key=key_of(CALLER).hex(), org="org2", roles=["member"]),
        ],
    )
    return dict(build_genesis_writes(genesis))


class Chain(DictState):
    """A dict-backed state advanced one block per transaction, with nonces tracked."""

    def __init__(self) -> None:
        super().__init__(genesis_writes())
        self.nonces: dict[int, int] = {}
        self.height = 1
        self.executor = Executor(SUITE)

    def send(
        self, who: int, contract: str, method: str, args: list[Value], gas_limit: int
    ) -> Receipt:
        nonce = self.nonces.get(who, 0)
        tx = sign_tx(
            who,
            nonce,
            contract,
            method,
            args,
            channel=CHANNEL,
            gas_limit=gas_limit,
            expires_at_height=EXPIRY,
        )
        block = BlockContext(channel=CHANNEL, height=self.height, timestamp_ms=self.height * 1000)
        result = self.executor.execute_block(self, block, [tx])
        self.apply(result.writes)
        self.nonces[who] = nonce + 1
        self.height += 1
        receipt = result.receipts[0]
        assert receipt.status != "rejected", receipt.error_message  # the harness's own bug
        return receipt

    def state_digest(self) -> str:
        digest = hashlib.sha256()
        for key in sorted(self.data):
            digest.update(len(key).to_bytes(4, "big") + key)
            digest.update(len(self.data[key]).to_bytes(4, "big") + self.data[key])
        return digest.hexdigest()


def describe(receipt: Receipt, seconds: float) -> dict[str, Any]:
    """A receipt as JSON: the return value as a Python literal (it may hold bytes)."""
    return {
        "status": receipt.status,
        "error": receipt.error_message,
        "gas_used": receipt.gas_used,
        "return": repr(receipt.decoded_return_value()),
        "events": [event.name for event in receipt.events],
        "seconds": round(seconds, 4),
    }


def timed_send(
    chain: Chain, who: int, contract: str, method: str, args: list[Value], gas_limit: int
) -> dict[str, Any]:
    start = time.perf_counter()
    receipt = chain.send(who, contract, method, args, gas_limit)
    return describe(receipt, time.perf_counter() - start)


def run_entry(attack: Attack) -> dict[str, Any]:
    """Deploy and call `attack` on a fresh chain; the result printed as the JSON line.

    Keys: `deploys` (receipts of the helper contracts, then of the target), `calls` (one
    receipt per call), `canary` (a token transfer after the attack), `state` (a digest of the
    final state), `signer`/`deployer` (the addresses that signed calls and deploys),
    `max_rss_kib` (peak resident memory). Times and memory vary; everything else must not.
    """
    chain = Chain()
    deploy_gas = GAS_MAX  # deploys are not the attack; the compiler charges by source size
    canary = [CANARY, CANARY_SOURCE, "1", [CANARY_SUPPLY]]
    deploys = [timed_send(chain, DEPLOYER, "contracts", "deploy", canary, deploy_gas)]
    for name, source, init_args in attack.helpers:
        helper = [name, source, "1", list(init_args)]
        deploys.append(timed_send(chain, DEPLOYER, "contracts", "deploy", helper, deploy_gas))
    target = [TARGET, attack.source, "1", list(attack.init_args)]
    deploys.append(timed_send(chain, DEPLOYER, "contracts", "deploy", target, deploy_gas))
    signer = DEPLOYER if attack.signer == "deployer" else CALLER
    calls = [
        timed_send(chain, signer, attack.contract or TARGET, method, list(args), attack.gas_limit)
        for method, args in attack.calls
    ]
    after = timed_send(chain, DEPLOYER, CANARY, "transfer", [addr(CALLER), 1], 1_000_000)
    return {
        "id": attack.id,
        "deploys": deploys,
        "calls": calls,
        "canary": after,
        "state": chain.state_digest(),
        "signer": addr(signer),
        "deployer": addr(DEPLOYER),
        "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main(argv: list[str]) -> int:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    if len(argv) != 2:
        print("usage: run_attack.py ATTACK_ID", file=sys.stderr)
        return 2
    name = argv[1]
    if name == "self-test-memory":  # plain Python, no sandbox: must die at the memory limit
        hog = bytearray(2 * MEMORY_LIMIT_BYTES)
        print(len(hog))
        return 0
    if name == "self-test-hang":  # must be killed by the watchdog
        while True:
            time.sleep(1)
    print(json.dumps(run_entry(find_attack(name)), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
