"""The simulated cluster: keys, validator set, genesis block, timing, and the core binding.

Everything here is derived from the run's seed and flags, so two runs with the same inputs
build byte-identical clusters. Node `i` is validator `i` of the set ordered by address, which is
also the leader order and the signer-bitmap order, so traces name nodes by that index.

`ConsensusBinding` is the one seam between the simulator and a consensus implementation: it
builds a core for a node from that node's simulated disk, runs the verifier stage on a decoded
message, and says how long the longest round timeout can be (the healed phase is sized from
it). The real Jolteon binding lives in `taihang.sim.jolteon`; tests plug in toy cores the same
way, by a `module:attribute` string, so a binding can cross into worker processes by name.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from taihang.constants import PROTOCOL_VERSION
from taihang.crypto import CryptoSuite, get_suite
from taihang.crypto.merkle import compute_root
from taihang.ledger.block import (
    ZERO_HASH,
    Block,
    BlockHeader,
    ExecRoot,
    Validator,
    ValidatorSet,
    build_genesis_qc,
    compute_block_id,
)
from taihang.ledger.transaction import compute_address
from taihang.sim.fake_crypto import FAKE

if TYPE_CHECKING:
    from taihang.consensus.events import Action, Event
    from taihang.consensus.messages import ConsensusMessage
    from taihang.sim.node import SimDisk, SimPayload

SIM_CHANNEL: Final = "sim"
# Simulated time starts at a realistic Unix time in ms, so timestamp rules see ordinary values.
SIM_START_MS: Final = 1_700_000_000_000
SIM_SUITES: Final = ("fake", "ed25519", "sm")
DEFAULT_BINDING: Final = "taihang.sim.jolteon:JolteonBinding"


def get_sim_suite(name: str) -> CryptoSuite:
    """The suite for `--crypto`: "fake" (simulator only) or a real one by its name."""
    if name == "fake":
        return FAKE
    return get_suite(name)


@dataclass(frozen=True, slots=True)
class SimTiming:
    """Simulated timer parameters and phase lengths, shared by every node of a run.

    The healed phase must last at least `HEALED_TIMEOUTS_MIN` times the longest round timeout
    the core can arm, or a seed whose pacemaker backed off to the cap during the faulty phase
    would fail the liveness check for no real reason; `compute_healed_ms` enforces it.
    """

    round_timeout_base_ms: int = 200
    idle_block_interval_ms: int = 50
    min_block_interval_ms: int = 10
    network_allowance_ms: int = 100  # base >= 2 x idle + allowance (ConsensusConfig.validate)
    max_clock_drift_ms: int = 500
    block_request_retry_ms: int = 250  # a round trip at the worst healed latency, and then some
    faulty_ms: int = 8_000
    healed_ms_min: int = 8_000


HEALED_TIMEOUTS_MIN: Final = 4


def compute_healed_ms(timing: SimTiming, round_timeout_max_ms: int) -> int:
    """The healed phase length: at least 4x the longest round timeout (asserted)."""
    healed_ms = max(timing.healed_ms_min, HEALED_TIMEOUTS_MIN * round_timeout_max_ms)
    assert healed_ms >= HEALED_TIMEOUTS_MIN * round_timeout_max_ms, "healed phase too short"
    return healed_ms


@dataclass(frozen=True, slots=True)
class Cluster:
    suite: CryptoSuite
    channel: str
    key_seeds: tuple[bytes, ...]  # node i's private key seed
    validators: ValidatorSet
    genesis: Block
    genesis_id: bytes
    timing: SimTiming

    @property
    def size(self) -> int:
        return len(self.key_seeds)

    @property
    def fault_tolerance(self) -> int:
        """f = (n - 1) // 3 with equal weights: how many nodes may be Byzantine (or wiped)."""
        return (self.size - 1) // 3

    def address(self, node: int) -> str:
        return self.validators.members[node].address


def build_cluster(seed: int, nodes: int, suite: CryptoSuite, timing: SimTiming) -> Cluster:
    """Keys derived from the seed (so leader order varies by seed), set, genesis block."""
    seeds = [
        hashlib.sha256(b"taihang-sim-key" + seed.to_bytes(8, "big") + i.to_bytes(2, "big")).digest()
        for i in range(nodes)
    ]
    keyed = sorted(
        ((compute_address(suite, suite.public_key_from_seed(s)), s) for s in seeds),
        key=lambda pair: pair[0],
    )
    members = [
        Validator(address=address, public_key=suite.public_key_from_seed(s), weight=1)
        for address, s in keyed
    ]
    validators = ValidatorSet(members, suite.tagged_hash)
    genesis = build_sim_genesis(suite, validators)
    return Cluster(
        suite=suite,
        channel=SIM_CHANNEL,
        key_seeds=tuple(s for _, s in keyed),
        validators=validators,
        genesis=genesis,
        genesis_id=compute_block_id(suite, genesis.header),
        timing=timing,
    )


def build_sim_genesis(suite: CryptoSuite, validators: ValidatorSet) -> Block:
    """Height 0 as `ledger.genesis.build_genesis_block` makes it, without a genesis document."""
    empty_root = compute_root([], suite.hash)
    header = BlockHeader(
        protocol_version=PROTOCOL_VERSION,
        channel=SIM_CHANNEL,
        epoch=0,
        round=0,
        height=0,
        parent_id=ZERO_HASH,
        timestamp_ms=SIM_START_MS,
        proposer="",
        tx_root=empty_root,
        exec_root=ExecRoot(
            height=0, state_root=compute_genesis_state_root(suite), receipts_root=empty_root
        ),
        validator_set_hash=validators.hash,
        qc=build_genesis_qc(SIM_CHANNEL, ZERO_HASH),
    )
    return Block(header=header, transactions=[])


def compute_genesis_state_root(suite: CryptoSuite) -> bytes:
    return suite.tagged_hash(b"taihang/sim/state", b"genesis")


class Core(Protocol):
    """What the simulator drives: the sans-IO consensus core's single entry."""

    def handle(self, event: Event) -> list[Action]: ...


class ConsensusBinding(Protocol):
    """How the simulator builds, feeds and sizes a consensus implementation.

    A binding whose cores commit by the 2-chain rule may also set `two_chain_commits = True`
    (read with a default of False): the monitor then checks the proof of every honest commit.
    """

    def compute_round_timeout_max_ms(self, timing: SimTiming) -> int:
        """The longest timer the pacemaker can arm for a round (backoff cap, leader factor)."""
        ...

    def build_core(self, cluster: Cluster, node: int, disk: SimDisk, payload: SimPayload) -> Core:
        """A fresh core for `node`, recovered from `disk` (first start, restart or wiped)."""
        ...

    def verify_message(self, cluster: Cluster, message: ConsensusMessage) -> None:
        """The verifier stage before the core; raises `InvalidInput` to reject."""
        ...


def load_binding(spec: str) -> ConsensusBinding:
    """The binding named `module:attribute`; the attribute is called with no arguments."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"a binding is named 'module:attribute', not {spec!r}")
    factory = getattr(importlib.import_module(module_name), attribute)
    binding: ConsensusBinding = factory()
    return binding
