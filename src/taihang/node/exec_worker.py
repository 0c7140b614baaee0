"""The contract executor worker: `python -m taihang.node.exec_worker --suite NAME ...`.

Theory of operation (spec: shared/spec/contracts.md, "Executor process"; ADR 0009). The node
starts one worker with pipes on its stdin and stdout and no keys: the worker is told only the
crypto suite's name, and asks the node for every state value it reads. It sets an
address-space limit on itself before serving, so a mispriced operation that allocates past
every gas check fails here with `MemoryError`, never in the node. Anything other than a
deterministic contract failure (MemoryError, RecursionError, a broken invariant) ends the
worker with `Halted`: the node halts rather than write a receipt no other node would write.

State: the worker keeps a cache of the raw values it has read, valid for one executed height.
After executing block `h` over state `h - 1` it holds the block's writes as pending; the next
request over state `h` applies them, and a request over any other state clears the cache.
The node serialises requests and persists a block before sending the next one, so the cache
always equals the node's executed state at the request's height.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import time
import traceback
from collections.abc import Iterable
from contextlib import suppress
from typing import TypeVar

from taihang.codec import decode_value, encode_value
from taihang.crypto import get_suite
from taihang.errors import ContractError, InvalidInput, NotFound
from taihang.execution import BlockContext, Executor
from taihang.execution.executor import nonce_key
from taihang.execution.lifecycle import NAMESPACE as CONTRACTS_NAMESPACE
from taihang.execution.lifecycle import record_key
from taihang.execution.state import state_key
from taihang.ledger.transaction import Transaction, decode_transaction
from taihang.node.exec_protocol import (
    FROM_WORKER,
    LENGTH_BYTES,
    TO_WORKER,
    BlockDone,
    ExecuteBlock,
    Halted,
    NodeMessage,
    Progress,
    Query,
    QueryDone,
    Read,
    ReadReply,
    Scan,
    ScanReply,
    WorkerMessage,
    frame,
    frame_length,
)

Reply = TypeVar("Reply", ReadReply, ScanReply)
CACHE_ENTRIES_MAX = 500_000
PROGRESS_INTERVAL_S = 0.5
FILES_MAX = 16  # the pipes and the interpreter's own; the worker opens nothing itself


class ProtocolError(Exception):
    """The node sent something out of order: a bug, never a contract's doing."""


class Pipe:
    """Blocking framed messages over the worker's two pipe descriptors."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.last_sent = time.monotonic()

    def send(self, message: WorkerMessage) -> None:
        data = memoryview(frame(FROM_WORKER.encode(message)))
        while data:
            written = os.write(self.write_fd, data)
            data = data[written:]
        self.last_sent = time.monotonic()

    def receive(self) -> NodeMessage | None:
        """The next message, or None when the node closed the pipe."""
        header = self._read_exact(LENGTH_BYTES)
        if header is None:
            return None
        payload = self._read_exact(frame_length(header))
        if payload is None:
            raise ProtocolError("the node closed the pipe in the middle of a message")
        return TO_WORKER.decode(payload)

    def _read_exact(self, count: int) -> bytes | None:
        chunks: list[bytes] = []
        remaining = count
        while remaining:
            chunk = os.read(self.read_fd, min(remaining, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)


class RemoteState:
    """A `StateReader` over the node's executed state, cached for one height."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.cache: dict[bytes, bytes | None] = {}
        self.height: int | None = None  # the executed height the cache reflects
        self.pending: tuple[int, dict[bytes, bytes | None]] | None = None

    def move_to(self, height: int) -> None:
        """Make the cache reflect the executed state at `height`."""
        if self.pending is not None and self.pending[0] == height:
            self.cache.update(self.pending[1])
        elif self.height != height:
            self.cache.clear()
        self.height, self.pending = height, None
        if len(self.cache) > CACHE_ENTRIES_MAX:
            self.cache.clear()

    def get(self, key: bytes) -> bytes | None:
        try:
            return self.cache[key]
        except KeyError:
            pass
        self.prefetch([key])
        return self.cache[key]

    def prefetch(self, keys: Iterable[bytes]) -> None:
        missing = list(dict.fromkeys(key for key in keys if key not in self.cache))
        if not missing:
            return
        self.pipe.send(Read(keys=missing))
        reply = self._expect(ReadReply)
        if len(reply.values) != len(missing):
            raise ProtocolError(f"asked for {len(missing)} values, got {len(reply.values)}")
        self.cache.update(zip(missing, reply.values, strict=True))

    def scan(self, prefix: bytes, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        self.pipe.send(Scan(prefix=prefix, after=after, limit=limit))
        items = self._expect(ScanReply).items
        for key, value in items:
            if not key.startswith(prefix) or (after is not None and key <= after):
                raise ProtocolError("a scan reply outside the requested range")
            self.cache[key] = value
        return items

    def _expect(self, kind: type[Reply]) -> Reply:
        message = self.pipe.receive()
        if not isinstance(message, kind):
            raise ProtocolError(f"expected {kind.__name__}, got {type(message).__name__}")
        return message


def prefetch_keys(txs: list[Transaction], builtins: Iterable[str]) -> list[bytes]:
    """The state every transaction of a block reads first: membership, nonce, contract record."""
    builtin = set(builtins)
    keys: list[bytes] = []
    for tx in txs:
        keys.append(state_key("members", f"member/{tx.sender}"))
        keys.append(nonce_key(tx.sender))
        if tx.body.contract not in builtin:
            keys.append(state_key(CONTRACTS_NAMESPACE, record_key(tx.body.contract)))
    return keys


class Worker:
    def __init__(self, pipe: Pipe, suite_name: str) -> None:
        self.pipe = pipe
        self.suite = get_suite(suite_name)
        self.executor = Executor(self.suite)
        self.state = RemoteState(pipe)

    def serve(self) -> None:
        while True:
            message = self.pipe.receive()
            if message is None:
                return
            if isinstance(message, ExecuteBlock):
                self.pipe.send(self.execute(message))
            elif isinstance(message, Query):
                self.pipe.send(self.query(message))
            else:
                raise ProtocolError(f"unexpected {type(message).__name__} between requests")

    def execute(self, request: ExecuteBlock) -> BlockDone:
        self.state.move_to(request.height - 1)
        txs = [decode_transaction(raw, self.suite) for raw in request.txs]
        self.state.prefetch(prefetch_keys(txs, self.executor.contracts))
        block = BlockContext(request.channel, request.height, request.timestamp_ms)
        result = self.executor.execute_block(self.state, block, txs, on_tx_done=self._progress)
        self.state.pending = (request.height, dict(result.writes))
        return BlockDone(
            receipts=result.receipts,
            writes=list(result.writes.items()),
            nonces=list(result.nonces.items()),
        )

    def _progress(self, done: int) -> None:
        if time.monotonic() - self.pipe.last_sent > PROGRESS_INTERVAL_S:
            self.pipe.send(Progress(txs_done=done))

    def query(self, request: Query) -> QueryDone:
        self.state.move_to(request.base_height)
        args = decode_value(bytes(request.args))
        if not isinstance(args, list):
            raise ProtocolError("query arguments must be a list")
        try:
            value = self.executor.query(
                self.state, request.contract, request.method, args, base_height=request.base_height
            )
        except ContractError as exc:
            return QueryDone(b"", "contract", exc.code, exc.message)
        except NotFound as exc:
            return QueryDone(b"", "not_found", exc.code, exc.message)
        except InvalidInput as exc:
            return QueryDone(b"", "input", exc.code, exc.message)
        return QueryDone(encode_value(value), "", "", "")


def limit_resources(memory_mb: int) -> None:
    """Cap the address space, refuse new processes and files, and write no core dumps."""
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILES_MAX, FILES_MAX))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="taihang.node.exec_worker")
    parser.add_argument("--suite", required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    options = parser.parse_args(argv)
    # The protocol owns the original stdin and stdout; anything printed goes to stderr.
    read_fd, write_fd = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    # Ctrl-C in the node's terminal reaches the whole process group: the node decides when
    # the worker stops (by closing the pipe), so an interrupt is not a halt.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pipe = Pipe(read_fd, write_fd)
    limit_resources(options.memory_mb)
    try:
        Worker(pipe, options.suite).serve()
    except BaseException as exc:  # a tripped limit or a bug: tell the node, then stop
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        with suppress(BaseException):  # into the node's log, for whoever reports the bug
            traceback.print_exc()
        del exc  # drop the traceback's frames: the memory they hold may be needed to reply
        with suppress(BaseException):  # if even this fails, the node reads EOF instead
            pipe.send(Halted(reason=reason))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
