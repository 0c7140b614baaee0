"""The SDK against a real node: typed results, both clients, accounts, mapped errors."""

from __future__ import annotations

import asyncio

import pytest
from e2e_support import RunningNode

from taihang.crypto import get_suite
from taihang.errors import (
    ContractReverted,
    InvalidInput,
    InvalidSignature,
    TransactionNotFound,
    TransientError,
)
from taihang.sdk.account import Account, AsyncAccount
from taihang.sdk.client import AsyncClient, Client
from taihang.sdk.errors import ReceiptTimeout
from taihang.sdk.models import Status, TxStatus
from taihang.sdk.signer import KeySigner

pytestmark = pytest.mark.e2e


def admin_signer(node: RunningNode) -> KeySigner:
    return KeySigner(node.network.keystore.load("admin"))


def test_sync_client_typed_results_and_errors(node: RunningNode) -> None:
    with Client(node.api) as client:
        status = client.status()
        assert isinstance(status, Status) and status.channel == node.network.channel
        admin = Account(client, admin_signer(node))
        receipt = admin.send("kv", "put", ["blob", {"$bytes": "ff"}])
        assert receipt.is_ok and receipt.events[0].name == "Put"
        assert client.query("kv", "get", [admin.address, "blob"]) == {"$bytes": "ff"}
        raw = admin.send("kv", "put", ["raw", b"\x00\x01"])
        assert raw.is_ok
        assert client.query("kv", "get", [admin.address, "raw"]) == b"\x00\x01"
        failed = admin.send("asset", "transfer", [admin.address, 10**18])
        assert failed.status == "reverted" and "insufficient" in failed.error_message
        block = client.get_block("latest")
        assert client.get_block(block.id).height == block.height
        with pytest.raises(TransactionNotFound):
            client.get_transaction("00" * 32)
        with pytest.raises(ContractReverted):
            client.query("asset", "no_such_method", [])
        with pytest.raises(InvalidInput) as bad:
            client.submit(b"\x00garbage")
        assert bad.value.code == "malformed"
        envelope = bytearray(admin.sign([("kv", "put", ["x", 1])])[0])
        envelope[-1] ^= 0xFF
        with pytest.raises(InvalidSignature):
            client.submit(bytes(envelope))


def test_wait_for_receipt_times_out_with_its_own_error(node: RunningNode) -> None:
    with Client(node.api) as client:
        admin = Account(client, admin_signer(node))
        admin.sign([("kv", "put", ["skip", 1])])  # consume a nonce locally: the next one gaps
        [gapped] = admin.sign([("kv", "put", ["later", 2])])
        tx_id = client.submit(gapped)
        assert client.get_transaction(tx_id).status == "pending"
        with pytest.raises(ReceiptTimeout):
            client.wait_for_receipt(tx_id, timeout_s=1.5)


def test_async_client_and_account(node: RunningNode) -> None:
    async def scenario() -> list[TxStatus]:
        async with AsyncClient(node.api) as client:
            admin = await AsyncAccount.open(client, admin_signer(node))
            receipt = await admin.send("asset", "transfer", ["cd" * 20, 3])
            assert receipt.is_ok
            results = await admin.submit_batch([("asset", "transfer", ["cd" * 20, 1])] * 5)
            return list(
                await asyncio.gather(*(client.wait_for_receipt(str(r.id)) for r in results))
            )

    committed = asyncio.run(scenario())
    assert all(c.receipt is not None and c.receipt.is_ok for c in committed)
    with Client(node.api) as client:
        assert client.query("asset", "balance", ["cd" * 20]) == 8


def test_unreachable_node_is_transient() -> None:
    with Client("http://127.0.0.1:9", timeout_s=1) as client, pytest.raises(TransientError):
        client.status()


def test_key_of_another_suite_is_refused_before_signing(node: RunningNode) -> None:
    if "sm" not in __import__("taihang.crypto", fromlist=["known_suites"]).known_suites():
        pytest.skip("the sm suite is not available")
    suite = get_suite("sm")
    signer = KeySigner.from_seed(bytes(31) + b"\x01", "sm")
    assert signer.suite is suite
    with Client(node.api) as client, pytest.raises(InvalidInput, match="sm key") as refused:
        Account(client, signer)
    assert refused.value.code == "wrong_suite"
