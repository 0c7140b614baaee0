"""Accounts: a signer bound to a client, with nonces and expiry handled for you.

    with Client(url) as client:
        alice = Account(client, KeySigner(keystore.load("alice")))
        receipt = alice.send("asset", "transfer", [bob, 10]).receipt

The account asks the node for its next nonce once and then counts locally, so a script can
send many transactions without a round trip each; `resync()` asks again (after a rejection).
"""

from __future__ import annotations

from typing import Any

from taihang.sdk.client import AsyncClient, Client
from taihang.sdk.models import Receipt, SubmitResult
from taihang.sdk.signer import Signer
from taihang.sdk.tx import DEFAULT_EXPIRY_BLOCKS, DEFAULT_GAS_LIMIT, check_suite, sign_tx

Call = tuple[str, str, list[Any]]  # (contract, method, args)


class _Nonces:
    def __init__(self, signer: Signer, channel: str, expiry_blocks: int) -> None:
        self.signer = signer
        self.channel = channel
        self.expiry_blocks = expiry_blocks
        self.next: int | None = None

    def sign(self, call: Call, height: int, gas_limit: int) -> bytes:
        assert self.next is not None, "the caller fetched the nonce first"
        contract, method, args = call
        tx = sign_tx(
            self.signer,
            channel=self.channel,
            nonce=self.next,
            contract=contract,
            method=method,
            args=list(args),
            expires_at_height=height + self.expiry_blocks,
            gas_limit=gas_limit,
        )
        self.next += 1
        return tx


class Account:
    def __init__(
        self, client: Client, signer: Signer, *, expiry_blocks: int = DEFAULT_EXPIRY_BLOCKS
    ) -> None:
        status = client.status()
        check_suite(signer, status.crypto)
        self.client = client
        self.signer = signer
        self._nonces = _Nonces(signer, status.channel, expiry_blocks)

    @property
    def address(self) -> str:
        return self.signer.address

    def resync(self) -> None:
        self._nonces.next = None

    def sign(self, calls: list[Call], gas_limit: int = DEFAULT_GAS_LIMIT) -> list[bytes]:
        if self._nonces.next is None:
            self._nonces.next = self.client.next_nonce(self.address)
        height = self.client.status().height
        return [self._nonces.sign(call, height, gas_limit) for call in calls]

    def submit(
        self,
        contract: str,
        method: str,
        args: list[Any] | None = None,
        *,
        gas_limit: int = DEFAULT_GAS_LIMIT,
    ) -> str:
        """Sign and submit; returns the transaction id without waiting."""
        [tx] = self.sign([(contract, method, args or [])], gas_limit)
        try:
            return self.client.submit(tx)
        except Exception:
            self.resync()
            raise

    def send(
        self,
        contract: str,
        method: str,
        args: list[Any] | None = None,
        *,
        gas_limit: int = DEFAULT_GAS_LIMIT,
        timeout_s: float = 30.0,
    ) -> Receipt:
        """Sign, submit and wait; returns the receipt (check `receipt.status`)."""
        tx_id = self.submit(contract, method, args, gas_limit=gas_limit)
        receipt = self.client.wait_for_receipt(tx_id, timeout_s=timeout_s).receipt
        assert receipt is not None, "a committed transaction has a receipt"
        return receipt

    def submit_batch(self, calls: list[Call]) -> list[SubmitResult]:
        results = self.client.submit_batch(self.sign(calls))
        if not all(r.ok for r in results):
            self.resync()  # a rejected nonce leaves a gap: ask the node again
        return results


class AsyncAccount:
    def __init__(
        self,
        client: AsyncClient,
        signer: Signer,
        *,
        channel: str,
        expiry_blocks: int = DEFAULT_EXPIRY_BLOCKS,
    ) -> None:
        self.client = client
        self.signer = signer
        self._nonces = _Nonces(signer, channel, expiry_blocks)

    @classmethod
    async def open(cls, client: AsyncClient, signer: Signer) -> AsyncAccount:
        status = await client.status()
        check_suite(signer, status.crypto)
        return cls(client, signer, channel=status.channel)

    @property
    def address(self) -> str:
        return self.signer.address

    def resync(self) -> None:
        self._nonces.next = None

    async def sign(self, calls: list[Call], gas_limit: int = DEFAULT_GAS_LIMIT) -> list[bytes]:
        if self._nonces.next is None:
            self._nonces.next = await self.client.next_nonce(self.address)
        height = (await self.client.status()).height
        return [self._nonces.sign(call, height, gas_limit) for call in calls]

    async def send(
        self,
        contract: str,
        method: str,
        args: list[Any] | None = None,
        *,
        gas_limit: int = DEFAULT_GAS_LIMIT,
        timeout_s: float = 30.0,
    ) -> Receipt:
        [tx] = await self.sign([(contract, method, args or [])], gas_limit)
        try:
            tx_id = await self.client.submit(tx)
        except Exception:
            self.resync()
            raise
        receipt = (await self.client.wait_for_receipt(tx_id, timeout_s=timeout_s)).receipt
        assert receipt is not None, "a committed transaction has a receipt"
        return receipt

    async def submit_batch(self, calls: list[Call]) -> list[SubmitResult]:
        results = await self.client.submit_batch(await self.sign(calls))
        if not all(r.ok for r in results):
            self.resync()
        return results
