"""Fixtures for end-to-end tests; the helpers live in `e2e_support`."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import RunningNode

from taihang.cli.network import Network, init_network


@pytest.fixture
def network(tmp_path: Path) -> Network:
    return init_network(tmp_path / "net", nodes=1)


@pytest.fixture
def node(network: Network) -> Iterator[RunningNode]:
    running = RunningNode(network)
    running.start()
    yield running
    if running.process is not None and running.process.poll() is None:
        running.process.send_signal(signal.SIGKILL)
        running.process.wait(10)
