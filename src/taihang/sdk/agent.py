"""The key agent: unlock a key once, sign for a while without prompts (like ssh-agent).

`taihang key unlock NAME --ttl 15m` decrypts the key and hands it to an agent process that
keeps it in memory only and listens on a Unix socket beside the key store (the directory is
0700, the socket 0600, and the agent answers only its own user, checked with SO_PEERCRED).
Commands that need that key ask the agent to sign; after the TTL, or `taihang key lock`, the
agent forgets its keys and exits. Seeds never touch the disk unencrypted.

Protocol: one JSON object per line each way. Requests: `{"op": "list"}`,
`{"op": "sign", "name", "message": hex}`, `{"op": "add", "key": {...}, "ttl_s"}`,
`{"op": "lock"}`. Answers: `{"ok": true, ...}` or `{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from taihang.crypto import CryptoSuite, get_suite
from taihang.errors import TaihangError, TransientError
from taihang.sdk.keys import LoadedKey

AGENT_SOCKET = ".agent.sock"
REQUEST_BYTES_MAX = 1024 * 1024
START_TIMEOUT_S = 10.0


class AgentError(TaihangError):
    code = "agent"


def socket_path_for(keys_dir: Path) -> Path:
    return keys_dir / AGENT_SOCKET


def _key_to_json(key: LoadedKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "suite": key.suite,
        "address": key.address,
        "public_key": key.public_key.hex(),
        "seed": key.seed.hex(),
    }


def _key_from_json(data: dict[str, Any]) -> LoadedKey:
    suite = get_suite(data["suite"])
    seed = bytes.fromhex(data["seed"])
    public_key = suite.public_key_from_seed(seed)
    if public_key.hex() != data["public_key"]:
        raise AgentError("agent: key material does not match its public key")
    return LoadedKey(
        name=data["name"],
        suite=data["suite"],
        address=data["address"],
        public_key=public_key,
        seed=seed,
        development=False,
    )


# --- client side ---------------------------------------------------------------------------
def request(path: Path, message: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
    """One request to the agent; `TransientError` when no agent listens there."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(path))
            sock.sendall(json.dumps(message).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (FileNotFoundError, ConnectionError, TimeoutError) as exc:
        raise TransientError(f"no key agent at {path}: {exc}") from None
    if not data:  # an agent that is shutting down accepts and closes without answering
        raise TransientError(f"the key agent at {path} did not answer")
    answer: dict[str, Any] = json.loads(data)
    if not answer.get("ok"):
        raise AgentError(f"agent: {answer.get('error', 'no answer')}")
    return answer


def list_unlocked(path: Path) -> list[dict[str, Any]]:
    try:
        keys: list[dict[str, Any]] = request(path, {"op": "list"})["keys"]
    except TransientError:
        return []
    return keys


def unlock(path: Path, key: LoadedKey, ttl_s: float) -> None:
    """Give `key` to the running agent, or start one holding it."""
    message = {"op": "add", "key": _key_to_json(key), "ttl_s": ttl_s}
    try:
        request(path, message)
        return
    except TransientError:
        pass
    path.unlink(missing_ok=True)  # a stale socket of an agent that died
    process = subprocess.Popen(
        [sys.executable, "-m", "taihang.sdk.agent", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdin is not None
    process.stdin.write(json.dumps(message).encode())
    process.stdin.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(k["name"] == key.name for k in list_unlocked(path)):
            return
        time.sleep(0.05)
    raise AgentError(f"the key agent did not start at {path}")


def lock(path: Path) -> bool:
    try:
        request(path, {"op": "lock"})
    except TransientError:
        return False
    return True


class AgentSigner:
    """A `Signer` whose key stays inside the agent."""

    def __init__(self, path: Path, name: str) -> None:
        info = {k["name"]: k for k in list_unlocked(path)}.get(name)
        if info is None:
            raise AgentError(f"key {name!r} is not unlocked in the agent")
        self._path = path
        self.name = name
        self._address = str(info["address"])
        self._public_key = bytes.fromhex(info["public_key"])
        self._suite = get_suite(info["suite"])

    @property
    def address(self) -> str:
        return self._address

    @property
    def public_key(self) -> bytes:
        return self._public_key

    @property
    def suite(self) -> CryptoSuite:
        return self._suite

    def sign(self, message: bytes) -> bytes:
        answer = request(self._path, {"op": "sign", "name": self.name, "message": message.hex()})
        return bytes.fromhex(answer["signature"])


# --- agent side ----------------------------------------------------------------------------
class Agent:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: dict[str, tuple[LoadedKey, float]] = {}  # name -> (key, expiry monotonic)
        self.stopped = asyncio.Event()

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        self.keys = {n: (k, t) for n, (k, t) in self.keys.items() if t > now}
        op = message.get("op")
        if op == "list":
            return {
                "ok": True,
                "keys": [
                    {
                        "name": k.name,
                        "suite": k.suite,
                        "address": k.address,
                        "public_key": k.public_key.hex(),
                        "expires_in_s": round(t - now),
                    }
                    for k, t in sorted(self.keys.values(), key=lambda kt: kt[0].name)
                ],
            }
        if op == "sign":
            entry = self.keys.get(str(message.get("name")))
            if entry is None:
                return {"ok": False, "error": f"key {message.get('name')!r} is not unlocked"}
            key = entry[0]
            signature = get_suite(key.suite).sign(key.seed, bytes.fromhex(message["message"]))
            return {"ok": True, "signature": signature.hex()}
        if op == "add":
            key = _key_from_json(message["key"])
            self.keys[key.name] = (key, now + float(message["ttl_s"]))
            return {"ok": True}
        if op == "lock":
            self.keys.clear()  # the agent exits once this answer is sent (serve_client)
            return {"ok": True}
        return {"ok": False, "error": f"unknown op {op!r}"}

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            sock = writer.get_extra_info("socket")
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _, uid, _ = struct.unpack("3i", creds)
            if uid != os.getuid():
                return  # another user: say nothing
            line = await reader.readuntil(b"\n")
            try:
                answer = self.handle(json.loads(line))
            except (ValueError, KeyError, TypeError, TaihangError) as exc:
                answer = {"ok": False, "error": f"bad request: {exc}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
            if not self.keys:
                self.stopped.set()  # locked, or every key expired: nothing left to guard
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a client that went away or sent too much: drop it
        finally:
            writer.close()

    async def run(self, first: dict[str, Any]) -> None:
        self.handle(first)
        old_umask = os.umask(0o177)  # the socket is created 0600
        try:
            server = await asyncio.start_unix_server(
                self.serve_client, path=str(self.path), limit=REQUEST_BYTES_MAX
            )
        finally:
            os.umask(old_umask)
        async with server:
            while not self.stopped.is_set():
                if not self.keys or all(t <= time.monotonic() for _, t in self.keys.values()):
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopped.wait(), 1.0)
        self.path.unlink(missing_ok=True)


def main() -> None:
    path = Path(sys.argv[1])
    first = json.loads(sys.stdin.read())
    asyncio.run(Agent(path).run(first))


if __name__ == "__main__":
    main()
