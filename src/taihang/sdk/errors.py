"""Errors from the node's problem answers, mapped once, here, onto Taihang's error tree."""

from __future__ import annotations

from typing import Any

import httpx

from taihang.errors import (
    BlockNotFound,
    ContractReverted,
    InvalidInput,
    InvalidSignature,
    NotFound,
    PermissionDenied,
    TaihangError,
    TransactionNotFound,
    TransientError,
)


class ApiError(TaihangError):
    """A problem answer with no closer match; `code` is the node's code, `status` HTTP's."""

    def __init__(self, message: str, *, code: str, status: int) -> None:
        super().__init__(message, code=code)
        self.status = status


class ReceiptTimeout(TransientError):
    """The transaction was not committed within the time the caller allowed."""

    code = "receipt_timeout"


_BY_CODE: dict[str, type[TaihangError]] = {
    "transaction_not_found": TransactionNotFound,
    "block_not_found": BlockNotFound,
    "bad_signature": InvalidSignature,
    "permission_denied": PermissionDenied,
}


def error_from_problem(status: int, body: Any, text: str = "") -> TaihangError:
    """The exception for a problem answer (`status` >= 400)."""
    if isinstance(body, dict):
        code, detail = str(body.get("code", "http_error")), str(body.get("detail", ""))
    else:
        code, detail = "http_error", text[:200]
    message = f"{detail} ({code})"
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message, code=code)
    if status == 404:
        return NotFound(message, code=code)
    if status == 422:
        return ContractReverted(message, code=code)
    if status == 400:
        return InvalidInput(message, code=code)
    if status >= 500:
        return TransientError(message, code=code)
    return ApiError(message, code=code, status=status)


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the mapped exception when `response` is a problem answer (status >= 400)."""
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = None
        raise error_from_problem(response.status_code, body, response.text)
