"""JSON and problem responses, request parsing, and the node behind a request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from fastapi import Request
from fastapi.responses import Response

from taihang.errors import ContractError, InvalidInput, NotFound, TaihangError

if TYPE_CHECKING:
    from taihang.node.chain import Chain
    from taihang.node.runtime import Node

PROBLEM = "application/problem+json"
BODY_BYTES_MAX = 64 * 1024 * 1024
_json = msgspec.json.Encoder()


def json_response(data: Any, status: int = 200) -> Response:
    return Response(_json.encode(data), status_code=status, media_type="application/json")


def problem(status: int, code: str, detail: str) -> Response:
    """An RFC 9457 problem document with Taihang's stable `code`."""
    body = {
        "type": f"https://taihang.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
    }
    return Response(_json.encode(body), status_code=status, media_type=PROBLEM)


def error_status(exc: TaihangError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if exc.code == "mempool_full":
        return 503  # transient: retry later
    if isinstance(exc, ContractError):
        return 422
    if isinstance(exc, InvalidInput):
        return 400
    return 500


async def read_json(request: Request) -> Any:
    body = await request.body()
    if len(body) > BODY_BYTES_MAX:
        raise InvalidInput(f"request body exceeds {BODY_BYTES_MAX} bytes", code="too_large")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}", code="malformed") from None


def parse_hex(text: str, what: str, length: int) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise InvalidInput(f"{what} must be hex", code="malformed") from None
    if len(value) != length:
        raise InvalidInput(f"{what} must be {length} bytes", code="malformed")
    return value


def get_node(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


def get_chain(request: Request) -> Chain:
    chain = get_node(request).chain
    assert chain is not None, "the API starts after the chain is open"
    return chain
