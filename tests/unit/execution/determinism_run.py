"""A fixed, contract-heavy scenario executed in-process; prints one JSON document.

Run it as a script (`python tests/unit/execution/determinism_run.py`) or call `run_scenario()`.
`test_determinism.py` runs it in processes with different `PYTHONHASHSEED`s and requires the
same output (spec: contracts.md, Determinism: "the same contracts and transactions executed in
two separate processes with different PYTHONHASHSEEDs give identical state roots, receipts and
gas").

The state is a real `StateTree` over `MemoryKV`, so the roots are the roots a node computes.
Genesis has four members in two orgs; the blocks deploy the token example and contracts that
lean on everything whose result could depend on the hash seed or on CPython's message text:
dicts with str, int and bytes keys built, mutated, iterated, sorted and stored (the canonical
encoding re-orders map keys), string building and splitting, events with dict data,
`ctx.crypto.hash`, cross-contract calls (a failing callee reverts the caller too), and a
catalogue of failures (revert, require, out of gas, limits, and Python errors reported by class
name). The transactions come from several senders in mixed order, some rejected (a wrong nonce,
a sender who is not a member, an expired transaction, another channel).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: find execution_keys beside this file
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from execution_keys import key_of, make_genesis

from taihang.codec import Value, encode
from taihang.crypto import get_suite
from taihang.execution import BlockContext, Executor, build_genesis_writes, execute_query
from taihang.ledger.genesis import MemberSpec
from taihang.ledger.transaction import (
    Transaction,
    compute_address,
)
from taihang.store.kv import MemoryKV
from taihang.store.state_tree import StateTree
from taihang.testing.ledger import sign_tx

SUITE = get_suite("ed25519")
CHANNEL = "main"
ALICE, BOB, CAROL, DAVE, EVE = 21, 22, 23, 24, 25  # Alice, Bob: org1; Carol, Dave: org2; Eve: none
GAS = 2_000_000
SPIN_GAS = 150_000  # the out-of-gas loops: enough to be real work, small enough to be quick
TOKEN = (Path(__file__).resolve().parents[3] / "examples" / "contracts" / "token.py").read_text()

GENESIS = make_genesis(
    CHANNEL,
    [
        MemberSpec(public_key=key_of(ALICE).hex(), org="org1", roles=["admin", "member"]),
        MemberSpec(public_key=key_of(BOB).hex(), org="org1", roles=["member"]),
        MemberSpec(public_key=key_of(CAROL).hex(), org="org2", roles=["member", "auditor"]),
        MemberSpec(public_key=key_of(DAVE).hex(), org="org2", roles=["member"]),
    ],
)

# Hash-order-sensitive work: dicts with str, int and bytes keys (and a bool that collides
# with the int 1), built, mutated while iterating snapshots, sorted, joined and stored.
MIXER = '''
"""Dicts, strings and lists in every order a hash seed could disturb."""
WORDS = ("pear", "fig", "apple", "kiwi", "plum", "date", "lime", "yuzu")


def build(n, seed):
    d = {}
    for i in range(n):
        d["k" + str((i * 7919 + seed) % 1000)] = i
        d[i * 31 - 500] = "v" + str(i)
        d[bytes([i % 256, (i * 3 + seed) % 256])] = [i, str(i), {"i": i}]
    d[1] = "one"
    d[True] = "true replaces one"
    return d


def second(pair):
    return pair[1]


@public
def churn(ctx, n, seed):
    d = build(n, seed)
    strs = []
    ints = []
    raw = []
    for k in d:
        if isinstance(k, str):
            strs.append(k)
        elif isinstance(k, bytes):
            raw.append(k)
        else:
            ints.append(k)
    for k in strs[::3]:
        d.pop(k)
    for k in d.keys():
        if isinstance(k, int) and k % 3 == 0:
            d[k] = d[k] + "!"
    d["late"] = len(d)
    squares = {i: i * i for i in range(n) if i % 2}
    rows = [[k, v] for k, v in squares.items()]
    rows.insert(0, [-1, -1])
    by_len = {}
    for w in WORDS:
        by_len.setdefault(len(w), []).append(w)
    order = ",".join([k for k in d if isinstance(k, str)])
    ranked = sorted([[w, len(w) * 10 + i % 3] for i, w in enumerate(WORDS)], key=second)
    text = " ".join(reversed(sorted(strs)))
    parts = text.split(" ")
    csv = "a,,b, c ,d".split(",")
    data = {
        "order": order,
        "sorted_ints": sorted(ints, reverse=True)[:10],
        "sorted_raw": [b.hex() for b in sorted(raw)[:5]],
        "by_len": by_len,
        "ranked": ranked,
        "rows": rows,
        "parts": len(parts),
        "csv": [p.strip() for p in csv],
        "upper": order[:20].upper().replace(",", ";"),
        "find": order.find("k" + str(seed % 1000)),
        "minmax": [min(ints), max(ints), sum(ints), abs(min(ints))],
        "zip": list(zip(WORDS, range(3))),
        "bits": [(seed << 5) | 3, seed & 255, seed ^ 4095, seed >> 2, -seed // 7, -seed % 7],
        "pow": 3 ** 40,
        "mixed": {"s": "x", 7: "int", b"b": "bytes", "nested": {"z": [1, {"y": 2}], "a": []}},
        "count": parts.count(parts[0]) if parts else 0,
        "index": list(WORDS).index("kiwi"),
        "any_all": [any([0, 0, 1]), all([1, 1, 0]), "fig" in WORDS, 999 in d, "late" in d],
        "true_key": d[1],
        "eq": [d == dict(list(d.items())[::-1]), list(d) == list(dict(list(d.items())[::-1]))],
        "collide": {-1: "a", -2: "b", 2 ** 61 - 2: "c", 0: "d", False: "e"},
        "comp": {k % 3: k for k in range(10)},
        "min_str": [min(strs), max(strs), min(ints)],
        "parsed": [int("-123"), int("ff", 16), str(-45), str(True), str(None)],
        "caller": [ctx.sender, ctx.org, list(ctx.roles), ctx.contract, ctx.channel],
        "height": ctx.height,
        "time": ctx.timestamp_ms,
        "tx": ctx.tx_id[:4].hex(),
    }
    raw_join = b""
    for b in raw:
        raw_join = raw_join + b
    digest = ctx.crypto.hash(raw_join + ctx.tx_id)
    data["digest"] = digest.hex()
    ctx.storage.set("last/" + str(seed), data)
    ctx.storage.set("dict/" + str(seed), d)
    ctx.emit("Churned", {"seed": seed, "n": n, "keys": len(d), 3: "int key", b"k": digest})
    return {"order": order[:40], "digest": digest, "keys": len(d)}


@public
def reread(ctx, seed):
    stored = ctx.storage.get("dict/" + str(seed), {})
    seen = []
    for k, v in stored.items():
        if isinstance(k, str):
            seen.append(k)
        elif isinstance(k, int):
            seen.append(str(k))
        else:
            seen.append(k.hex())
    summary = "|".join(seen)
    last = ctx.storage.get("last/" + str(seed), {})
    keys = [k for k in last]
    ctx.storage.set("seen/" + str(seed), {"summary": summary[:200], "keys": keys})
    ctx.emit("Reread", {"first": seen[:5], "keys": keys, "count": len(seen)})
    return [len(seen), keys[:3], summary[:60]]


@public
def tally(ctx, words):
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    pairs = [[w, c] for w, c in counts.items()]
    ctx.storage.set("tally", counts)
    ctx.emit("Tally", counts)
    return sorted(pairs, key=second, reverse=True)


@view
def last(ctx, seed):
    return ctx.storage.get("last/" + str(seed))


@view
def seen(ctx, seed):
    return ctx.storage.get("seen/" + str(seed))
'''

# Cross-contract calls: the token sees this contract's name as the sender.
ROUTER = """
@public
def init(ctx, label):
    ctx.storage.set("label", label)
    ctx.storage.set("calls", 0)


@public
def pay(ctx, to, amount):
    before = ctx.call("token", "balance_of", [ctx.contract])
    ctx.call("token", "transfer", [to, amount])
    ctx.storage.set("calls", ctx.storage.get("calls", 0) + 1)
    ctx.emit("Paid", {"to": to, "amount": amount, "before": before})
    return ctx.call("token", "balance_of", [to])


@public
def churn_via(ctx, n, seed):
    result = ctx.call("mixer", "churn", [n, seed])
    ctx.storage.set("via/" + str(seed), result)
    return result["keys"]


@public
def pay_then_fail(ctx, to, amount):
    ctx.call("token", "transfer", [to, amount])
    ctx.storage.set("calls", 999)
    revert("router gave up after paying " + str(amount))


@public
def bounce(ctx, depth):
    if depth == 0:
        return ctx.sender
    return ctx.call(ctx.contract, "bounce", [depth - 1])


@view
def info(ctx):
    return {"label": ctx.storage.get("label"), "calls": ctx.storage.get("calls")}
"""

# Every way a contract can fail; each failure reverts the transaction's writes.
FAILS = """
@public
def init(ctx):
    ctx.storage.set("ready", True)


@public
def mark(ctx, key):
    ctx.storage.set(key, ctx.height)
    return key


@public
def revert_with(ctx, n):
    ctx.storage.set("dirty", n)
    ctx.emit("Before", n)
    revert("custom failure " + str(n))


@public
def require_big(ctx, n):
    require(n > 10, "n must exceed 10")
    return n


@public
def spin(ctx):
    ctx.storage.set("spinning", True)
    n = 0
    while True:
        n += 1


@public
def key_error(ctx):
    d = {"a": 1}
    return d["missing"]


@public
def index_error(ctx):
    return [1, 2, 3][7]


@public
def zero_division(ctx, n):
    return n // (n - n)


@public
def type_error_add(ctx):
    return "a" + 1


@public
def type_error_sort(ctx):
    return sorted([3, "b", b"c", None])


@public
def mixed_sort(ctx):
    return sorted({"a": 1, 2: 3, b"c": 4})


@public
def mixed_min(ctx):
    return min([1, "a"])


@public
def reversed_dict(ctx):
    return reversed({"a": 1})


@public
def value_error(ctx):
    return int("twelve")


@public
def attribute_error(ctx):
    return "text".encode()


@public
def name_error(ctx):
    return undefined_thing + 1


@public
def percent(ctx):
    return "%s and %d" % ("a", 1)


@public
def big_key(ctx):
    d = {}
    d[2 ** 62] = 1
    return d


@public
def bad_storage_key(ctx):
    ctx.storage.set(7, "x")


@public
def huge_string(ctx):
    return "x" * 10 ** 9


@public
def huge_list(ctx):
    return [0] * 10 ** 7


@public
def huge_int(ctx):
    return 7 ** 100000


@public
def deep(ctx, n):
    return deep(ctx, n + 1)


@public
def deep_call(ctx, n):
    return ctx.call(ctx.contract, "deep_call", [n + 1])


@public
def nested_value(ctx):
    v = []
    for i in range(200):
        v = [v]
    ctx.storage.set("nest", v)


@public
def floor_div(ctx):
    return [-7 // 2, -7 % 2, 7 // -2, 7 % -2, 2 ** 511 // 3, -(2 ** 100) % 7]


@view
def peek(ctx, key):
    return ctx.storage.get(key)
"""

BAD_INIT = """
@public
def init(ctx, n):
    ctx.storage.set("n", n)
    require(n > 0, "init needs a positive n")
"""

REJECTED_AT_COMPILE = """
import os

@public
def run(ctx):
    return os.getcwd()
"""


@dataclass
class Scenario:
    """Builds signed transactions with tracked nonces and runs blocks on a real state tree."""

    kv: MemoryKV = field(default_factory=MemoryKV)
    nonces: dict[int, int] = field(default_factory=dict)
    blocks: list[dict[str, Any]] = field(default_factory=list)
    height: int = 0

    def __post_init__(self) -> None:
        self.tree = StateTree(self.kv, hash_fn=SUITE.hash)
        self.genesis_root = self.tree.apply_writes(build_genesis_writes(GENESIS), sync=False)
        self.executor = Executor(SUITE)

    def tx(
        self,
        who: int,
        contract: str,
        method: str,
        *args: Value,
        gas_limit: int = GAS,
        nonce: int | None = None,
        expires: int = 1_000,
        channel: str = CHANNEL,
    ) -> Transaction:
        """A signed transaction; the sender's nonce advances unless `nonce` is given."""
        if nonce is None:
            nonce = self.nonces.get(who, 0)
            self.nonces[who] = nonce + 1
        return sign_tx(
            who,
            nonce,
            contract,
            method,
            list(args),
            channel=channel,
            gas_limit=gas_limit,
            expires_at_height=expires,
        )

    def block(self, txs: list[Transaction]) -> None:
        self.height += 1
        context = BlockContext(channel=CHANNEL, height=self.height, timestamp_ms=self.height * 997)
        result = self.executor.execute_block(self.tree, context, txs)
        root, puts = self.tree.compute_update(result.writes)
        self.kv.write(puts, sync=False)
        self.tree.commit_update(root)
        self.blocks.append(
            {
                "height": self.height,
                "state_root": root.hex(),
                "writes": len(result.writes),
                "nonces": {k: result.nonces[k] for k in sorted(result.nonces)},
                "receipts": [
                    {
                        "status": r.status,
                        "gas_used": r.gas_used,
                        "error": r.error_message,
                        "encoded": encode(r).hex(),
                    }
                    for r in result.receipts
                ],
            }
        )

    def query(self, contract: str, method: str, *args: Value) -> Value:
        return execute_query(self.executor, self.tree, contract, method, list(args))


def addr(who: int) -> str:
    return compute_address(SUITE, key_of(who))


def _deploys(s: Scenario) -> None:
    s.block(
        [
            s.tx(ALICE, "contracts", "deploy", "token", TOKEN, "1.0", [1_000_000]),
            s.tx(BOB, "contracts", "deploy", "mixer", MIXER, "1.0", []),
            s.tx(CAROL, "contracts", "deploy", "router", ROUTER, "1.0", ["org2 router"]),
            s.tx(DAVE, "contracts", "deploy", "fails", FAILS, "1.0", []),
            s.tx(DAVE, "contracts", "deploy", "badinit", BAD_INIT, "1.0", [0]),
            s.tx(BOB, "contracts", "deploy", "nocompile", REJECTED_AT_COMPILE, "1.0", []),
            s.tx(CAROL, "contracts", "deploy", "token", TOKEN, "2.0", [5]),  # name taken
        ]
    )


def _funding(s: Scenario) -> None:
    people = [BOB, CAROL, DAVE]
    txs = [s.tx(ALICE, "token", "transfer", addr(p), 50_000 + 1_000 * p) for p in people]
    txs.append(s.tx(ALICE, "token", "transfer", "router", 20_000))
    txs.append(s.tx(BOB, "mixer", "churn", 40, 3))
    txs.append(s.tx(EVE, "token", "transfer", addr(BOB), 1))  # not a member
    txs.append(s.tx(CAROL, "mixer", "churn", 25, 977))
    s.block(txs)


def _failures(s: Scenario) -> None:
    methods: list[tuple[str, list[Value]]] = [
        ("revert_with", [7]),
        ("require_big", [3]),
        ("require_big", [30]),
        ("key_error", []),
        ("index_error", []),
        ("zero_division", [5]),
        ("type_error_add", []),
        ("type_error_sort", []),
        ("mixed_sort", []),
        ("mixed_min", []),
        ("reversed_dict", []),
        ("value_error", []),
        ("attribute_error", []),
        ("name_error", []),
        ("percent", []),
        ("big_key", []),
        ("bad_storage_key", []),
        ("huge_string", []),
        ("huge_list", []),
        ("huge_int", []),
        ("deep", [0]),
        ("deep_call", [0]),
        ("nested_value", []),
        ("floor_div", []),
        ("no_such_method", []),
        ("init", []),
        ("require_big", [1, 2]),  # wrong argument count
    ]
    senders = [BOB, CAROL, DAVE, ALICE]
    txs = [
        s.tx(senders[i % len(senders)], "fails", method, *args)
        for i, (method, args) in enumerate(methods)
    ]
    txs.append(s.tx(CAROL, "fails", "spin", gas_limit=SPIN_GAS))
    txs.append(s.tx(BOB, "token", "transfer", addr(DAVE), 5, gas_limit=1_500))  # out of gas
    txs.append(s.tx(DAVE, "nobody", "anything"))  # no such contract
    s.block(txs[: len(txs) // 2])
    s.block(txs[len(txs) // 2 :])


Call = tuple[int, str, str, list[Value], int]  # sender, contract, method, args, gas limit


def _mixed_blocks(s: Scenario) -> None:
    people = [ALICE, BOB, CAROL, DAVE]
    words = ["fig", "pear", "fig", "kiwi", "yuzu", "pear", "fig", "lime", "date", "kiwi"]
    for round_ in range(7):
        calls: list[Call] = []
        for i, who in enumerate(people):
            to = addr(people[(i + round_ + 1) % len(people)])
            calls.append((who, "token", "transfer", [to, 100 + 37 * round_ + i], GAS))
        seed = 11 * round_
        calls += [
            (people[round_ % 4], "mixer", "churn", [20 + 3 * round_, seed], GAS),
            (people[(round_ + 2) % 4], "router", "pay", [addr(people[round_ % 4]), 9], GAS),
            (people[(round_ + 3) % 4], "mixer", "tally", [words[round_:] + words], GAS),
        ]
        if round_ % 2 == 0:
            calls += [
                (BOB, "router", "churn_via", [15 + round_, 500 + round_], GAS),
                (CAROL, "router", "pay_then_fail", [addr(ALICE), 5], GAS),
                (DAVE, "router", "bounce", [3 + round_], GAS),
                (ALICE, "fails", "spin", [], SPIN_GAS // 3),
            ]
        else:
            calls += [
                (ALICE, "token", "transfer", [addr(BOB), 10**9], GAS),  # insufficient
                (DAVE, "fails", "mark", ["round/" + str(round_)], GAS),
                (CAROL, "router", "bounce", [70], GAS),  # past the call depth limit
            ]
        # A different interleaving of the senders in every block; each sender's own
        # transactions keep their order (their nonces are assigned in this order).
        rotate = round_ % len(calls)
        calls = calls[rotate:] + calls[:rotate]
        reader = people[(round_ + 1) % 4]
        reread = s.tx(reader, "mixer", "reread", seed)  # before the reader's other calls
        txs = [s.tx(who, c, m, *args, gas_limit=g) for who, c, m, args, g in calls]
        first = next(i for i, call in enumerate(calls) if call[0] == reader)
        txs.insert(min(round_ % 5, first), reread)
        # Rejected: a nonce from the future, one from the past, a non-member; once, an
        # expired transaction and one for another channel (neither consumes its nonce).
        txs.append(s.tx(BOB, "token", "transfer", addr(ALICE), 1, nonce=s.nonces[BOB] + 5))
        txs.insert(2, s.tx(CAROL, "token", "transfer", addr(ALICE), 1, nonce=0))
        txs.insert(round_ % 3, s.tx(EVE, "mixer", "churn", 5, 5, nonce=round_))
        if round_ == 3:
            txs.append(s.tx(DAVE, "token", "transfer", addr(ALICE), 1, nonce=s.nonces[DAVE] + 1))
            txs.append(s.tx(ALICE, "token", "transfer", addr(DAVE), 1, expires=1))
            s.nonces[ALICE] -= 1
            txs.append(s.tx(BOB, "token", "transfer", addr(DAVE), 1, channel="other"))
            s.nonces[BOB] -= 1
        s.block(txs)
        if round_ == 4:
            s.block([])  # an empty block leaves the root as it was


def run_scenario() -> dict[str, Any]:
    """Execute the scenario from genesis; the JSON-ready result (see the module docstring)."""
    s = Scenario()
    _deploys(s)
    _funding(s)
    _failures(s)
    _mixed_blocks(s)
    holders = [addr(p) for p in (ALICE, BOB, CAROL, DAVE)] + ["router"]
    balances = [s.query("token", "balance_of", h) for h in holders]
    queries = {
        "balances": balances,
        "contracts": s.query("contracts", "list"),
        "mixer_last_0": s.query("mixer", "last", 0),
        "mixer_seen_33": s.query("mixer", "seen", 33),
        "router_info": s.query("router", "info"),
        "fails_dirty": s.query("fails", "peek", "dirty"),
        "fails_round": s.query("fails", "peek", "round/5"),
    }
    return {
        "genesis_root": s.genesis_root.hex(),
        "final_root": s.tree.root.hex(),
        "blocks": s.blocks,
        "queries": _jsonable(queries),
    }


def _jsonable(value: Value) -> Any:
    """Queries' values for JSON: bytes as hex, map keys as tagged strings, in their order."""
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return [[_jsonable(k), _jsonable(v)] for k, v in value.items()]
    return value


def render(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=1)


def main() -> None:
    print(render(run_scenario()))


if __name__ == "__main__":
    main()
