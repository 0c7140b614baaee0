"""Fixtures for the transport tests (helpers in net_support.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from net_support import NODES, Pki, Runner, build_genesis

from taihang.node.pki import build_org_ca, issue_node_certificate


@pytest.fixture(scope="session")
def pki() -> Pki:
    cas = {org: build_org_ca(org) for org in ("org1", "org2")}
    tls = {
        name: issue_node_certificate(*cas[org], node_name=name, org_id=org, hosts=["127.0.0.1"])
        for name, org in NODES.items()
    }
    return Pki(cas, build_genesis(cas), tls)


@pytest.fixture(params=["asyncio"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Run an async test body on a fresh loop (asyncio, or uvloop where parametrised)."""

    def runner(body: Callable[[], Awaitable[None]]) -> None:
        factory = None
        if request.param == "uvloop":
            uvloop = pytest.importorskip("uvloop")
            factory = uvloop.new_event_loop

        errors: list[dict[str, Any]] = []

        async def main() -> None:
            # Anything the loop would report (a task's unretrieved exception, a failed
            # callback) is a transport bug: collect it and fail the test.
            asyncio.get_running_loop().set_exception_handler(
                lambda _, context: errors.append(context)
            )
            async with asyncio.timeout(10):
                await body()

        with asyncio.Runner(loop_factory=factory) as loop_runner:
            loop_runner.run(main())
        assert errors == []

    return runner
