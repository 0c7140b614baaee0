"""Start-up refusals: a lost store or safety record (no signing), a taken port."""

from __future__ import annotations

import shutil
import socket
import time

import pytest
from e2e_support import RunningNode, run_cli

from taihang.cli.network import Network

pytestmark = pytest.mark.e2e


def wait_height(node: RunningNode, height: int) -> None:
    deadline = time.monotonic() + 30
    with node.client() as client:
        while client.status().height < height:
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.1)


def test_wiped_store_refuses_to_sign(node: RunningNode) -> None:
    wait_height(node, 2)
    assert node.stop() == 0
    shutil.rmtree(node.home / "data")
    result = run_cli("node", "start", home=node.home, check=False, timeout=60)
    assert result.returncode != 0
    assert "would equivocate" in result.stderr or "equivocate" in result.stderr, result.stderr


def test_missing_safety_record_refuses_to_sign(node: RunningNode) -> None:
    assert node.stop() == 0
    (node.home / "safety.json").unlink()
    result = run_cli("node", "start", home=node.home, check=False, timeout=60)
    assert result.returncode != 0
    assert "safety" in result.stderr, result.stderr


def test_clean_restart_keeps_signing(node: RunningNode) -> None:
    wait_height(node, 2)
    assert node.stop() == 0
    node.start()
    with node.client() as client:
        before = client.status().height
    wait_height(node, before + 1)


def test_taken_api_port_is_a_clear_error(network: Network) -> None:
    port = network.nodes[0].api_port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        result = run_cli("node", "start", home=network.nodes[0].home, check=False, timeout=60)
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
