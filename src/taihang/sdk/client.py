"""The HTTP client for a node's REST API (httpx), with errors mapped from problem codes."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from taihang.codec import value_from_json, value_to_json
from taihang.errors import (
    BlockNotFound,
    InvalidInput,
    NotFound,
    TaihangError,
    TransactionNotFound,
    TransientError,
)

DEFAULT_TIMEOUT_S = 30.0


class ApiError(TaihangError):
    """A problem answer from the node: `code` is the node's stable code, `status` the HTTP one."""

    def __init__(self, message: str, *, code: str, status: int) -> None:
        super().__init__(message, code=code)
        self.status = status


def raise_for_problem(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        code, detail = str(body.get("code", "http_error")), str(body.get("detail", ""))
    except ValueError:
        code, detail = "http_error", response.text[:200]
    message = f"{detail} ({code})"
    if code == "transaction_not_found":
        raise TransactionNotFound(message)
    if code == "block_not_found":
        raise BlockNotFound(message)
    if response.status_code == 404:
        raise NotFound(message, code=code)
    if response.status_code in (400, 422):
        raise InvalidInput(message, code=code)
    if response.status_code >= 500:
        raise TransientError(message, code=code)
    raise ApiError(message, code=code, status=response.status_code)


class Client:
    """Synchronous client: `Client("http://127.0.0.1:8545")`."""

    def __init__(self, base_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, **params: Any) -> Any:
        try:
            response = self._http.get(
                path, params={k: v for k, v in params.items() if v is not None}
            )
        except httpx.TransportError as exc:
            raise TransientError(f"cannot reach {self.base_url}: {exc}") from None
        raise_for_problem(response)
        return response.json()

    def _post(self, path: str, body: Any) -> Any:
        try:
            response = self._http.post(path, json=body)
        except httpx.TransportError as exc:
            raise TransientError(f"cannot reach {self.base_url}: {exc}") from None
        raise_for_problem(response)
        return response.json()

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/api/v1/status")
        return result

    def submit(self, tx: bytes) -> str:
        result = self._post("/api/v1/transactions", {"tx": base64.b64encode(tx).decode()})
        return str(result["id"])

    def submit_batch(self, txs: list[bytes]) -> list[dict[str, Any]]:
        body = {"txs": [base64.b64encode(t).decode() for t in txs]}
        results: list[dict[str, Any]] = self._post("/api/v1/transactions/batch", body)["results"]
        return results

    def get_transaction(self, tx_id: str, *, wait: bool = False, timeout_ms: int = 10_000) -> Any:
        timeout = max(DEFAULT_TIMEOUT_S, timeout_ms / 1000 + 5)
        try:
            response = self._http.get(
                f"/api/v1/transactions/{tx_id}",
                params={"wait": str(wait).lower(), "timeout_ms": timeout_ms},
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            raise TransientError(f"cannot reach {self.base_url}: {exc}") from None
        raise_for_problem(response)
        return response.json()

    def wait_for_receipt(self, tx_id: str, *, timeout_ms: int = 30_000) -> dict[str, Any]:
        """The committed transaction with its receipt; raises `TransientError` on timeout."""
        result = self.get_transaction(tx_id, wait=True, timeout_ms=timeout_ms)
        if result.get("status") != "committed":
            raise TransientError(f"transaction {tx_id} not committed within {timeout_ms} ms")
        committed: dict[str, Any] = result
        return committed

    def get_block(self, ref: int | str = "latest") -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/api/v1/blocks/{ref}")
        return result

    def list_blocks(self, *, cursor: int | None = None, limit: int = 20) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/api/v1/blocks", cursor=cursor, limit=limit)
        return result

    def get_receipts(self, height: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get(f"/api/v1/blocks/{height}/receipts")["receipts"]
        return result

    def get_state(self, contract: str, key: str, *, proof: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self._get(
            f"/api/v1/state/{contract}/{key}", proof=str(proof).lower()
        )
        return result

    def query(self, contract: str, method: str, args: list[Any]) -> Any:
        body = {"contract": contract, "method": method, "args": value_to_json(args)}
        return value_from_json(self._post("/api/v1/query", body)["result"])

    def get_account(self, address: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/api/v1/accounts/{address}")
        return result

    def next_nonce(self, address: str) -> int:
        return int(self.get_account(address)["next_nonce"])
