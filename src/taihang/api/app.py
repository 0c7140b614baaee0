"""The REST API: `/api/v1` (DESIGN.md §4 wire forms), `/healthz`, `/metrics` and `/docs`.

Handlers parse bodies themselves with msgspec (no per-request model validation on the hot
submit path) and answer errors as `application/problem+json` with a stable `code`. The node
is reached through `request.app.state.node`. `/docs` (Swagger UI) loads its scripts and styles
from this node (`fastapi-offline`), never from a CDN: nodes run on networks with no internet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from taihang import __version__
from taihang.api import routes_events, routes_ledger, routes_transactions
from taihang.api.metrics import install_metrics
from taihang.api.responses import error_status, json_response, problem
from taihang.errors import TaihangError

if TYPE_CHECKING:
    from taihang.node.runtime import Node

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_INVALID = {"description": "Invalid input: a problem document with a stable `code`", **_PROBLEM}
_NOT_FOUND = {"description": "Not found: a problem document", **_PROBLEM}
TRANSACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _INVALID,
    404: _NOT_FOUND,
    503: {"description": "Mempool full (transient): retry later", **_PROBLEM},
}
LEDGER_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _INVALID,
    404: _NOT_FOUND,
    422: {"description": "The query reverted or ran out of gas", **_PROBLEM},
}


def build_app(node: Node) -> FastAPI:
    # One docs page, checked offline by the e2e tests; ReDoc stays off. No validatorUrl:
    # Swagger UI would otherwise send the spec to validator.swagger.io for a badge.
    app = FastAPIOffline(
        title="Taihang node API",
        version=__version__,
        redoc_url=None,
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.node = node
    app.include_router(routes_transactions.router, responses=TRANSACTION_RESPONSES)
    app.include_router(routes_ledger.router, responses=LEDGER_RESPONSES)
    app.include_router(routes_events.router)
    install_metrics(app, node.metrics)

    @app.exception_handler(TaihangError)
    async def taihang_error(_: Request, exc: TaihangError) -> Response:
        return problem(error_status(exc), exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return problem(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        details = "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
            for error in exc.errors()
        )
        return problem(400, "malformed", details or "invalid request")

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Response:
        """Liveness: 200 `{"status": "ok"}` while the node serves its API."""
        return json_response({"status": "ok"})

    return app
