"""The single-validator node runtime: API, admission, block production and execution.

Theory of operation. One asyncio loop owns the mempool and the producer; two kinds of worker
do the heavy lifting off the loop:
  - verifier threads decode and check signatures of submitted transactions (`verify.py`);
  - one executor thread executes committed blocks in height order and writes each ledger
    batch (`Chain.execute`), then reports back to the loop.
The producer takes ready transactions from the mempool, builds block h on the tip with QC(h-1)
and the latest exec_root allowed, certifies it with the node key, persists block and QC with
fsync (commit), and queues it for execution. A client sees a transaction as committed once its
receipt is readable, i.e. after the ledger batch of its height is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from taihang.codec import decode, encode
from taihang.consensus.solo import build_block, certify_block, compute_exec_height
from taihang.errors import ConfigurationError, InvalidInput, InvalidSignature, TaihangError
from taihang.execution.executor import find_member, get_account_nonce
from taihang.ledger.block import Block, BlockHeader
from taihang.ledger.transaction import (
    Transaction,
    decode_transaction,
    validate_transaction_context,
)
from taihang.mempool import Mempool, MempoolLimits
from taihang.node.chain import Chain, ExecutedBlock
from taihang.node.config import NodeConfig
from taihang.node.driver import ConsensusDriver, find_observer_addresses
from taihang.node.exec_client import ExecutorProcess
from taihang.node.gossip import TxGossip, decode_gossip
from taihang.node.home import NodeHome
from taihang.node.logs import configure_logging, log, now_ms
from taihang.node.metrics import NodeMetrics
from taihang.node.safety import (
    SAFETY_INTERVAL_ROUNDS,
    save_safety_record,
    validate_store_against_safety,
)
from taihang.node.verify import VerifiedIds, VerifierPool
from taihang.sdk.keys import LoadedKey, load_key

logger = logging.getLogger("taihang.node")
SUBMIT_TIMES_MAX = 200_000  # latency bookkeeping for transactions not yet executed
EXEC_BACKLOG_MAX = 8  # committed-but-unexecuted blocks before the producer waits
VERIFIED_IDS_MAX = 1_000_000  # ids whose signatures this node checked (about 100 MB at most)


@dataclass
class KeySigner:
    key: LoadedKey

    @property
    def address(self) -> str:
        return self.key.address

    def sign(self, message: bytes) -> bytes:
        from taihang.crypto import get_suite

        return get_suite(self.key.suite).sign(self.key.seed, message)


def bind_api_socket(host: str, port: int) -> socket.socket:
    """Bind the API port up front, so a taken port is a clear start-up error."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port} for the API: {exc}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the node owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Node:
    def __init__(self, home: NodeHome) -> None:
        self.home = home
        self.config: NodeConfig = home.load_config()
        self.genesis = home.load_genesis(self.config)
        if self.genesis.channel != self.config.channel:
            raise ConfigurationError(
                f"config channel {self.config.channel!r} differs from genesis "
                f"{self.genesis.channel!r}"
            )
        self.key = load_key(home.path / self.config.key_file)
        self.signer = KeySigner(self.key)
        pool = self.config.mempool
        self.mempool = Mempool(
            MempoolLimits(
                txs_max=pool.txs_max,
                bytes_max=pool.bytes_max,
                per_sender_max=pool.per_sender_max,
                nonce_gap_max=pool.nonce_gap_max,
            )
        )
        self.metrics = NodeMetrics(channel=self.genesis.channel, crypto=self.genesis.crypto)
        self.chain: Chain | None = None
        self.verifier: VerifierPool | None = None
        self.driver: ConsensusDriver | None = None  # several validators: the BFT driver
        self.gossip: TxGossip | None = None
        self._verified = VerifiedIds(VERIFIED_IDS_MAX)
        self._members: set[str] = set()
        self._tx_event = asyncio.Event()
        self._executed_event = asyncio.Event()
        self._stopping = asyncio.Event()
        self._exec_queue: queue.Queue[tuple[int, list[Transaction] | None] | None] = queue.Queue()
        self._exec_error: BaseException | None = None
        self._executed_height = -1
        self._safety_round = 0
        self._submit_times: dict[bytes, float] = {}
        self._last_commit_ms: int | None = None
        self.started_ms = now_ms()

    # --- lifecycle ------------------------------------------------------------------------
    def run(self) -> None:
        configure_logging(self.config.log_level)
        try:
            import uvloop

            uvloop.install()
        except ImportError:  # uvloop is optional; asyncio's loop works, slower
            pass
        asyncio.run(self.main())

    async def main(self) -> None:
        self.home.acquire_lock()
        try:
            await self._serve()
        finally:
            self.home.release_lock()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        api_socket = bind_api_socket(self.config.api.host, self.config.api.port)
        try:
            self.chain = await asyncio.to_thread(self._open_chain)
            try:
                self._check_may_sign(self.chain)
                await self._run(loop, self.chain, api_socket)
            finally:
                self.chain.close()
        finally:
            api_socket.close()

    def _open_chain(self) -> Chain:
        """The store, with contracts executed in a keyless worker process under limits."""
        execution = self.config.execution
        executor = ExecutorProcess(
            self.genesis.crypto,
            memory_mb=execution.worker_memory_mb,
            watchdog_s=execution.watchdog_ms / 1000,
        )
        try:
            return Chain.open(self.home.data_path(self.config), self.genesis, executor)
        except BaseException:
            executor.close()
            raise

    def _check_may_sign(self, chain: Chain) -> None:
        if self.key.address not in chain.validators.by_address:
            observers = find_observer_addresses(chain.genesis, chain.suite)
            if self.key.address in observers and len(chain.validators.members) > 1:
                return  # an observer follows the chain and never signs
            raise ConfigurationError(
                f"this node's key {self.key.address} is neither a validator nor an observer "
                "in genesis"
            )
        if len(chain.validators.members) > 1:
            return  # the consensus driver keeps per-vote safety data (node/driver.py)
        self._safety_round = validate_store_against_safety(
            self.home.path, chain.highest_qc.vote_data.round
        )

    async def _run(
        self, loop: asyncio.AbstractEventLoop, chain: Chain, api_socket: socket.socket
    ) -> None:
        """Start the executor thread, the API and the producer; stop them in reverse order."""
        from taihang.api.app import build_app

        self.verifier = VerifierPool(chain.suite, self.config.verify_workers)
        if len(chain.validators.members) > 1:
            self.driver = ConsensusDriver(self, chain)
            self.gossip = TxGossip(self.driver.transport, self.config.p2p.gossip_interval_ms)
        self._executed_height = chain.executed_height
        self.metrics.watch(
            chain_height=lambda: chain.tip_height,
            executed_height=lambda: self._executed_height,
            mempool_txs=lambda: len(self.mempool),
            mempool_bytes=lambda: self.mempool.bytes_total,
        )
        if self.driver is not None:
            driver = self.driver
            self.metrics.watch_consensus(
                round=lambda: driver.core.round if driver.core is not None else 0,
                peers=lambda: len(driver.transport.connected_peers()),
                p2p_stats=lambda: driver.transport.stats,
            )
        exec_thread = threading.Thread(target=self._execute_loop, args=(loop,), name="execute")
        exec_thread.start()
        for height in chain.store.committed_heights():
            self._exec_queue.put((height, None))  # recovery: re-execute committed blocks
        server = _Server(
            uvicorn.Config(build_app(self), log_level="warning", access_log=False, lifespan="off")
        )
        log(
            logger,
            "node_started",
            name=self.config.name,
            channel=self.genesis.channel,
            height=chain.tip_height,
            executed_height=self._executed_height,
            api=f"http://{self.config.api.host}:{self.config.api.port}",
        )
        try:
            async with asyncio.TaskGroup() as group:
                api_task = group.create_task(server.serve(sockets=[api_socket]))
                if self.driver is not None:
                    group.create_task(self.driver.run())
                else:
                    group.create_task(self._produce_loop())
                await self._stopping.wait()
                server.should_exit = True
                await api_task
        finally:
            self._exec_queue.put(None)
            await asyncio.to_thread(exec_thread.join)
            if self.driver is None:
                await asyncio.to_thread(
                    save_safety_record, self.home.path, chain.highest_qc.vote_data.round
                )
            self.verifier.close()
            log(logger, "node_stopped", name=self.config.name)
        if self._exec_error is not None:
            raise SystemExit(f"execution halted: {self._exec_error}")

    @property
    def is_stopping(self) -> bool:
        """True once a stop was requested: long-lived streams should end now."""
        return self._stopping.is_set()

    def stop(self) -> None:
        log(logger, "stop_requested")
        self._stopping.set()
        self._tx_event.set()
        if self.driver is not None:
            self.driver.wake()

    # --- admission ------------------------------------------------------------------------
    async def submit(self, raws: list[bytes]) -> list[bytes | TaihangError]:
        """Check and admit transactions; the result per transaction is its id or its error."""
        assert self.verifier is not None and self.chain is not None
        checked = await self.verifier.check(raws, self._verified)
        results: list[bytes | TaihangError] = []
        accepted: list[bytes] = []
        next_height = self.chain.tip_height + 1
        received = time.monotonic()
        for item in checked:
            if isinstance(item, InvalidInput):
                self.metrics.tx_rejected(item.code)
                results.append(item)
                continue
            try:
                self._admit(item, next_height)
            except InvalidInput as exc:
                self.metrics.tx_rejected(exc.code)
                results.append(exc)
            else:
                self._verified.add(item.id)
                accepted.append(item.raw)
                self._submit_times[item.id] = received
                if len(self._submit_times) > SUBMIT_TIMES_MAX:  # expired txs never execute
                    for stale in list(self._submit_times)[: SUBMIT_TIMES_MAX // 2]:
                        del self._submit_times[stale]
                results.append(item.id)
        if self.mempool.has_ready():
            self._tx_event.set()
        self.metrics.mempool_size(len(self.mempool))
        if self.gossip is not None and accepted:
            self.gossip.add(accepted)
        return results

    def receive_gossip(self, peer: str, body: bytes) -> None:
        """Transactions a peer gossiped: checked and admitted like submitted ones, not re-sent."""
        try:
            raws = decode_gossip(body)
        except InvalidInput as exc:
            if self.driver is not None:
                self.driver.transport.charge(peer, f"bad transaction gossip: {exc.message}")
            return
        asyncio.get_running_loop().create_task(self._admit_gossip(peer, raws))

    def restore_transactions(self, raws: list[bytes]) -> None:
        """Put back the transactions of a block that lost a fork (those this node verified)."""
        assert self.chain is not None
        txs = []
        for raw in raws:
            try:
                tx = decode_transaction(raw, self.chain.suite)
            except InvalidInput:
                continue
            if tx.id in self._verified:  # others were never admitted here
                txs.append(tx)
        senders = {tx.sender for tx in txs}
        nonces: dict[str, int] = {s: get_account_nonce(self.chain.tree, s) for s in senders}
        left_out = self.mempool.restore(
            txs, account_nonces=nonces, next_height=self.chain.tip_height + 1
        )
        log(logger, "txs_restored", logging.DEBUG, restored=len(txs) - len(left_out))
        if self.mempool.has_ready():
            self._tx_event.set()

    async def _admit_gossip(self, peer: str, raws: list[bytes]) -> None:
        assert self.verifier is not None and self.chain is not None
        checked = await self.verifier.check(raws, self._verified)
        next_height = self.chain.tip_height + 1
        for item in checked:
            if isinstance(item, InvalidInput):
                if isinstance(item, InvalidSignature) and self.driver is not None:
                    self.driver.transport.charge(peer, "gossiped a tx with a bad signature")
                continue
            self._verified.add(item.id)
            with contextlib.suppress(InvalidInput):  # duplicates and stale nonces are normal
                self._admit(item, next_height)
        if self.mempool.has_ready():
            self._tx_event.set()

    def _admit(self, tx: Transaction, next_height: int) -> None:
        assert self.chain is not None
        validate_transaction_context(tx, self.genesis.channel, next_height)
        if tx.sender not in self._members:
            if find_member(self.chain.tree, tx.sender) is None:
                raise InvalidInput(
                    f"sender {tx.sender} is not a member of channel {self.genesis.channel}",
                    code="unknown_sender",
                )
            self._members.add(tx.sender)
        nonce = get_account_nonce(self.chain.tree, tx.sender)
        self.mempool.add(tx, account_nonce=nonce, next_height=next_height)

    def next_nonce(self, address: str) -> int:
        assert self.chain is not None
        return self.mempool.expected_nonce(address, get_account_nonce(self.chain.tree, address))

    # --- production -----------------------------------------------------------------------
    async def _produce_loop(self) -> None:
        assert self.chain is not None
        block_cfg = self.config.block
        last_ms = now_ms()
        while not self._stopping.is_set():
            idle_deadline = last_ms + block_cfg.idle_block_interval_ms
            # Only ready transactions make a block worth making early; gapped ones wait.
            if not self.mempool.has_ready():
                self._tx_event.clear()
                timeout = max(0, idle_deadline - now_ms()) / 1000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._tx_event.wait(), timeout)
                if self._stopping.is_set():
                    return
            wait_ms = last_ms + block_cfg.min_block_interval_ms - now_ms()
            if wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000)
            while self.chain.tip_height - self._executed_height > EXEC_BACKLOG_MAX:
                self._executed_event.clear()
                await self._executed_event.wait()
            last_ms = now_ms()
            await self._produce_block(last_ms)

    async def _produce_block(self, timestamp_ms: int) -> None:
        chain = self.chain
        assert chain is not None
        height = chain.tip_height + 1
        self.mempool.remove_expired(height)  # gapped txs past expiry would never leave
        txs = self.mempool.take(self.config.block.txs_max, self.config.block.bytes_max, height)
        parent_raw = chain.store.find_block(chain.tip_height)
        assert parent_raw is not None, "the tip block is stored"
        parent: BlockHeader = decode(parent_raw, Block).header
        exec_height = compute_exec_height(height, self._executed_height, parent.exec_root.height)
        block = build_block(
            parent=parent,
            parent_id=chain.tip_id,
            parent_qc=chain.highest_qc,
            transactions=[tx.raw for tx in txs],
            exec_root=chain.exec_root_for(exec_height),
            timestamp_ms=timestamp_ms,
            proposer=self.signer.address,
            validator_set_hash=chain.validators.hash,
            suite=chain.suite,
        )
        qc = certify_block(block.header, self.signer, chain.validators, chain.suite)
        started = time.monotonic()
        await asyncio.to_thread(chain.commit, height, encode(block), qc.vote_data.block_id, qc)
        self.metrics.block_committed(height, len(txs), time.monotonic() - started)
        self._last_commit_ms = now_ms()
        if (
            qc.vote_data.round >= self._safety_round + SAFETY_INTERVAL_ROUNDS
            or not self._safety_round
        ):
            await asyncio.to_thread(save_safety_record, self.home.path, qc.vote_data.round)
            self._safety_round = qc.vote_data.round
        self._exec_queue.put((height, txs))

    # --- execution (its own thread) -------------------------------------------------------
    def enqueue_execution(self, height: int) -> None:
        """Queue committed block `height` for the executor thread (heights in order)."""
        self._exec_queue.put((height, None))

    def _execute_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.chain is not None
        while True:
            item = self._exec_queue.get()
            if item is None:
                return
            height, txs = item
            if height <= self.chain.executed_height:
                continue  # queued twice during recovery
            started = time.monotonic()
            try:
                executed = self.chain.execute(height, txs, is_verified=self._verified.__contains__)
            except BaseException as exc:  # halt: never invent a receipt or skip a height
                self._exec_error = exc
                logger.exception("execution_failed", extra={"fields": {"height": height}})
                loop.call_soon_threadsafe(self.stop)
                return
            self.metrics.block_execute_duration(time.monotonic() - started)
            loop.call_soon_threadsafe(self._on_executed, executed)

    def _on_executed(self, executed: ExecutedBlock) -> None:
        self._executed_height = executed.height
        self.mempool.mark_executed(executed.result.nonces)
        if self.mempool.has_ready():
            self._tx_event.set()  # execution may have made gapped transactions ready
        now = time.monotonic()
        latencies = []
        for tx in executed.txs:
            submitted = self._submit_times.pop(tx.id, None)
            if submitted is not None:
                latencies.append(now - submitted)
        self.metrics.block_executed(executed, latencies)
        if self.driver is not None:
            self.driver.on_executed(executed)
        self._executed_event.set()
        self._executed_event = asyncio.Event()

    async def wait_executed(self, timeout_s: float) -> bool:
        """Wait until the next block is executed, or the timeout passes."""
        event = self._executed_event
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    @property
    def executed_height(self) -> int:
        return self._executed_height

    def consensus_info(self) -> dict[str, Any]:
        """What `GET /status` reports about consensus: round, leader, peers, last commit."""
        if self.driver is not None:
            return self.driver.info()
        chain = self.chain
        return {
            "round": chain.highest_qc.vote_data.round if chain is not None else 0,
            "leader": self.signer.address,  # the single validator leads every round
            "peers": [],
            "last_commit_ms": self._last_commit_ms,
        }
