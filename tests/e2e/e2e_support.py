"""End-to-end helpers: real `taihang` processes on 127.0.0.1 with real disks and keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from taihang.cli.network import Network, load_network
from taihang.crypto import get_suite
from taihang.ledger.transaction import compute_address
from taihang.node.home import find_running_pid
from taihang.sdk.client import Client
from taihang.sdk.keys import load_key
from taihang.sdk.tx import build_signed_tx

TAIHANG = [sys.executable, "-m", "taihang"]


def run_cli(
    *args: str,
    home: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    command = [*TAIHANG, *args]
    if home is not None:
        command += ["--home", str(home)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass
class RunningNode:
    network: Network
    process: subprocess.Popen[bytes] | None = None

    @property
    def home(self) -> Path:
        return self.network.nodes[0].home

    @property
    def api(self) -> str:
        return self.network.api

    def start(self) -> None:
        log = open(self.home / "node.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [*TAIHANG, "node", "start", "--home", str(self.home)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"node exited: {self.log_tail()}")
            try:
                with Client(self.api, timeout_s=1) as client:
                    client.status()
                    return
            except Exception:
                time.sleep(0.1)
        raise AssertionError(f"node not ready: {self.log_tail()}")

    def log_tail(self) -> str:
        return (self.home / "node.log").read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        assert find_running_pid(self.home) is None
        return code

    def client(self) -> Client:
        return Client(self.api)


class Sender:
    """A key with a local nonce counter, for building many transactions quickly."""

    def __init__(self, network: Network, seed: bytes, nonce: int = 0) -> None:
        self.network = network
        self.seed = seed
        suite = get_suite(network.crypto)
        self.public_key = suite.public_key_from_seed(seed)
        self.address = compute_address(suite, self.public_key)
        self.nonce = nonce

    def tx(
        self,
        contract: str,
        method: str,
        args: list[object],
        *,
        expires: int = 100_000,
        nonce: int | None = None,
        channel: str | None = None,
    ) -> bytes:
        use = self.nonce if nonce is None else nonce
        if nonce is None:
            self.nonce += 1
        return build_signed_tx(
            seed=self.seed,
            suite_name=self.network.crypto,
            channel=channel or self.network.channel,
            nonce=use,
            contract=contract,
            method=method,
            args=args,
            expires_at_height=expires,
        )


def admin_sender(network: Network, client: Client) -> Sender:
    key = load_key(network.keystore.path_for("admin"))
    return Sender(network, key.seed, client.next_nonce(key.address))


def reload(network: Network) -> Network:
    return load_network(network.path)
