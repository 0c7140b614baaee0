"""The block tree: blocks above the committed head, their QCs, pruning and orphans.

Theory of operation: the tree is rooted at the committed head. Every block in it links to its
parent by id, so a block is inserted only once its parent is in the tree; blocks that arrive
before their ancestors wait in `OrphanBlocks` (bounded), keyed by the parent they need. The
tree also records, for each block, one QC certifying it (any valid QC will do: all certify the
same block); QCs for blocks not yet in the tree are kept too, for when the block arrives.

Committing walks from the new committed block down to the committed head. The walk must end
exactly at the head: a commit that does not extend it means two conflicting blocks were
committed, which with at most f Byzantine validators is impossible, so it is asserted (the node
halts rather than continue on a forked ledger). After a commit, the tree drops every block
that does not descend from the new head, and committed blocks older than `committed_kept`
heights (they stay available to peers that fell behind until then).

Heights are indexed (`_by_height`) so that pruning never iterates a dict in an order that could
reach an output; lists are kept in insertion order, which is deterministic for a given event
sequence.
"""

from __future__ import annotations

from taihang.ledger.block import Block, QuorumCert


class BlockTree:
    __slots__ = (
        "_blocks",
        "_by_height",
        "_committed_chain",
        "_lowest_height",
        "_qcs",
        "_qcs_unattached",
        "committed_height",
        "committed_id",
        "committed_kept",
        "committed_round",
    )

    def __init__(
        self, root: Block, root_id: bytes, root_qc: QuorumCert | None, *, committed_kept: int
    ) -> None:
        assert committed_kept > 0
        self.committed_kept = committed_kept
        self.committed_id = root_id
        self.committed_height = root.header.height
        self.committed_round = root.header.round
        self._blocks: dict[bytes, Block] = {root_id: root}
        self._by_height: dict[int, list[bytes]] = {root.header.height: [root_id]}
        self._lowest_height = root.header.height
        self._committed_chain: dict[int, bytes] = {root.header.height: root_id}
        self._qcs: dict[bytes, QuorumCert] = {}  # for blocks in the tree
        self._qcs_unattached: dict[bytes, QuorumCert] = {}  # for blocks not (yet) in it
        if root_qc is not None:
            self.record_qc(root_qc)

    def __len__(self) -> int:
        return len(self._blocks)

    def has_block(self, block_id: bytes) -> bool:
        return block_id in self._blocks

    def find_block(self, block_id: bytes) -> Block | None:
        return self._blocks.get(block_id)

    def find_qc(self, block_id: bytes) -> QuorumCert | None:
        qc = self._qcs.get(block_id)
        return qc if qc is not None else self._qcs_unattached.get(block_id)

    def find_committed_id(self, height: int) -> bytes | None:
        """The id of the committed block at `height`, if it is still kept."""
        return self._committed_chain.get(height)

    def record_qc(self, qc: QuorumCert) -> None:
        """Remember a (verified) QC for its block; the first one kept wins."""
        data = qc.vote_data
        if data.block_id in self._blocks:
            self._qcs.setdefault(data.block_id, qc)
        elif data.height > self.committed_height:  # below the head and absent: a dead fork
            self._qcs_unattached.setdefault(data.block_id, qc)

    def insert(self, block: Block, block_id: bytes) -> None:
        """Add a block whose parent is in the tree (the caller checked its links)."""
        header = block.header
        assert block_id not in self._blocks, "block inserted twice"
        assert header.parent_id in self._blocks, "parent must be in the tree"
        assert header.height > self.committed_height, "block at or below the committed head"
        self._blocks[block_id] = block
        self._by_height.setdefault(header.height, []).append(block_id)
        self._qcs.setdefault(header.parent_id, header.qc)
        waiting = self._qcs_unattached.pop(block_id, None)
        if waiting is not None:
            self._qcs[block_id] = waiting

    def restore_committed_ancestors(self, ancestors: list[tuple[bytes, Block]]) -> None:
        """After a restart: put back committed blocks below the head (newest first), so the
        node can still serve them to peers that lag (seed 450: a recovered core that dropped
        them left a peer stuck forever). Each block's QC is its child's `header.qc`."""
        child = self._blocks[self.committed_id]
        for block_id, block in ancestors[: self.committed_kept]:
            if block_id != child.header.parent_id or block_id in self._blocks:
                break  # not the committed chain: stop rather than guess
            height = block.header.height
            self._blocks[block_id] = block
            self._by_height.setdefault(height, []).append(block_id)
            self._committed_chain[height] = block_id
            self._qcs.setdefault(block_id, child.header.qc)
            self._lowest_height = min(self._lowest_height, height)
            child = block

    def find_missing_ancestor(self, block_id: bytes, height: int) -> tuple[bytes, int] | None:
        """The highest block on the path from `block_id` down to the head that is missing.

        Returns (id, height) of the first block not in the tree, or None when the whole path is
        present (`height` is that of `block_id`).
        """
        current, current_height = block_id, height
        while current_height > self.committed_height:
            block = self._blocks.get(current)
            if block is None:
                return current, current_height
            current, current_height = block.header.parent_id, current_height - 1
        return None

    def commit(self, block_id: bytes) -> list[Block]:
        """Commit `block_id` and its uncommitted ancestors; return them in height order."""
        path: list[tuple[bytes, Block]] = []
        current = block_id
        while True:
            block = self._blocks.get(current)
            assert block is not None, f"commit path misses block {current.hex()}"
            if block.header.height <= self.committed_height:
                break
            path.append((current, block))
            current = block.header.parent_id
        assert current == self.committed_id, (
            f"safety violation: block {block_id.hex()} does not extend the committed head "
            f"{self.committed_id.hex()} at height {self.committed_height}"
        )
        path.reverse()
        for path_id, block in path:
            self._committed_chain[block.header.height] = path_id
        previous_height = self.committed_height
        head_id, head = path[-1]
        self.committed_id = head_id
        self.committed_height = head.header.height
        self.committed_round = head.header.round
        self._prune(previous_height)
        return [block for _, block in path]

    def get_ancestors(self, block_id: bytes, count: int) -> tuple[list[Block], list[QuorumCert]]:
        """Up to `count` certified blocks ending at `block_id`, newest first, with their QCs."""
        blocks: list[Block] = []
        qcs: list[QuorumCert] = []
        current = block_id
        while len(blocks) < count:
            block = self._blocks.get(current)
            qc = self._qcs.get(current)
            if block is None or qc is None or block.header.height == 0:
                break  # genesis is every node's root: nobody needs it sent
            blocks.append(block)
            qcs.append(qc)
            current = block.header.parent_id
        return blocks, qcs

    def _prune(self, previous_height: int) -> None:
        """Keep the committed chain (`committed_kept` deep) and the head's descendants."""
        keep_from = max(self.committed_height - self.committed_kept, 0)
        for height in range(self._lowest_height, keep_from):
            self._drop_height(height, keep=())
            self._committed_chain.pop(height, None)
        self._lowest_height = max(self._lowest_height, keep_from)
        # A commit can jump more than `committed_kept` heights (a node catching up): the part
        # of its path below `keep_from` went with the loop above.
        for height in range(max(previous_height + 1, keep_from), self.committed_height + 1):
            self._drop_height(height, keep=(self._committed_chain[height],))
        height = self.committed_height + 1
        while height in self._by_height:  # ascending, so parents are decided before children
            ids = self._by_height[height]
            self._drop_height(height, keep=[i for i in ids if self._is_attached(i)])
            height += 1
        dead = [
            block_id
            for block_id, qc in self._qcs_unattached.items()
            if qc.vote_data.height <= self.committed_height
        ]
        for block_id in dead:
            del self._qcs_unattached[block_id]

    def _is_attached(self, block_id: bytes) -> bool:
        return self._blocks[block_id].header.parent_id in self._blocks

    def _drop_height(self, height: int, keep: tuple[bytes, ...] | list[bytes]) -> None:
        ids = self._by_height.get(height)
        if ids is None:
            return
        for gone in ids:
            if gone not in keep:
                del self._blocks[gone]
                self._qcs.pop(gone, None)
        survivors = [i for i in ids if i in keep]
        if survivors:
            self._by_height[height] = survivors
        else:
            del self._by_height[height]


class OrphanBlocks:
    """Blocks waiting for their parent (bounded; when full, newcomers are dropped)."""

    __slots__ = ("_blocks", "_by_parent", "blocks_max")

    def __init__(self, blocks_max: int) -> None:
        assert blocks_max > 0
        self.blocks_max = blocks_max
        self._blocks: dict[bytes, Block] = {}
        self._by_parent: dict[bytes, list[bytes]] = {}

    def __len__(self) -> int:
        return len(self._blocks)

    def find_block(self, block_id: bytes) -> Block | None:
        return self._blocks.get(block_id)

    def add(self, block: Block, block_id: bytes) -> bool:
        if block_id in self._blocks or len(self._blocks) >= self.blocks_max:
            return False
        self._blocks[block_id] = block
        self._by_parent.setdefault(block.header.parent_id, []).append(block_id)
        return True

    def pop_children(self, parent_id: bytes) -> list[tuple[bytes, Block]]:
        """The orphans waiting for `parent_id`, sorted by id, removed from the pool."""
        children = sorted(self._by_parent.pop(parent_id, []))
        return [(child, self._blocks.pop(child)) for child in children]

    def find_lowest_missing(self, block_id: bytes, height: int) -> tuple[bytes, int]:
        """Follow orphans down from `block_id`: the first ancestor that is not an orphan."""
        current, current_height = block_id, height
        while (block := self._blocks.get(current)) is not None:
            current, current_height = block.header.parent_id, current_height - 1
        return current, current_height

    def prune(self, committed_height: int) -> None:
        """Forget orphans at or below the committed head: they can never attach."""
        dead = [i for i, b in self._blocks.items() if b.header.height <= committed_height]
        for block_id in dead:
            parent_id = self._blocks.pop(block_id).header.parent_id
            siblings = self._by_parent.get(parent_id)
            if siblings is not None:
                siblings.remove(block_id)
                if not siblings:
                    del self._by_parent[parent_id]
