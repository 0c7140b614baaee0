"""Catch-up: how blocks reach the tree (consensus spec, "Block store, sync and catch-up").

Theory of operation: a block enters the tree only on top of its parent. One that arrives
early (a proposal whose parent this node missed, or a catch-up response whose oldest block
still lacks its parent) waits in the orphan pool, and the node fetches the lowest missing
ancestor: following orphans downwards first, so a node that is many blocks behind asks for
the gap once, not once per new proposal. Proposals that wait are also held, to be re-driven
(voted for, if still current) when their parent arrives.

Inserting a block cascades: every orphan waiting for it is checked against it and inserted
too, each persisted (`PersistBlock`) as it enters, so a vote never precedes its block on disk.
A block whose links to its parent are wrong (height, ids, QC, timestamps, exec_root lag) is
dropped with its would-be descendants.

Requests are answered from the tree, newest first, each block with a QC for it; responses
are accepted only as a certified hash chain starting at the id asked for
(`accept_response_blocks`), and only while that request is still awaited.

Everything here is bounded: the orphan pool, the held proposals, the outstanding requests.
"""

from __future__ import annotations

from collections.abc import Callable

from taihang.consensus.block_tree import BlockTree, OrphanBlocks
from taihang.consensus.config import ConsensusConfig
from taihang.consensus.events import Action, PersistBlock, Send
from taihang.consensus.fetch import BlockFetcher, accept_response_blocks
from taihang.consensus.messages import BlockRequest, BlockResponse, Proposal
from taihang.crypto import CryptoSuite
from taihang.errors import InvalidBlock
from taihang.ledger.block import Block, BlockHeader, QuorumCert, validate_header_links

Reject = Callable[[str, str], None]  # (code, detail): count a dropped input
Redrive = list[tuple[bytes, Proposal]]  # held proposals whose parent just arrived


class Catchup:
    __slots__ = ("_held", "config", "fetcher", "orphans", "reject", "suite", "tree")

    def __init__(
        self,
        tree: BlockTree,
        orphans: OrphanBlocks,
        config: ConsensusConfig,
        suite: CryptoSuite,
        *,
        peers: tuple[str, ...],
        me: str | None,
        reject: Reject,
    ) -> None:
        self.tree = tree
        self.orphans = orphans
        self.config = config
        self.suite = suite
        self.reject = reject
        self.fetcher = BlockFetcher(
            peers,
            me,
            retry_ms=config.block_request_retry_ms,
            outstanding_max=config.block_requests_outstanding_max,
        )
        self._held: dict[bytes, Redrive] = {}  # proposals by the parent id they wait for

    def need_block(
        self, block_id: bytes, height: int, hint: str | None, now_ms: int
    ) -> list[Action]:
        """Fetch the lowest missing ancestor of `block_id` (orphans in between are known)."""
        block_id, height = self.orphans.find_lowest_missing(block_id, height)
        committed_height = self.tree.committed_height
        if height <= committed_height or self.tree.has_block(block_id):
            return []
        count = min(height - committed_height, self.config.blocks_request_max)
        return list(self.fetcher.request(block_id, height, count, hint, now_ms))

    def hold_proposal(
        self, proposal: Proposal, block_id: bytes, sender: str, now_ms: int
    ) -> list[Action]:
        """Park a proposal whose parent is missing, and fetch that parent from the sender."""
        header = proposal.block.header
        held = sum(len(waiting) for waiting in self._held.values())
        if held >= self.config.pending_proposals_max:
            self.reject("pending_proposals_full", f"round {header.round}")
        else:
            self._held.setdefault(header.parent_id, []).append((block_id, proposal))
            self.orphans.add(proposal.block, block_id)
        return self.need_block(header.parent_id, header.height - 1, sender, now_ms)

    def insert(self, block: Block, block_id: bytes) -> tuple[list[Action], Redrive]:
        """Insert a block whose parent is in the tree, then every orphan that now attaches."""
        actions: list[Action] = []
        redrive: Redrive = []
        work = [(block_id, block)]
        while work:
            current_id, current = work.pop(0)
            if current.header.height <= self.tree.committed_height:
                continue  # at or below the committed head: committed already, or a dead fork
            if self.tree.has_block(current_id):
                continue  # it came another way too (a restarted leader rebuilds its own block)
            parent = self.tree.find_block(current.header.parent_id)
            assert parent is not None, "only blocks whose parent is in the tree are inserted"
            problem = find_link_problem(current.header, parent, current.header.parent_id)
            if problem is not None:
                self.reject("block_bad_link", problem)
                continue
            self.tree.insert(current, current_id)
            self.fetcher.finish(current_id)
            actions.append(PersistBlock(current))
            work.extend(self.orphans.pop_children(current_id))
            redrive.extend(self._held.pop(current_id, []))
        return actions, [(i, p) for i, p in redrive if self.tree.has_block(i)]

    def answer(self, sender: str, request: BlockRequest) -> list[Action]:
        count = min(request.count, self.config.blocks_request_max)
        blocks, qcs = self.tree.get_ancestors(request.block_id, count)
        return [Send(sender, BlockResponse(request_id=request.block_id, blocks=blocks, qcs=qcs))]

    def accept(
        self, sender: str, response: BlockResponse, now_ms: int
    ) -> tuple[list[Action], Redrive, QuorumCert | None]:
        """Take in an awaited response: (actions, proposals to re-drive, its newest QC)."""
        if not self.fetcher.is_outstanding(response.request_id):
            return [], [], None  # unsolicited, or another peer answered first
        accepted = accept_response_blocks(response, self.suite)
        if not accepted:
            self.reject("block_response_useless", sender)
            return list(self.fetcher.on_failure(response.request_id, sender, now_ms)), [], None
        self.fetcher.finish(response.request_id)
        for _, _, qc in accepted:
            self.tree.record_qc(qc)
        actions: list[Action] = []
        redrive: Redrive = []
        for block_id, block, _ in reversed(accepted):  # oldest first, so parents come first
            if block.header.height <= self.tree.committed_height or self.tree.has_block(block_id):
                continue
            if self.tree.has_block(block.header.parent_id):
                inserted, waiting = self.insert(block, block_id)
                actions += inserted
                redrive += waiting
            else:
                self.orphans.add(block, block_id)
        oldest = accepted[-1][1].header
        actions += self.need_block(oldest.parent_id, oldest.height - 1, sender, now_ms)
        return actions, redrive, accepted[0][2]

    def retry_expired(self, now_ms: int) -> list[Action]:
        return list(self.fetcher.retry_expired(now_ms))

    def prune(self, committed_height: int) -> None:
        """Forget what can no longer attach once `committed_height` is committed."""
        self.orphans.prune(committed_height)
        self.fetcher.prune(committed_height)
        for parent_id in [
            parent_id
            for parent_id, waiting in self._held.items()
            if waiting[0][1].block.header.height <= committed_height + 1
            and not self.tree.has_block(parent_id)
        ]:
            del self._held[parent_id]


def find_link_problem(header: BlockHeader, parent: Block, parent_id: bytes) -> str | None:
    """Why `header` cannot follow `parent`, or None (rule 1's checks against the parent)."""
    try:
        validate_header_links(header, parent.header, parent_id)
    except InvalidBlock as exc:
        return exc.message
    if header.timestamp_ms <= parent.header.timestamp_ms:
        return f"timestamp of block {header.height} is not after its parent's"
    if header.qc.vote_data.round != parent.header.round:
        return f"the QC in block {header.height} names another round than its parent's"
    return None
