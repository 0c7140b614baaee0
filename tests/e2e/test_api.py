"""The REST API against a real node process: wire forms, bad input, proofs, fuzzing."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from e2e_support import RunningNode, Sender, admin_sender

from taihang.cli.network import init_network
from taihang.crypto import get_suite
from taihang.crypto.jmt import verify_state_proof
from taihang.crypto.proof_json import state_proof_from_json
from taihang.errors import InvalidProof
from taihang.node.config import load_config, save_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    network = init_network(tmp_path_factory.mktemp("api") / "net", nodes=1)
    home = network.nodes[0].home
    config = load_config(home / "config.toml")
    config.mempool.txs_max = 300  # small, so "mempool full" is reachable
    save_config(home / "config.toml", config)
    running = RunningNode(network)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def http(api_node: RunningNode) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_node.api, timeout=30) as client:
        yield client


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def submit(http: httpx.Client, raw: bytes) -> httpx.Response:
    return http.post("/api/v1/transactions", json={"tx": b64(raw)})


def expect_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code, body
    assert body["detail"]


def new_member(api_node: RunningNode, seed_byte: int) -> Sender:
    suite = get_suite(api_node.network.crypto)
    sender = Sender(api_node.network, suite.tagged_hash(b"api", bytes([seed_byte])))
    with api_node.client() as client:
        admin = admin_sender(api_node.network, client)
        tx_id = client.submit(admin.tx("members", "add", [sender.public_key, ["member"]]))
        client.wait_for_receipt(tx_id)
        tx_id = client.submit(admin.tx("asset", "issue", [sender.address, 1000]))
        client.wait_for_receipt(tx_id)
    return sender


def test_status_and_blocks_have_the_wire_forms(http: httpx.Client) -> None:
    status = http.get("/api/v1/status").json()
    assert status["height"] >= status["executed_height"] >= 0
    latest = http.get("/api/v1/blocks/latest").json()
    assert set(latest) >= {"id", "height", "parent_id", "header", "transactions"}
    by_id = http.get(f"/api/v1/blocks/{latest['id']}").json()
    assert by_id["height"] == latest["height"]
    page = http.get("/api/v1/blocks", params={"limit": 2}).json()
    assert len(page["blocks"]) <= 2
    if page["next_cursor"] is not None:
        older = http.get("/api/v1/blocks", params={"cursor": page["next_cursor"]}).json()
        assert older["blocks"][0]["height"] == page["next_cursor"]
    assert http.get("/healthz").json() == {"status": "ok"}


def test_status_reports_consensus(api_node: RunningNode, http: httpx.Client) -> None:
    """A one-node network: the node leads every round, has no peers, and keeps committing."""
    deadline = time.monotonic() + 10
    status = http.get("/api/v1/status").json()
    while status["last_commit_ms"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
        status = http.get("/api/v1/status").json()
    assert status["peers"] == []
    assert status["leader"] == status["validator"]
    assert isinstance(status["round"], int) and status["round"] >= 1
    assert abs(time.time() * 1000 - status["last_commit_ms"]) < 60_000
    with api_node.client() as client:
        parsed = client.status()
    assert parsed.peers == [] and parsed.leader == parsed.validator and parsed.round >= 1


def test_submit_and_wait_returns_receipt_with_events(
    api_node: RunningNode, http: httpx.Client
) -> None:
    sender = new_member(api_node, 1)
    recipient = new_member(api_node, 2)
    response = submit(http, sender.tx("asset", "transfer", [recipient.address, 7]))
    assert response.status_code == 202
    tx_id = response.json()["id"]
    answer = http.get(f"/api/v1/transactions/{tx_id}", params={"wait": "true"}).json()
    assert answer["status"] == "committed"
    receipt = answer["receipt"]
    assert receipt["status"] == "ok"
    assert receipt["events"][0]["name"] == "Transfer"
    assert receipt["events"][0]["data"]["amount"] == 7
    receipts = http.get(f"/api/v1/blocks/{answer['height']}/receipts").json()["receipts"]
    assert receipts[answer["index"]]["tx_id"] == tx_id


def test_bad_input_gets_codes(api_node: RunningNode, http: httpx.Client) -> None:
    sender = new_member(api_node, 3)
    suite = get_suite(api_node.network.crypto)
    stranger = Sender(api_node.network, suite.tagged_hash(b"api", b"stranger"))
    expect_problem(http.post("/api/v1/transactions", content=b"{not json"), 400, "malformed")
    expect_problem(http.post("/api/v1/transactions", json={"tx": "%%%"}), 400, "malformed")
    expect_problem(
        http.post("/api/v1/transactions", json={"tx": b64(b"\x92\x01")}), 400, "malformed"
    )
    good = sender.tx("asset", "transfer", [stranger.address, 1], nonce=0)
    tampered = bytearray(good)
    tampered[-1] ^= 1
    expect_problem(submit(http, bytes(tampered)), 400, "bad_signature")
    expect_problem(
        submit(
            http, sender.tx("asset", "transfer", [stranger.address, 1], nonce=0, channel="other")
        ),
        400,
        "unknown_channel",
    )
    expect_problem(
        submit(http, stranger.tx("asset", "transfer", [sender.address, 1])), 400, "unknown_sender"
    )
    expect_problem(
        submit(http, sender.tx("kv", "put", ["k", "x" * 70_000], nonce=0)), 400, "tx_too_large"
    )
    expect_problem(
        submit(http, sender.tx("asset", "transfer", [stranger.address, 1], nonce=0, expires=1)),
        400,
        "expired",
    )
    first = submit(http, sender.tx("asset", "transfer", [stranger.address, 1], nonce=0))
    assert first.status_code == 202
    http.get(f"/api/v1/transactions/{first.json()['id']}", params={"wait": "true"})
    expect_problem(
        submit(http, sender.tx("asset", "transfer", [stranger.address, 1], nonce=0)),
        400,
        "nonce_too_low",
    )
    expect_problem(
        submit(http, sender.tx("asset", "transfer", [stranger.address, 1], nonce=10_000)),
        400,
        "nonce_gap",
    )
    expect_problem(http.get("/api/v1/transactions/zz"), 400, "malformed")
    expect_problem(http.get(f"/api/v1/transactions/{'00' * 32}"), 404, "transaction_not_found")
    expect_problem(http.get("/api/v1/blocks/999999"), 404, "block_not_found")
    expect_problem(http.get("/api/v1/blocks/" + "9" * 40), 404, "block_not_found")
    expect_problem(http.get("/api/v1/blocks/²"), 400, "malformed")
    expect_problem(http.get("/api/v1/blocks/" + "9" * 40 + "/receipts"), 404, "block_not_found")
    expect_problem(http.get("/api/v1/blocks", params={"cursor": "abc"}), 400, "malformed")
    expect_problem(http.get("/api/v1/nothing-here"), 404, "not_found")
    expect_problem(
        http.post("/api/v1/query", json={"contract": "asset", "method": "nope"}), 422, "reverted"
    )
    expect_problem(
        http.post("/api/v1/query", json={"contract": "asset", "method": "balance", "args": [1.5]}),
        400,
        "malformed",
    )


def test_batch_answers_each_transaction_in_order(api_node: RunningNode, http: httpx.Client) -> None:
    sender = new_member(api_node, 4)
    good = sender.tx("kv", "put", ["a", 1])
    body = {"txs": [b64(good), "%%%", b64(good), b64(sender.tx("kv", "put", ["b", 2]))]}
    results = http.post("/api/v1/transactions/batch", json=body).json()["results"]
    assert "id" in results[0]
    assert results[1]["error"]["code"] == "malformed"
    assert results[2]["error"]["code"] == "duplicate"
    assert "id" in results[3]
    expect_problem(http.post("/api/v1/transactions/batch", json={"txs": "x"}), 400, "malformed")


def test_state_proof_verifies_with_crypto_alone(api_node: RunningNode, http: httpx.Client) -> None:
    sender = new_member(api_node, 5)
    answer = http.get(
        f"/api/v1/state/asset/balance/{sender.address}", params={"proof": "true"}
    ).json()
    assert answer["value"] == 1000
    root = bytes.fromhex(answer["state_root"])
    state_key = bytes.fromhex(answer["state_key"])
    value = bytes.fromhex(answer["value_bytes"])
    proof = state_proof_from_json(answer["proof"])
    verify_state_proof(root, state_key, value, proof)
    with pytest.raises(InvalidProof):
        verify_state_proof(root, state_key, value + b"\x00", proof)
    absent = http.get("/api/v1/state/asset/balance/" + "f" * 40, params={"proof": "true"}).json()
    assert absent["value"] is None
    verify_state_proof(
        bytes.fromhex(absent["state_root"]),
        bytes.fromhex(absent["state_key"]),
        None,
        state_proof_from_json(absent["proof"]),
    )


def test_fuzzed_submissions_never_crash_the_node(http: httpx.Client) -> None:
    rng = random.Random(1234)
    valid = msgspec.msgpack.encode([b"\x90" * 10, b"\x00" * 64])
    for _ in range(300):
        kind = rng.randrange(4)
        if kind == 0:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
            response = http.post("/api/v1/transactions", content=payload)
        elif kind == 1:
            mutated = bytearray(valid)
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            response = http.post("/api/v1/transactions", json={"tx": b64(bytes(mutated))})
        elif kind == 2:
            junk = rng.choice([None, 1, [], {}, "x", {"tx": 5}, {"txs": [1, None]}])
            response = http.post("/api/v1/transactions/batch", json=junk)
        else:
            blob = bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
            response = http.post("/api/v1/transactions/batch", json={"txs": [b64(blob)] * 3})
        assert response.status_code < 500, response.text
    assert http.get("/api/v1/status").status_code == 200


def test_second_start_on_a_locked_home_fails_clearly(api_node: RunningNode) -> None:
    from e2e_support import run_cli

    result = run_cli("node", "start", home=api_node.home, check=False, timeout=30)
    assert result.returncode != 0
    assert "locked" in result.stderr
    assert isinstance(api_node.home, Path)


# Last: it leaves the module's node with a full mempool.
def test_full_mempool_rejects_with_its_code(api_node: RunningNode, http: httpx.Client) -> None:
    senders = [new_member(api_node, 10 + i) for i in range(3)]
    # Future nonces wait in the pool (within the gap) without being taken into blocks.
    txs = [b64(s.tx("kv", "put", ["k", n], nonce=n + 1)) for s in senders for n in range(60)]
    txs += [b64(s.tx("kv", "put", ["k", n], nonce=n + 1)) for s in senders for n in range(60, 64)]
    extra = [new_member(api_node, 20 + i) for i in range(3)]
    txs += [b64(s.tx("kv", "put", ["k", n], nonce=n + 1)) for s in extra for n in range(64)]
    results = http.post("/api/v1/transactions/batch", json={"txs": txs}).json()["results"]
    codes = {r["error"]["code"] for r in results if "error" in r}
    assert "mempool_full" in codes, codes
