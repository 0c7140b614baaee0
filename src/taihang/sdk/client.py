"""Clients for a node's REST API: `Client` (sync) and `AsyncClient`, with typed results.

Both share one description of every call (`_Call`: method, path, parameters, body, result
type), so the two differ only in how they send it. Problem answers become exceptions of
Taihang's error tree (`taihang.sdk.errors`); transport failures become `TransientError`.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
import msgspec

from taihang.codec import value_to_json
from taihang.errors import TransientError
from taihang.sdk.errors import ReceiptTimeout, raise_for_problem
from taihang.sdk.events import StreamItem, aiter_events, iter_events
from taihang.sdk.models import (
    Account,
    Block,
    BlockPage,
    BlockReceipts,
    QueryResult,
    StateRead,
    Status,
    SubmitResult,
    TxStatus,
)

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 30.0
WAIT_SLICE_MS = 10_000  # one long-poll request waits at most this long


@dataclass(frozen=True)
class _Call(Generic[T]):
    method: str
    path: str
    result: type[T]
    params: dict[str, Any] | None = None
    body: Any = None
    timeout_s: float | None = None
    field: str | None = None  # take this field of the answer


def _b64(tx: bytes) -> str:
    return base64.b64encode(tx).decode()


class _Calls:
    """The API's calls as values; shared by both clients."""

    @staticmethod
    def status() -> _Call[Status]:
        return _Call("GET", "/api/v1/status", Status)

    @staticmethod
    def submit(tx: bytes) -> _Call[str]:
        return _Call("POST", "/api/v1/transactions", str, body={"tx": _b64(tx)}, field="id")

    @staticmethod
    def submit_batch(txs: list[bytes]) -> _Call[list[SubmitResult]]:
        body = {"txs": [_b64(t) for t in txs]}
        return _Call(
            "POST", "/api/v1/transactions/batch", list[SubmitResult], body=body, field="results"
        )

    @staticmethod
    def get_transaction(tx_id: str, wait_ms: int) -> _Call[TxStatus]:
        params = {"wait": "true" if wait_ms else "false", "timeout_ms": wait_ms}
        return _Call(
            "GET",
            f"/api/v1/transactions/{tx_id}",
            TxStatus,
            params=params,
            timeout_s=DEFAULT_TIMEOUT_S + wait_ms / 1000,
        )

    @staticmethod
    def get_block(ref: int | str) -> _Call[Block]:
        return _Call("GET", f"/api/v1/blocks/{ref}", Block)

    @staticmethod
    def list_blocks(cursor: int | None, limit: int) -> _Call[BlockPage]:
        params = {"limit": limit, **({"cursor": cursor} if cursor is not None else {})}
        return _Call("GET", "/api/v1/blocks", BlockPage, params=params)

    @staticmethod
    def get_receipts(height: int) -> _Call[BlockReceipts]:
        return _Call("GET", f"/api/v1/blocks/{height}/receipts", BlockReceipts)

    @staticmethod
    def get_state(contract: str, key: str, proof: bool) -> _Call[StateRead]:
        params = {"proof": "true" if proof else "false"}
        return _Call("GET", f"/api/v1/state/{contract}/{key}", StateRead, params=params)

    @staticmethod
    def query(contract: str, method: str, args: list[Any]) -> _Call[QueryResult]:
        body = {"contract": contract, "method": method, "args": value_to_json(list(args))}
        return _Call("POST", "/api/v1/query", QueryResult, body=body)

    @staticmethod
    def get_account(address: str) -> _Call[Account]:
        return _Call("GET", f"/api/v1/accounts/{address}", Account)


def _parse(call: _Call[T], response: httpx.Response) -> T:
    raise_for_problem(response)
    data = msgspec.json.decode(response.content)
    if call.field is not None:
        data = data[call.field]
    try:
        return msgspec.convert(data, call.result)
    except msgspec.ValidationError as exc:
        raise TransientError(f"unexpected answer from the node: {exc}") from None


class Client:
    """Synchronous client: `with Client("http://127.0.0.1:8545") as client: ...`."""

    def __init__(self, base_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, call: _Call[T]) -> T:
        try:
            response = self._http.request(
                call.method,
                call.path,
                params=call.params,
                json=call.body,
                timeout=call.timeout_s or httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise TransientError(f"cannot reach {self.base_url}: {exc}") from None
        return _parse(call, response)

    def status(self) -> Status:
        return self._run(_Calls.status())

    def submit(self, tx: bytes) -> str:
        """Submit one signed envelope; returns its id (hex)."""
        return self._run(_Calls.submit(tx))

    def submit_batch(self, txs: list[bytes]) -> list[SubmitResult]:
        return self._run(_Calls.submit_batch(txs))

    def get_transaction(self, tx_id: str, *, wait_ms: int = 0) -> TxStatus:
        return self._run(_Calls.get_transaction(tx_id, wait_ms))

    def wait_for_receipt(self, tx_id: str, *, timeout_s: float = 30.0) -> TxStatus:
        """The committed transaction with its receipt; `ReceiptTimeout` after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                raise ReceiptTimeout(f"transaction {tx_id} not committed within {timeout_s} s")
            found = self.get_transaction(tx_id, wait_ms=min(remaining_ms, WAIT_SLICE_MS))
            if found.is_committed:
                return found

    def get_block(self, ref: int | str = "latest") -> Block:
        return self._run(_Calls.get_block(ref))

    def list_blocks(self, *, cursor: int | None = None, limit: int = 20) -> BlockPage:
        return self._run(_Calls.list_blocks(cursor, limit))

    def get_receipts(self, height: int) -> BlockReceipts:
        return self._run(_Calls.get_receipts(height))

    def get_state(self, contract: str, key: str, *, proof: bool = False) -> StateRead:
        return self._run(_Calls.get_state(contract, key, proof))

    def query(self, contract: str, method: str, args: list[Any] | None = None) -> Any:
        return self._run(_Calls.query(contract, method, args or [])).result

    def get_account(self, address: str) -> Account:
        return self._run(_Calls.get_account(address))

    def next_nonce(self, address: str) -> int:
        return self.get_account(address).next_nonce

    def iter_blocks(self, start: int = 0, end: int | None = None) -> Iterator[Block]:
        """Blocks `start`..`end` (default: up to the committed height now), in height order."""
        last = self.status().height if end is None else end
        for height in range(start, last + 1):
            yield self.get_block(height)

    def iter_events(self, **filters: Any) -> Iterator[StreamItem]:
        """The node's event stream (`taihang.sdk.events.iter_events` with this base URL)."""
        return iter_events(self.base_url, **filters)


class AsyncClient:
    """Asynchronous client: `async with AsyncClient(url) as client: ...`."""

    def __init__(self, base_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, call: _Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method,
                call.path,
                params=call.params,
                json=call.body,
                timeout=call.timeout_s or httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise TransientError(f"cannot reach {self.base_url}: {exc}") from None
        return _parse(call, response)

    async def status(self) -> Status:
        return await self._run(_Calls.status())

    async def submit(self, tx: bytes) -> str:
        return await self._run(_Calls.submit(tx))

    async def submit_batch(self, txs: list[bytes]) -> list[SubmitResult]:
        return await self._run(_Calls.submit_batch(txs))

    async def get_transaction(self, tx_id: str, *, wait_ms: int = 0) -> TxStatus:
        return await self._run(_Calls.get_transaction(tx_id, wait_ms))

    async def wait_for_receipt(self, tx_id: str, *, timeout_s: float = 30.0) -> TxStatus:
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    found = await self.get_transaction(tx_id, wait_ms=WAIT_SLICE_MS)
                    if found.is_committed:
                        return found
        except TimeoutError:
            raise ReceiptTimeout(
                f"transaction {tx_id} not committed within {timeout_s} s"
            ) from None

    async def get_block(self, ref: int | str = "latest") -> Block:
        return await self._run(_Calls.get_block(ref))

    async def list_blocks(self, *, cursor: int | None = None, limit: int = 20) -> BlockPage:
        return await self._run(_Calls.list_blocks(cursor, limit))

    async def get_receipts(self, height: int) -> BlockReceipts:
        return await self._run(_Calls.get_receipts(height))

    async def get_state(self, contract: str, key: str, *, proof: bool = False) -> StateRead:
        return await self._run(_Calls.get_state(contract, key, proof))

    async def query(self, contract: str, method: str, args: list[Any] | None = None) -> Any:
        return (await self._run(_Calls.query(contract, method, args or []))).result

    async def get_account(self, address: str) -> Account:
        return await self._run(_Calls.get_account(address))

    async def next_nonce(self, address: str) -> int:
        return (await self.get_account(address)).next_nonce

    async def iter_blocks(self, start: int = 0, end: int | None = None) -> AsyncIterator[Block]:
        last = (await self.status()).height if end is None else end
        for height in range(start, last + 1):
            yield await self.get_block(height)

    def iter_events(self, **filters: Any) -> AsyncIterator[StreamItem]:
        return aiter_events(self.base_url, **filters)
