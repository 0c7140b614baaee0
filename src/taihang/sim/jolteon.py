"""The binding between the simulator and the real Jolteon core (`taihang.consensus.core`).

Theory of operation: this is the only module of the simulator that knows how the production
core is built, so the core runs unmodified, exactly as a node would build it:

* `ConsensusConfig` comes from the run's `SimTiming` and is validated by the core itself;
* the `SigningGuard` gets the node's key seed and the safety data on its simulated disk, which
  is `None` after a wipe, so that guard refuses to sign (amnesia);
* a restart hands the core a `RecoveredState` read back from the disk: every persisted block
  and the committed ones, the highest persisted QC and TC, the committed head and the executed
  roots, the same records a node's stores would return;
* the verifier stage is the production `MessageVerifier`. One verifier (and certificate cache)
  serves the whole run: verification is stateless, so sharing the cache changes no outcome and
  saves verifying each certificate once per node.

A validator may run as more than one simulated node (Twins mode, and the random mode's `twin`
behaviour): `InstanceBinding` maps node `i` to the validator `instances[i]` through the
`validator_of` hook, and `mix_binding` puts such a mixin over the production binding or over a
test mutant that subclasses `JolteonBinding`.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar, TypeVar

from taihang.consensus.config import ConsensusConfig
from taihang.consensus.core import ConsensusCore, RecoveredState
from taihang.consensus.leader import LeaderElection
from taihang.consensus.messages import ConsensusMessage
from taihang.consensus.pacemaker import compute_round_timeout_max_ms
from taihang.consensus.safety import SigningGuard
from taihang.consensus.verify import MessageLimits, MessageVerifier
from taihang.crypto import CryptoSuite
from taihang.errors import ConfigurationError
from taihang.ledger.block import QuorumCert, TimeoutCert
from taihang.sim.cluster import DEFAULT_BINDING, SIM_CHANNEL, Cluster, SimTiming
from taihang.sim.node import SimDisk, SimPayload


class SeedSigner:
    """The `Signer` the guard holds: the node's key seed under the run's suite."""

    __slots__ = ("_seed", "_suite")

    def __init__(self, suite: CryptoSuite, seed: bytes) -> None:
        self._suite = suite
        self._seed = seed

    def sign(self, message: bytes) -> bytes:
        return self._suite.sign(self._seed, message)


def build_consensus_config(timing: SimTiming, channel: str = SIM_CHANNEL) -> ConsensusConfig:
    config = ConsensusConfig(
        channel=channel,
        epoch=0,
        round_timeout_base_ms=timing.round_timeout_base_ms,
        min_block_interval_ms=timing.min_block_interval_ms,
        idle_block_interval_ms=timing.idle_block_interval_ms,
        network_allowance_ms=timing.network_allowance_ms,
        max_clock_drift_ms=timing.max_clock_drift_ms,
        block_request_retry_ms=timing.block_request_retry_ms,
    )
    config.validate()
    return config


def build_recovered_state(disk: SimDisk, genesis_id: bytes) -> RecoveredState | None:
    """What the node's stores would return at start; None for a blank disk (first start)."""
    if not disk.blocks and not disk.certs and not disk.ledger:
        return None
    qcs = [cert for cert in disk.certs if isinstance(cert, QuorumCert)]
    tcs = [cert for cert in disk.certs if isinstance(cert, TimeoutCert)]
    return RecoveredState(
        blocks=[*disk.blocks.values(), *disk.ledger],
        highest_qc=max(qcs, key=lambda qc: qc.vote_data.round) if qcs else None,
        highest_tc=max(tcs, key=lambda tc: tc.round) if tcs else None,
        committed_height=disk.committed_height,
        committed_block_id=disk.ledger_ids[-1] if disk.ledger_ids else genesis_id,
        executed=list(disk.executed),
    )


class JolteonBinding:
    """`ConsensusBinding` for `ConsensusCore`; one instance per run."""

    two_chain_commits: ClassVar[bool] = True  # the monitor checks each commit's 2-chain proof

    def __init__(self) -> None:
        self._cluster: Cluster | None = None
        self._config: ConsensusConfig | None = None
        self._verifier: MessageVerifier | None = None

    def compute_round_timeout_max_ms(self, timing: SimTiming) -> int:
        return compute_round_timeout_max_ms(build_consensus_config(timing))

    def build_core(
        self, cluster: Cluster, node: int, disk: SimDisk, payload: SimPayload
    ) -> ConsensusCore:
        config = self._get_config(cluster)
        validator = self.validator_of(node)
        address = cluster.address(validator)
        guard = SigningGuard(
            SeedSigner(cluster.suite, cluster.key_seeds[validator]),
            address,
            disk.safety,
            channel=config.channel,
            epoch=config.epoch,
        )
        return ConsensusCore(
            config=config,
            validators=cluster.validators,
            suite=cluster.suite,
            genesis_block=cluster.genesis,
            me=address,
            guard=guard,
            payload=payload,
            recovered=build_recovered_state(disk, cluster.genesis_id),
            leader=self.build_leader(cluster),
        )

    def validator_of(self, node: int) -> int:
        """The validator whose key simulated node `node` holds (Twins: two nodes share one)."""
        return node

    def build_leader(self, cluster: Cluster) -> LeaderElection | None:
        """The leader election the cores use; None: the core's round robin."""
        return None

    def verify_message(self, cluster: Cluster, message: ConsensusMessage) -> None:
        self._get_verifier(cluster).verify(message)

    def _get_config(self, cluster: Cluster) -> ConsensusConfig:
        if self._cluster is not cluster or self._config is None:
            self._cluster = cluster
            self._config = build_consensus_config(cluster.timing, cluster.channel)
            self._verifier = None
        return self._config

    def _get_verifier(self, cluster: Cluster) -> MessageVerifier:
        config = self._get_config(cluster)
        if self._verifier is None:
            self._verifier = MessageVerifier(
                cluster.validators,
                cluster.suite,
                channel=config.channel,
                epoch=config.epoch,
                genesis_id=cluster.genesis_id,
                limits=MessageLimits(
                    config.block_txs_max, config.block_bytes_max, config.blocks_request_max
                ),
            )
        return self._verifier


class InstanceBinding(JolteonBinding):
    """The Jolteon binding where node `i` holds validator `instances[i]`'s key and identity."""

    def __init__(self, instances: tuple[int, ...]) -> None:
        super().__init__()
        self.instances = instances

    def validator_of(self, node: int) -> int:
        return self.instances[node]


MixinT = TypeVar("MixinT", bound=InstanceBinding)


def mix_binding(spec: str, mixin: type[MixinT], *args: Any) -> MixinT:
    """`mixin(*args)` over the binding named `spec`: the production one, or a test mutant.

    A mutant must subclass `JolteonBinding` (its `build_core` then asks the mixin's
    `validator_of`); it goes under the mixin, as in `TwinsSkipPersistBinding`.
    """
    if spec == DEFAULT_BINDING:
        return mixin(*args)
    module_name, _, attribute = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    if not (isinstance(factory, type) and issubclass(factory, JolteonBinding)):
        raise ConfigurationError(
            f"a validator with two instances needs a JolteonBinding subclass, not {spec!r} "
            "(in random mode, --without twin runs without them)"
        )
    name = mixin.__name__.removesuffix("Binding") + factory.__name__
    mixed: type[MixinT] = type(name, (mixin, factory), {})
    return mixed(*args)
