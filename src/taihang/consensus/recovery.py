"""Recovery: rebuild the block tree and certificates from what a node persisted.

Theory of operation: a restarting node reads back its consensus records (blocks persisted
before it voted, the certificates it adopted, the committed head) and hands them to the core
as a `RecoveredState`. The tree is rooted again at the committed head and the stored blocks
above it are re-inserted in height order. The highest QC and TC are the highest among the
stored ones, the QC and TC inside every stored block, and those inside the node's last
timeout: a block was persisted before the node voted for it and a certificate before the node
acted on it, so these are at least the certificates that justified the node's last signature.
The core then resumes in round `max(hqc.round, htc.round) + 1` (babylon-node#243: resuming
at the QC's round alone ignored a TC, and the node could vote in neither round).

Nothing here is persisted again; the certificates are already on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from taihang.consensus.block_tree import BlockTree, OrphanBlocks
from taihang.consensus.messages import SafetyData
from taihang.crypto import CryptoSuite
from taihang.errors import ConfigurationError
from taihang.ledger.block import Block, ExecRoot, QuorumCert, TimeoutCert, compute_block_id


@dataclass(frozen=True, slots=True)
class RecoveredState:
    """What a restarting node reads back from its consensus records and ledger.

    `blocks` must contain the committed head (unless it is genesis) and may contain any stored
    blocks; those at or below the head are ignored. `executed` holds the roots of executed
    heights from the committed head's `exec_root.height` upwards (older ones are harmless).
    The SafetyData goes to the `SigningGuard`, its only holder, not here.
    """

    blocks: list[Block]
    highest_qc: QuorumCert | None
    highest_tc: TimeoutCert | None
    committed_height: int
    committed_block_id: bytes
    executed: list[ExecRoot] = field(default_factory=list)


@dataclass(slots=True)
class Certificates:
    """The highest QC, TC and commit proof a node knows."""

    hqc: QuorumCert
    htc: TimeoutCert | None = None
    commit_qc: QuorumCert | None = None

    def adopt(self, qc: QuorumCert | None, tc: TimeoutCert | None) -> None:
        """Keep whichever of these is higher (a TC brings its own high QC along)."""
        for cert in (qc, tc.high_qc if tc is not None else None):
            if cert is None:
                continue
            data = cert.vote_data
            if data.round > self.hqc.vote_data.round:
                self.hqc = cert
            is_commit_proof = data.parent_round + 1 == data.round
            if is_commit_proof and (
                self.commit_qc is None or data.round > self.commit_qc.vote_data.round
            ):
                self.commit_qc = cert
        if tc is not None and (self.htc is None or tc.round > self.htc.round):
            self.htc = tc


def recover(
    recovered: RecoveredState,
    *,
    genesis_block: Block,
    genesis_qc: QuorumCert,
    suite: CryptoSuite,
    safety: SafetyData | None,
    orphans: OrphanBlocks,
    committed_kept: int,
) -> tuple[BlockTree, Certificates]:
    """The tree rooted at the committed head, and the highest certificates on record."""
    genesis_id = genesis_qc.vote_data.block_id
    by_id: dict[bytes, Block] = {compute_block_id(suite, b.header): b for b in recovered.blocks}
    by_id.setdefault(genesis_id, genesis_block)
    root = by_id.get(recovered.committed_block_id)
    if root is None or root.header.height != recovered.committed_height:
        raise ConfigurationError(
            f"recovered state lacks the committed block at height {recovered.committed_height}"
        )
    root_qc = genesis_qc if recovered.committed_block_id == genesis_id else None
    tree = BlockTree(root, recovered.committed_block_id, root_qc, committed_kept=committed_kept)
    tree.restore_committed_ancestors(_committed_ancestors(by_id, root, committed_kept))
    certs = Certificates(hqc=genesis_qc)
    above = sorted(
        (b.header.height, block_id, b)
        for block_id, b in by_id.items()
        if b.header.height > recovered.committed_height
    )
    for _, block_id, block in above:
        if tree.has_block(block.header.parent_id):
            tree.insert(block, block_id)
        else:
            orphans.add(block, block_id)
        certs.adopt(block.header.qc, block.header.tc)
    certs.adopt(recovered.highest_qc, recovered.highest_tc)
    if safety is not None and safety.last_timeout is not None:
        timeout = safety.last_timeout
        certs.adopt(timeout.high_qc, timeout.sync.highest_tc)
        certs.adopt(timeout.sync.highest_qc, None)
    for cert in (certs.hqc, certs.commit_qc, certs.htc.high_qc if certs.htc else None):
        if cert is not None:
            tree.record_qc(cert)
    return tree, certs


def _committed_ancestors(
    by_id: dict[bytes, Block], head: Block, count: int
) -> list[tuple[bytes, Block]]:
    """The stored committed chain below `head`, newest first, at most `count` blocks."""
    ancestors: list[tuple[bytes, Block]] = []
    parent_id = head.header.parent_id
    while len(ancestors) < count:
        block = by_id.get(parent_id)
        if block is None or block.header.height == 0:
            break  # genesis is every node's root: nobody needs it sent
        ancestors.append((parent_id, block))
        parent_id = block.header.parent_id
    return ancestors
