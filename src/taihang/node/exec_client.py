"""The node's side of the contract executor worker: a `BlockExecutor` in another process.

`ExecutorProcess` starts `python -m taihang.node.exec_worker` with a scrubbed environment and
no inherited descriptors but its two pipes, sends it one request at a time, serves its state
reads from the chain's executed state while it runs, and waits for each message under a
watchdog. The worker holds no keys; the node keeps the store and every signature.

Failure policy. A contract's failure is a receipt, decided inside the worker. Everything else
(the worker halts on a tripped memory limit or a bug, dies, goes silent past the watchdog, or
sends something malformed) is `ExecutorHalted`: during a block it halts the node, because a
receipt written now might differ from every other node's; during a query it fails that query,
and the next request starts a fresh worker.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading

import msgspec

from taihang.codec import Value, decode_value, encode_value
from taihang.errors import ContractReverted, InvalidInput, NotFound, TaihangError
from taihang.execution import BlockContext, BlockResult, StateReader
from taihang.ledger.transaction import Transaction
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

MEMORY_MB_DEFAULT = 2048
WATCHDOG_S_DEFAULT = 10.0
SCAN_LIMIT_MAX = 10_000
# Variables the worker may inherit: enough to find Python and its packages, nothing else.
_ENV_KEPT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT")


class ExecutorHalted(TaihangError):
    """The contract executor stopped for a reason no contract may cause; the node halts."""

    code = "executor_halted"


class _Channel:
    """Framed messages to and from one worker, every wait bounded by the watchdog."""

    def __init__(self, process: subprocess.Popen[bytes], watchdog_s: float) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.watchdog_s = watchdog_s
        self.write_fd = process.stdin.fileno()
        self.read_fd = process.stdout.fileno()
        os.set_blocking(self.write_fd, False)
        self._buffer = bytearray()
        # poll, not select: a busy node's descriptors may be numbered past select's 1,024.
        self._readable = select.poll()
        self._readable.register(self.read_fd, select.POLLIN)
        self._writable = select.poll()
        self._writable.register(self.write_fd, select.POLLOUT)

    def send(self, message: NodeMessage) -> None:
        data = memoryview(frame(TO_WORKER.encode(message)))
        while data:
            self._wait(readable=False)
            try:
                written = os.write(self.write_fd, data)
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise self._died() from None
            data = data[written:]

    def receive(self) -> WorkerMessage:
        try:
            length = frame_length(self._read_exact(LENGTH_BYTES))
        except ValueError as exc:
            raise ExecutorHalted(f"the contract executor sent a malformed frame: {exc}") from None
        try:
            return FROM_WORKER.decode(self._read_exact(length))
        except InvalidInput as exc:
            raise ExecutorHalted(f"the contract executor sent a malformed message: {exc}") from None

    def _read_exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._wait(readable=True)
            chunk = os.read(self.read_fd, max(count - len(self._buffer), 1 << 16))
            if not chunk:
                raise self._died()
            self._buffer += chunk
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _wait(self, *, readable: bool) -> None:
        poller = self._readable if readable else self._writable
        if not poller.poll(self.watchdog_s * 1000):  # an error or hang-up also wakes it
            raise ExecutorHalted(
                f"the contract executor was silent for {self.watchdog_s:g} s (watchdog): "
                "an operation costs far more time than its gas"
            )

    def _died(self) -> ExecutorHalted:
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        return ExecutorHalted(f"the contract executor exited unexpectedly (exit code {code})")


class ExecutorProcess:
    """A `BlockExecutor` whose contracts run in a keyless worker process with resource limits."""

    def __init__(
        self,
        suite_name: str,
        *,
        memory_mb: int = MEMORY_MB_DEFAULT,
        watchdog_s: float = WATCHDOG_S_DEFAULT,
        env: dict[str, str] | None = None,
    ) -> None:
        self.suite_name = suite_name
        self.memory_mb = memory_mb
        self.watchdog_s = watchdog_s
        self.extra_env = dict(env or {})
        self._lock = threading.Lock()  # one request at a time
        self._channel: _Channel | None = None
        self._closed = False
        self.starts = 0
        self._start()

    @property
    def pid(self) -> int | None:
        return None if self._channel is None else self._channel.process.pid

    def _start(self) -> None:
        env = {key: os.environ[key] for key in _ENV_KEPT if key in os.environ}
        env.update(self.extra_env)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taihang.node.exec_worker",
                "--suite",
                self.suite_name,
                "--memory-mb",
                str(self.memory_mb),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self._channel = _Channel(process, self.watchdog_s)
        self.starts += 1

    def _stop_worker(self) -> None:
        channel, self._channel = self._channel, None
        if channel is None:
            return
        process = channel.process
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop_worker()

    def execute_block(
        self, state: StateReader, block: BlockContext, txs: list[Transaction]
    ) -> BlockResult:
        request = ExecuteBlock(
            channel=block.channel,
            height=block.height,
            timestamp_ms=block.timestamp_ms,
            txs=[tx.raw for tx in txs],
        )
        done = self._exchange(request, state, BlockDone)
        assert isinstance(done, BlockDone)
        if len(done.receipts) != len(txs):
            raise ExecutorHalted(
                f"the contract executor returned {len(done.receipts)} receipts for {len(txs)} "
                "transactions"
            )
        return BlockResult(
            receipts=list(done.receipts), writes=dict(done.writes), nonces=dict(done.nonces)
        )

    def query(
        self,
        state: StateReader,
        contract: str,
        method: str,
        args: list[Value],
        *,
        base_height: int,
    ) -> Value:
        request = Query(
            base_height=base_height,
            contract=contract,
            method=method,
            args=msgspec.Raw(encode_value(args)),
        )
        done = self._exchange(request, state, QueryDone)
        assert isinstance(done, QueryDone)
        if done.error_kind == "contract":
            raise ContractReverted(done.error_message, code=done.error_code)
        if done.error_kind == "not_found":
            raise NotFound(done.error_message, code=done.error_code)
        if done.error_kind:
            raise InvalidInput(done.error_message, code=done.error_code)
        try:
            return decode_value(done.value)
        except InvalidInput as exc:
            raise ExecutorHalted(f"the contract executor sent a malformed value: {exc}") from None

    def _exchange(
        self,
        request: ExecuteBlock | Query,
        state: StateReader,
        final: type[BlockDone] | type[QueryDone],
    ) -> WorkerMessage:
        with self._lock:
            if self._closed:
                raise ExecutorHalted("the contract executor is closed")
            if self._channel is None:
                self._start()
            channel = self._channel
            assert channel is not None
            try:
                channel.send(request)
                return self._serve_until(channel, state, final)
            except BaseException:
                self._stop_worker()  # never reuse a worker in an unknown state
                raise

    def _serve_until(
        self,
        channel: _Channel,
        state: StateReader,
        final: type[BlockDone] | type[QueryDone],
    ) -> WorkerMessage:
        while True:
            message = channel.receive()
            if isinstance(message, final):
                return message
            if isinstance(message, Read):
                channel.send(ReadReply(values=[state.get(key) for key in message.keys]))
            elif isinstance(message, Scan):
                limit = min(max(message.limit, 0), SCAN_LIMIT_MAX)
                items = state.scan(message.prefix, message.after, limit)
                channel.send(ScanReply(items=items))
            elif isinstance(message, Progress):
                continue
            elif isinstance(message, Halted):
                raise ExecutorHalted(f"the contract executor halted: {message.reason}")
            else:
                raise ExecutorHalted(
                    f"the contract executor sent {type(message).__name__} out of turn"
                )
