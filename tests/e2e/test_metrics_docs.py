"""`/metrics` and `/docs` against a real node process.

Metrics are read through `prometheus_client`'s own parser, so a format error fails here as it
would in Prometheus. Counters are compared before and after an action, since the node keeps
producing idle blocks; values the node updates just after a receipt becomes readable are
polled for briefly rather than read once.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from e2e_support import RunningNode, admin_sender
from prometheus_client.parser import text_string_to_metric_families

from taihang.api.app import build_app
from taihang.cli.network import init_network
from taihang.node.metrics import NodeMetrics

pytestmark = pytest.mark.e2e

METRIC_NAMES = {  # family names, as the parser reports them (counters without `_total`)
    "taihang_chain_height",
    "taihang_chain_executed_height",
    "taihang_txs_committed",
    "taihang_txs_rejected",
    "taihang_mempool_txs",
    "taihang_mempool_bytes",
    "taihang_block_commit_duration_seconds",
    "taihang_block_execute_duration_seconds",
    "taihang_block_txs",
    "taihang_tx_latency_seconds",
    "taihang_api_requests",
    "taihang_api_request_duration_seconds",
    "taihang_build_info",
}
API_PATHS = {
    "/healthz",
    "/metrics",
    "/api/v1/status",
    "/api/v1/transactions",
    "/api/v1/transactions/batch",
    "/api/v1/transactions/{tx_id}",
    "/api/v1/blocks",
    "/api/v1/blocks/{ref}",
    "/api/v1/blocks/{ref}/receipts",
    "/api/v1/state/{contract}/{key}",
    "/api/v1/query",
    "/api/v1/accounts/{address}",
}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def metrics_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    running = RunningNode(init_network(tmp_path_factory.mktemp("metrics") / "net", nodes=1))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def http(metrics_node: RunningNode) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=metrics_node.api, timeout=30) as client:
        yield client


def scrape(http: httpx.Client) -> tuple[set[str], Samples]:
    response = http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    names: set[str] = set()
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        names.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return names, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(http: httpx.Client, ready: Callable[[Samples], bool]) -> Samples:
    """Scrape until `ready` holds: some values move just after a receipt is readable."""
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(http)[1]
        if ready(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_metrics_parse_and_name_everything(http: httpx.Client) -> None:
    names, samples = scrape(http)
    assert names >= METRIC_NAMES, METRIC_NAMES - names
    status = http.get("/api/v1/status").json()
    labels = {"version": status["version"], "crypto": status["crypto"]}
    assert value(samples, "taihang_build_info", channel=status["channel"], **labels) == 1
    for result in ("ok", "reverted", "out_of_gas", "rejected"):  # zeros exported up front
        assert ("taihang_txs_committed_total", frozenset({("result", result)})) in samples


def test_counters_move_with_transactions(metrics_node: RunningNode, http: httpx.Client) -> None:
    with metrics_node.client() as client:
        admin = admin_sender(metrics_node.network, client)
    before = scrape(http)[1]
    sent = 25
    txs = [b64(admin.tx("kv", "put", [f"m{n}", n])) for n in range(sent)]
    results = http.post("/api/v1/transactions/batch", json={"txs": txs}).json()["results"]
    assert all("id" in result for result in results), results
    receipt = http.get(f"/api/v1/transactions/{results[-1]['id']}", params={"wait": "true"}).json()
    assert receipt["status"] == "committed", receipt

    def grew(name: str, samples: Samples, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    after = wait_for(http, lambda s: grew("taihang_tx_latency_seconds_count", s) >= sent)
    assert grew("taihang_txs_committed_total", after, result="ok") == sent
    assert grew("taihang_tx_latency_seconds_count", after) == sent
    assert grew("taihang_block_txs_sum", after) == sent
    assert grew("taihang_block_commit_duration_seconds_count", after) >= 1
    assert grew("taihang_block_execute_duration_seconds_count", after) >= 1
    assert value(after, "taihang_tx_latency_seconds_bucket", le="10.0") == value(
        after, "taihang_tx_latency_seconds_count"
    )

    tampered = bytearray(admin.tx("kv", "put", ["bad", 1], nonce=admin.nonce))
    tampered[-1] ^= 1
    assert http.post("/api/v1/transactions", json={"tx": b64(bytes(tampered))}).status_code == 400
    rejected = scrape(http)[1]
    assert grew("taihang_txs_rejected_total", rejected, code="bad_signature") == 1

    # A transaction past a nonce gap waits in the mempool (until it expires), so the
    # mempool gauges have something to show.
    gapped = admin.tx("kv", "put", ["gap", 1], nonce=admin.nonce + 40)
    assert http.post("/api/v1/transactions", json={"tx": b64(gapped)}).status_code == 202
    pending = scrape(http)[1]
    assert value(pending, "taihang_mempool_txs") == 1
    assert value(pending, "taihang_mempool_bytes") == len(gapped)


def test_heights_match_status(http: httpx.Client) -> None:
    # Idle blocks keep coming: accept a reading only when nothing moved around the status call.
    for _ in range(50):
        first = scrape(http)[1]
        status = http.get("/api/v1/status").json()
        second = scrape(http)[1]
        heights = [
            (value(s, "taihang_chain_height"), value(s, "taihang_chain_executed_height"))
            for s in (first, second)
        ]
        if heights[0] == heights[1]:
            assert heights[0] == (status["height"], status["executed_height"])
            return
    pytest.fail("heights never held still across a status call")


def test_api_requests_are_labelled_by_route_template(http: httpx.Client) -> None:
    route = "/api/v1/blocks/{ref}"
    before = scrape(http)[1]
    assert http.get("/api/v1/blocks/1").status_code == 200
    assert http.get("/api/v1/blocks/latest").status_code == 200
    assert http.get("/api/v1/blocks/999999").status_code == 404
    assert http.get("/no/such/path").status_code == 404
    after = scrape(http)[1]

    def grew(code: str, path: str = route) -> float:
        labels = {"route": path, "method": "GET", "code": code}
        return value(after, "taihang_api_requests_total", **labels) - value(
            before, "taihang_api_requests_total", **labels
        )

    assert grew("200") == 2
    assert grew("404") == 1
    assert grew("404", "unmatched") == 1
    routes = {
        dict(labels).get("route") for (name, labels) in after if name.startswith("taihang_api")
    }
    assert route in routes
    assert not {r for r in routes if r and ("/blocks/1" in r or "/no/such" in r)}
    count = value(after, "taihang_api_request_duration_seconds_count", route=route)
    assert count >= 3


class _AssetLinks(HTMLParser):
    """The URLs a browser would fetch while loading the page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, url in attrs:
            if name == wanted and url:
                self.urls.append(url)


def test_docs_render_from_the_node_alone(metrics_node: RunningNode, http: httpx.Client) -> None:
    page = http.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    links = _AssetLinks()
    links.feed(page.text)
    assert any(u.endswith(".js") for u in links.urls), links.urls
    assert any(u.endswith(".css") for u in links.urls), links.urls
    node_host = urlsplit(metrics_node.api).netloc
    for url in links.urls:
        assert urlsplit(url).netloc in ("", node_host), url
        assert http.get(url).status_code == 200, url
    foreign = [
        u
        for u in re.findall(r"https?://[^\s\"'<>)]+", page.text)
        if urlsplit(u).netloc != node_host
    ]
    assert not foreign, foreign
    assert http.get("/redoc").status_code == 404


def test_openapi_summarises_every_route(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert set(spec["paths"]) >= API_PATHS, API_PATHS - set(spec["paths"])
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            for code, response in operation["responses"].items():
                assert response.get("description"), (method, path, code)
    submit = spec["paths"]["/api/v1/transactions"]["post"]
    assert "application/problem+json" in submit["responses"]["400"]["content"]


def test_each_app_has_its_own_registry() -> None:
    """Two apps in one process (as in tests) neither collide nor share counts."""

    async def get_metrics(app: Any, touch_health: bool) -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            if touch_health:
                await client.get("/healthz")
            return (await client.get("/metrics")).text

    def fresh_app() -> Any:  # the app reads only `metrics` from its node at build time
        return build_app(SimpleNamespace(metrics=NodeMetrics(channel="c", crypto="ed25519")))

    first, second = fresh_app(), fresh_app()
    assert 'route="/healthz"' in asyncio.run(get_metrics(first, True))
    assert 'route="/healthz"' not in asyncio.run(get_metrics(second, False))
