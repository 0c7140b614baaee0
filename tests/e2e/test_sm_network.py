"""A network created with `--crypto sm`: SM2 keys and signatures, SM3 everywhere, SM4 keys."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from e2e_support import run_cli

from taihang.crypto.hashing import get_hash
from taihang.crypto.jmt import verify_state_proof
from taihang.crypto.proof_json import state_proof_from_json
from taihang.errors import InvalidInput
from taihang.sdk.account import Account
from taihang.sdk.client import Client
from taihang.sdk.signer import KeySigner

pytestmark = pytest.mark.e2e


def test_sm_network_end_to_end(tmp_path: Path) -> None:
    home = tmp_path / "net"
    env = {"TAIHANG_KEY_PASSWORD": "correct-horse"}
    try:
        run_cli("up", "--detach", "--nodes", "1", "--crypto", "sm", home=home)
        genesis = json.loads((home / "genesis.json").read_text())
        assert genesis["crypto"] == "sm"
        run_cli("key", "new", "alice", home=home, env=env)
        alice_file = json.loads((home / "keys" / "alice.json").read_text())
        assert alice_file["suite"] == "sm" and alice_file["crypto"]["cipher"].startswith("sm4")
        run_cli("member", "add", "alice", home=home, env=env)
        run_cli("tx", "send", "asset", "transfer", "--to", "alice", "--amount", "10", home=home)
        balance = run_cli("query", "asset", "balance", "alice", home=home)
        assert balance.stdout.strip() == "10"
        api = json.loads(run_cli("status", "--json", home=home).stdout)["nodes"][0]["api"]
        with Client(api) as client:
            assert client.status().crypto == "sm"
            block = client.get_block("latest")
            signature = block.header["qc"]["signatures"][0]
            assert 70 <= len(bytes.fromhex(signature)) <= 72  # a DER SM2 signature
            address = alice_file["address"]
            read = client.get_state("asset", f"balance/{address}", proof=True)
            assert read.hash == "sm3" and read.proof is not None and read.value_bytes
            verify_state_proof(
                bytes.fromhex(read.state_root),
                bytes.fromhex(read.state_key),
                bytes.fromhex(read.value_bytes),
                state_proof_from_json(read.proof),
                get_hash(read.hash),
            )
            ed_key = KeySigner.from_seed(os.urandom(32), "ed25519")
            with pytest.raises(InvalidInput, match="ed25519 key") as refused:
                Account(client, ed_key)
            assert refused.value.code == "wrong_suite"
    finally:
        run_cli("down", home=home, check=False)
    verified = run_cli("ledger", "verify", home=home)
    assert "state root matches" in verified.stdout
