"""`GET /metrics` and the middleware that counts API requests by route template.

The middleware is plain ASGI rather than `@app.middleware("http")`: Starlette's
`BaseHTTPMiddleware` wraps every request and response in extra tasks and streams, which the
batch submit path would pay for. Here a request costs two clock reads, a dict lookup and one
counter increment plus one histogram observation.

Requests are labelled with the template of the route that served them (`/api/v1/blocks/{ref}`),
never the raw path, so clients cannot create series at will; paths no route matches share
the label `unmatched`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import generate_latest
from starlette.routing import Mount

from taihang.api.responses import get_node

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from taihang.node.metrics import NodeMetrics

# The classic text format: every Prometheus version reads it, and our names need no escaping.
CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text exposition", "content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    """This node's `taihang_*` metrics in the Prometheus text format."""
    # Rendered on the node's loop on purpose: the watched gauges read the mempool and the
    # chain tip, which only the loop mutates.
    body = generate_latest(get_node(request).metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_TEXT)


def install_metrics(app: FastAPI, metrics: NodeMetrics) -> None:
    """Serve `/metrics` and count every request the app answers."""
    app.include_router(router)
    app.add_middleware(ApiMetricsMiddleware, metrics=metrics)


class ApiMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: NodeMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # endpoint -> template, for routes that do not leave `scope["route"]` behind (FastAPI
        # sets it only for its own APIRoutes; mounts and plain routes set just `endpoint`).
        self._templates: dict[Any, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before it starts a response
        # Duration until the response starts: the same as the whole request for ordinary
        # answers, and for event streams their latency rather than their lifetime.
        answered: float | None = None

        async def send_and_record(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                answered = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            ended = answered if answered is not None else time.perf_counter()
            self.metrics.api_request(
                self._find_template(scope), scope["method"], status, ended - started
            )

    def _find_template(self, scope: Scope) -> str:
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return path
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED
        if self._templates is None:  # built once: every route exists by the first request
            self._templates = build_templates(scope["app"].routes)
        return self._templates.get(endpoint, UNMATCHED)


def build_templates(routes: list[Any]) -> dict[Any, str]:
    templates: dict[Any, str] = {}
    for route in routes:
        if isinstance(route, Mount):
            templates[route.app] = route.path + "/{path}"
        elif getattr(route, "endpoint", None) is not None:
            templates.setdefault(route.endpoint, route.path)
    return templates
