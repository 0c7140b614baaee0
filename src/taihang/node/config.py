"""Node configuration (`config.toml` in the node home), validated at start-up."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec
import tomli_w

from taihang.constants import TX_BYTES_MAX
from taihang.errors import ConfigurationError


class BlockConfig(msgspec.Struct, forbid_unknown_fields=True):
    min_block_interval_ms: int = 50
    idle_block_interval_ms: int = 1000
    txs_max: int = 5000
    bytes_max: int = 4 * 1024 * 1024


class MempoolConfig(msgspec.Struct, forbid_unknown_fields=True):
    txs_max: int = 100_000
    bytes_max: int = 64 * 1024 * 1024
    per_sender_max: int = 256
    nonce_gap_max: int = 64


class ApiConfig(msgspec.Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8545
    batch_txs_max: int = 5000
    wait_timeout_ms_max: int = 60_000


class PeerConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Another node of the channel: its name in genesis and where its P2P port listens."""

    name: str
    host: str
    port: int


class P2PConfig(msgspec.Struct, forbid_unknown_fields=True):
    """The mutual-TLS transport between nodes (`taihang.net`); port 0: do not listen."""

    host: str = "127.0.0.1"
    port: int = 0
    peers: list[PeerConfig] = msgspec.field(default_factory=list)
    frame_bytes_max: int = 16 * 1024 * 1024  # above the largest block (8 MiB) with headroom
    peer_queue_frames_max: int = 20_000  # frames waiting per peer; beyond, new ones drop
    reconnect_ms_min: int = 100
    reconnect_ms_max: int = 5_000
    handshake_timeout_ms: int = 5_000
    charges_max: int = 100  # bad frames from a peer before it is disconnected for a while
    gossip_interval_ms: int = 10  # transactions are batched this long before gossip


class ConsensusTimingConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Jolteon timers (consensus spec, "Pacemaker"); block rhythm comes from [block]."""

    round_timeout_base_ms: int = 2_500
    network_allowance_ms: int = 500
    max_clock_drift_ms: int = 1_000
    block_request_retry_ms: int = 500
    # How far behind a node may fall and still catch up through block requests (the orphan
    # buffer is sized for it); further behind needs ledger sync.
    catchup_blocks_max: int = 1_000
    # Committed blocks the core keeps in memory to answer peers; older ones come from the store.
    committed_blocks_kept: int = 256


class ExecutionConfig(msgspec.Struct, forbid_unknown_fields=True):
    """The contract executor worker (node/exec_client.py): its safety nets, not its prices."""

    worker_memory_mb: int = 2048  # the worker's address-space limit
    watchdog_ms: int = 10_000  # the longest the worker may go without a message


class NodeConfig(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    channel: str
    key_file: str = "node_key.json"
    genesis_file: str = "genesis.json"
    data_dir: str = "data"
    tls_cert_file: str = "tls.pem"
    tls_key_file: str = "tls.key"
    verify_workers: int = 2
    log_level: str = "info"
    block: BlockConfig = msgspec.field(default_factory=BlockConfig)
    mempool: MempoolConfig = msgspec.field(default_factory=MempoolConfig)
    api: ApiConfig = msgspec.field(default_factory=ApiConfig)
    p2p: P2PConfig = msgspec.field(default_factory=P2PConfig)
    consensus: ConsensusTimingConfig = msgspec.field(default_factory=ConsensusTimingConfig)
    execution: ExecutionConfig = msgspec.field(default_factory=ExecutionConfig)


def validate_config(config: NodeConfig) -> None:
    block = config.block
    if (
        block.min_block_interval_ms < 1
        or block.idle_block_interval_ms < block.min_block_interval_ms
    ):
        raise ConfigurationError("block: need 1 <= min_block_interval_ms <= idle_block_interval_ms")
    if block.txs_max < 1 or block.bytes_max < TX_BYTES_MAX:
        # A block must fit the largest valid transaction, or one could stall the mempool.
        raise ConfigurationError(
            f"block: txs_max must be >= 1 and bytes_max >= {TX_BYTES_MAX} (the largest tx)"
        )
    pool = config.mempool
    if min(pool.txs_max, pool.bytes_max, pool.per_sender_max) < 1 or pool.nonce_gap_max < 0:
        raise ConfigurationError("mempool: limits must be positive")
    if not 0 < config.api.port < 65536:
        raise ConfigurationError(f"api: port {config.api.port} out of range")
    p2p = config.p2p
    for port, what in [(p2p.port, "p2p.port"), *((p.port, f"peer {p.name}") for p in p2p.peers)]:
        if not 0 <= port < 65536 or (port == 0 and what != "p2p.port"):
            raise ConfigurationError(f"{what}: port {port} out of range")
    if len({p.name for p in p2p.peers}) != len(p2p.peers) or config.name in {
        p.name for p in p2p.peers
    }:
        raise ConfigurationError("p2p.peers: names must be unique and not the node's own")
    if min(p2p.frame_bytes_max, p2p.peer_queue_frames_max, p2p.charges_max) < 1:
        raise ConfigurationError("p2p: limits must be positive")
    if not 1 <= p2p.reconnect_ms_min <= p2p.reconnect_ms_max:
        raise ConfigurationError("p2p: need 1 <= reconnect_ms_min <= reconnect_ms_max")
    if min(config.consensus.catchup_blocks_max, config.consensus.committed_blocks_kept) < 1:
        raise ConfigurationError(
            "consensus: catchup_blocks_max and committed_blocks_kept must be positive"
        )
    execution = config.execution
    if execution.worker_memory_mb < 256 or execution.watchdog_ms < 100:
        raise ConfigurationError(
            "execution: worker_memory_mb must be at least 256 and watchdog_ms at least 100"
        )
    if not 1 <= config.verify_workers <= 64:
        raise ConfigurationError("verify_workers must be between 1 and 64")
    if config.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigurationError(f"log_level {config.log_level!r} is not a level")


def load_config(path: Path) -> NodeConfig:
    try:
        data = tomllib.loads(path.read_text())
        config = msgspec.convert(data, NodeConfig)
    except FileNotFoundError:
        raise ConfigurationError(f"no node config at {path}") from None
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ConfigurationError(f"{path}: {exc}") from None
    validate_config(config)
    return config


def save_config(path: Path, config: NodeConfig) -> None:
    path.write_text(tomli_w.dumps(msgspec.to_builtins(config)))
