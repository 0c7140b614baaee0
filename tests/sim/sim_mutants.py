"""Injected bugs in the real Jolteon core, to show the simulator finds them (mutation check).

Each binding builds the production `ConsensusCore` through `JolteonBinding` and breaks one
safety rule from the outside, the way a plausible bug would:

* `SkipPersistBinding`: the driver never writes SafetyData (the no-fsync bug of
  gravity-sdk#743, aptos-core#18298): after a crash the node forgets its votes;
* `NonConsecutiveCommitBinding`: the 2-chain rule without the consecutive-rounds condition
  (relab/hotstuff#249): every QC is taken for a commit proof;
* `IgnoreTcHqcBinding`: the vote rule without rule 3's second clause, so a block justified by
  a TC is voted for even when its QC is below the TC's highest hqc_round.

The last two need Byzantine proposers to show (honest leaders always extend their highest QC):
`test_sim_mutants` runs them with `--byzantine 1`.
"""

from __future__ import annotations

import msgspec

from taihang.consensus.core import ConsensusCore
from taihang.consensus.events import Action, Event, PersistSafetyData
from taihang.consensus.messages import SafetyData, Vote
from taihang.consensus.safety import SigningGuard
from taihang.ledger.block import BlockHeader, QuorumCert, TimeoutCert
from taihang.sim.cluster import Cluster
from taihang.sim.jolteon import JolteonBinding
from taihang.sim.node import SimDisk, SimPayload


class _ForgetfulCore:
    """Drops every `PersistSafetyData`: the votes leave, the record never reaches the disk."""

    def __init__(self, core: ConsensusCore) -> None:
        self._core = core

    def handle(self, event: Event) -> list[Action]:
        return [a for a in self._core.handle(event) if not isinstance(a, PersistSafetyData)]


class SkipPersistBinding(JolteonBinding):
    """A `JolteonBinding` subclass, so that it also binds under Twins and `twin` instances."""

    def build_core(  # type: ignore[override]
        self, cluster: Cluster, node: int, disk: SimDisk, payload: SimPayload
    ) -> _ForgetfulCore:
        return _ForgetfulCore(super().build_core(cluster, node, disk, payload))


class _EagerCommitCore(ConsensusCore):
    """Commits the parent of any certified block, consecutive rounds or not."""

    eager_qc: QuorumCert | None = None

    def _adopt_qc(self, qc: QuorumCert, sender: str | None, now_ms: int) -> list[Action]:
        actions = super()._adopt_qc(qc, sender, now_ms)
        if self.eager_qc is None or qc.vote_data.round > self.eager_qc.vote_data.round:
            self.eager_qc = qc
        return actions + self._try_commit(sender, now_ms)

    def _try_commit(self, hint: str | None, now_ms: int) -> list[Action]:
        proof = self.commit_qc  # the real proof goes back for sync; only commits use the QC
        if self.eager_qc is not None and (
            proof is None or self.eager_qc.vote_data.round > proof.vote_data.round
        ):
            self.commit_qc = self.eager_qc
        try:
            return super()._try_commit(hint, now_ms)
        finally:
            self.commit_qc = proof


class NonConsecutiveCommitBinding(JolteonBinding):
    def build_core(
        self, cluster: Cluster, node: int, disk: SimDisk, payload: SimPayload
    ) -> ConsensusCore:
        core = super().build_core(cluster, node, disk, payload)
        core.__class__ = _EagerCommitCore  # same state, one rule changed
        return core


class _TcBlindGuard(SigningGuard):
    """Rule 3 without its second clause: the TC's hqc_rounds are read as no higher than the QC."""

    __slots__ = ()

    def sign_vote(
        self, block_header: BlockHeader, block_id: bytes, tc: TimeoutCert | None
    ) -> tuple[Vote, SafetyData]:
        if tc is not None and tc is block_header.tc:
            qc_round = block_header.qc.vote_data.round
            entries = [
                msgspec.structs.replace(entry, hqc_round=min(entry.hqc_round, qc_round))
                for entry in tc.entries
            ]
            tc = msgspec.structs.replace(tc, entries=entries)
            block_header = msgspec.structs.replace(block_header, tc=tc)
        return super().sign_vote(block_header, block_id, tc)


class IgnoreTcHqcBinding(JolteonBinding):
    def build_core(
        self, cluster: Cluster, node: int, disk: SimDisk, payload: SimPayload
    ) -> ConsensusCore:
        core = super().build_core(cluster, node, disk, payload)
        if core.guard is not None:
            core.guard.__class__ = _TcBlindGuard  # same state, one clause of rule 3 dropped
        return core
