"""The REST API: `/api/v1` (DESIGN.md §4 wire forms) and `/healthz`.

Handlers parse bodies themselves with msgspec (no per-request model validation on the hot
submit path) and answer errors as `application/problem+json` with a stable `code`. The node
is reached through `request.app.state.node`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from taihang import __version__
from taihang.api import routes_ledger, routes_transactions
from taihang.api.responses import error_status, json_response, problem
from taihang.errors import TaihangError

if TYPE_CHECKING:
    from taihang.node.runtime import Node


def build_app(node: Node) -> FastAPI:
    app = FastAPI(title="Taihang node API", version=__version__, docs_url=None, redoc_url=None)
    app.state.node = node
    app.include_router(routes_transactions.router)
    app.include_router(routes_ledger.router)

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
        return json_response({"status": "ok"})

    return app
