"""SDK result models: answers of older nodes still parse."""

from __future__ import annotations

import msgspec

from taihang.sdk.models import Status

OLDER_STATUS = {
    "node": "node1",
    "channel": "default",
    "crypto": "ed25519",
    "genesis_hash": "00" * 32,
    "validator": "a1" * 20,
    "height": 7,
    "executed_height": 4,
    "mempool_size": 0,
    "version": "0.1.0",
    "uptime_ms": 1000,
}


def test_status_parses_an_answer_without_consensus_fields() -> None:
    status = msgspec.json.decode(msgspec.json.encode(OLDER_STATUS), type=Status)
    assert (status.round, status.leader, status.peers, status.last_commit_ms) == (0, None, [], None)


def test_status_parses_consensus_fields() -> None:
    answer = {
        **OLDER_STATUS,
        "round": 9,
        "leader": "b2" * 20,
        "peers": ["node2", "node3"],
        "last_commit_ms": 1_764_000_000_000,
    }
    status = msgspec.json.decode(msgspec.json.encode(answer), type=Status)
    assert status.round == 9 and status.leader == "b2" * 20
    assert status.peers == ["node2", "node3"] and status.last_commit_ms == 1_764_000_000_000
