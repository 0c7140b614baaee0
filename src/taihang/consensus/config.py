"""Consensus parameters: timers, block rhythm and limits (consensus spec, "Pacemaker").

One frozen value per channel, checked once at start-up by `validate()`, so a node never runs
with a pacemaker that would time out every idle round or a limit that is zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from taihang.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    """Everything the core needs besides the validator set, the keys and the genesis block.

    Times are milliseconds of the driver's clock. The defaults suit a LAN (spec: a 2,500 ms
    base with a 1,000 ms idle interval); the simulator uses shorter ones.
    """

    channel: str
    epoch: int = 0
    # Round timer: base * backoff ** min(max(0, r - committed_round - 3), exponent_max).
    round_timeout_base_ms: int = 2_500
    round_timeout_backoff: float = 1.5
    round_timeout_backoff_exponent_max: int = 6
    # The leader of a round waits this many times longer before it times out (Aptos
    # `setup_leader_timeout`): it is the one node whose proposal the round depends on.
    leader_timeout_multiplier: int = 2
    # Proposal rhythm: with transactions waiting, batch them for at most `min_block_interval_ms`;
    # with none, send an empty block after `idle_block_interval_ms` so that uncommitted blocks
    # complete their 2-chain and an idle chain still beats.
    min_block_interval_ms: int = 50
    idle_block_interval_ms: int = 1_000
    # What a round needs on top of the idle interval twice over: one-way latencies and queues.
    network_allowance_ms: int = 500
    max_clock_drift_ms: int = 1_000
    block_txs_max: int = 10_000
    block_bytes_max: int = 8 * 1024 * 1024
    blocks_request_max: int = 64
    # Broadcast votes (every node forms the QC itself: 1 delta less to commit, n^2 messages) for
    # sets up to this size; above it, votes go to the next leader only.
    vote_broadcast_validators_max: int = 20
    # A block request that has not been answered after this long goes to another peer.
    block_request_retry_ms: int = 500
    block_requests_outstanding_max: int = 16
    # Committed blocks kept in memory to answer block requests of peers that fell behind (the
    # ledger sync of the spec covers deeper gaps once it exists).
    committed_blocks_kept: int = 1_024
    # Blocks whose ancestors have not arrived yet (catch-up responses, early proposals).
    orphan_blocks_max: int = 2_048
    # Proposals waiting for a missing parent, to re-drive when it arrives.
    pending_proposals_max: int = 64
    # Votes are counted for rounds up to this far ahead of the node's round (reordering).
    vote_rounds_ahead_max: int = 3

    def validate(self) -> None:
        """Raise `ConfigurationError` naming the first parameter that cannot work."""
        positive = {
            "round_timeout_base_ms": self.round_timeout_base_ms,
            "leader_timeout_multiplier": self.leader_timeout_multiplier,
            "min_block_interval_ms": self.min_block_interval_ms,
            "idle_block_interval_ms": self.idle_block_interval_ms,
            "max_clock_drift_ms": self.max_clock_drift_ms,
            "block_txs_max": self.block_txs_max,
            "block_bytes_max": self.block_bytes_max,
            "blocks_request_max": self.blocks_request_max,
            "block_request_retry_ms": self.block_request_retry_ms,
            "block_requests_outstanding_max": self.block_requests_outstanding_max,
            "committed_blocks_kept": self.committed_blocks_kept,
            "orphan_blocks_max": self.orphan_blocks_max,
            "pending_proposals_max": self.pending_proposals_max,
            "vote_rounds_ahead_max": self.vote_rounds_ahead_max,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigurationError(f"consensus: {name} must be positive, not {value}")
        if not self.channel:
            raise ConfigurationError("consensus: channel must not be empty")
        if self.epoch < 0 or self.network_allowance_ms < 0:
            raise ConfigurationError("consensus: epoch and network_allowance_ms must be >= 0")
        if self.round_timeout_backoff < 1 or self.round_timeout_backoff_exponent_max < 0:
            raise ConfigurationError("consensus: backoff must be >= 1 with an exponent cap >= 0")
        if self.min_block_interval_ms > self.idle_block_interval_ms:
            raise ConfigurationError(
                "consensus: min_block_interval_ms must not exceed idle_block_interval_ms"
            )
        required_ms = 2 * self.idle_block_interval_ms + self.network_allowance_ms
        if self.round_timeout_base_ms < required_ms:
            raise ConfigurationError(
                f"consensus: round_timeout_base_ms {self.round_timeout_base_ms} is below "
                f"2 x idle_block_interval_ms + network_allowance_ms = {required_ms}; "
                "an idle chain would time out every round"
            )
