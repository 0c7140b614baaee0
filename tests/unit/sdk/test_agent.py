"""The key agent process: unlock, sign without the password, list, TTL expiry, lock."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from taihang.crypto import get_suite
from taihang.errors import TransientError
from taihang.sdk import agent
from taihang.sdk.agent import AgentError, AgentSigner
from taihang.sdk.keys import KeyStore, ScryptParams

FAST = ScryptParams(n=2**10, r=8, p=1)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys", scrypt=FAST)


def test_agent_signs_for_an_unlocked_key(store: KeyStore) -> None:
    key = store.new("alice", "pw")
    path = agent.socket_path_for(store.directory)
    agent.unlock(path, key, ttl_s=30)
    try:
        assert (path.stat().st_mode & 0o777) == 0o600
        signer = AgentSigner(path, "alice")
        assert signer.address == key.address
        signature = signer.sign(b"message")
        assert get_suite("ed25519").verify(key.public_key, b"message", signature)
        second = store.new("bob", "pw")
        agent.unlock(path, second, ttl_s=30)  # the running agent takes a second key
        assert [k["name"] for k in agent.list_unlocked(path)] == ["alice", "bob"]
    finally:
        assert agent.lock(path)
    assert agent.list_unlocked(path) == []
    with pytest.raises(TransientError):
        agent.request(path, {"op": "list"})


def test_agent_forgets_keys_after_their_ttl(store: KeyStore) -> None:
    key = store.new("carol", "pw")
    path = agent.socket_path_for(store.directory)
    agent.unlock(path, key, ttl_s=1)
    deadline = time.monotonic() + 10
    while agent.list_unlocked(path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert agent.list_unlocked(path) == []
    with pytest.raises(AgentError, match="not unlocked"):
        AgentSigner(path, "carol")


def test_agent_refuses_unknown_keys_and_ops(store: KeyStore) -> None:
    key = store.new("dave", "pw")
    path = agent.socket_path_for(store.directory)
    agent.unlock(path, key, ttl_s=30)
    try:
        with pytest.raises(AgentError, match="not unlocked"):
            agent.request(path, {"op": "sign", "name": "zed", "message": "00"})
        with pytest.raises(AgentError, match="unknown op"):
            agent.request(path, {"op": "dump"})
        with pytest.raises(AgentError, match="bad request"):
            agent.request(path, {"op": "sign", "name": "dave", "message": "zz"})
    finally:
        agent.lock(path)
