"""The download plan of one ledger sync: which ranges to ask whom, and what is verified.

Theory of operation (sans-IO: the node's syncer does the IO and the clock). The target is a
peer's certified tip (`verify.verify_tip`). The heights between the local committed head and
the target are cut into windows of `window` blocks, from the top down. Windows are handed to
peers that reported a tip at least as high as the window, at most one outstanding window per
peer, so several peers serve at once. Responses may arrive in any order; a window is verified
only when it is the next one below the verified part (its top block must hash to the id the
verified part names), so every block accepted is linked by hashes to the certified tip. A peer
whose window fails is reported (to be charged and dropped) and its window goes to another.

The plan ends when the verified part reaches the local head: the id below the lowest window
must be the local head's id. If it is not, the certified chain does not extend ours: that is a
safety violation of the network (or of this node's store), and `ForkDetected` is raised so the
node halts instead of following.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from taihang.crypto import CryptoSuite
from taihang.errors import InvalidInput
from taihang.ledger.block import Block
from taihang.sync.messages import RangeRequest, RangeResponse, Tip
from taihang.sync.verify import link_range_down


class ForkDetected(Exception):
    """The certified chain does not extend this node's committed head."""


class BadRange(InvalidInput):
    """A peer's range failed its checks; `peer` is to be charged and dropped.

    `verified` holds the windows the same call verified before the bad one (above it): they
    are good and must be kept.
    """

    def __init__(
        self, peer: str, message: str, verified: list[tuple[int, list[Block]]] | None = None
    ) -> None:
        super().__init__(message)
        self.peer = peer
        self.verified = verified or []


@dataclass(frozen=True, slots=True)
class Window:
    start: int
    count: int

    @property
    def top(self) -> int:
        return self.start + self.count - 1


@dataclass(slots=True)
class SyncPlan:
    local_height: int
    local_id: bytes
    target: Tip
    suite: CryptoSuite
    window: int = 64
    frontier_id: bytes = b""  # the id the next window's top block must have
    windows: list[Window] = field(default_factory=list)  # unverified, top first
    assigned: dict[str, Window] = field(default_factory=dict)  # peer -> its outstanding window
    held: dict[int, tuple[str, list[Block]]] = field(default_factory=dict)  # start -> sender
    dropped: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"the sync window must be positive, not {self.window}")
        assert self.target.height > self.local_height, "nothing to sync"
        self.frontier_id = self.target.block_id
        top = self.target.height
        while top > self.local_height:
            start = max(self.local_height + 1, top - self.window + 1)
            self.windows.append(Window(start, top - start + 1))
            top = start - 1

    @property
    def done(self) -> bool:
        return not self.windows

    def next_requests(self, tips: dict[str, int]) -> list[tuple[str, RangeRequest]]:
        """Assign unassigned windows to idle peers whose tip covers them (highest first)."""
        busy = set(self.assigned.values())
        requests: list[tuple[str, RangeRequest]] = []
        idle = sorted(p for p in tips if p not in self.assigned and p not in self.dropped)
        for window in self.windows:
            if window in busy or window.start in self.held:
                continue
            peer = next((p for p in idle if tips[p] >= window.top), None)
            if peer is None:
                continue
            idle.remove(peer)
            self.assigned[peer] = window
            requests.append((peer, RangeRequest(start=window.start, count=window.count)))
        return requests

    def on_failure(self, peer: str) -> None:
        """The peer timed out, disconnected or sent bad data: never ask it again this sync."""
        self.assigned.pop(peer, None)
        self.dropped.add(peer)

    def on_response(self, peer: str, response: RangeResponse) -> list[tuple[int, list[Block]]]:
        """Take a peer's range; return newly verified windows (start, ascending blocks).

        Raises `BadRange` naming the peer that sent bad data (the caller charges and drops
        it; its window will be asked of another), and `ForkDetected` when the verified chain
        does not meet the local head.
        """
        window = self.assigned.get(peer)
        if window is None or response.start != window.start:
            self.on_failure(peer)
            raise BadRange(peer, f"unrequested range starting at {response.start}")
        if len(response.blocks) != window.count:
            self.on_failure(peer)
            raise BadRange(peer, f"{len(response.blocks)} blocks for a range of {window.count}")
        del self.assigned[peer]
        self.held[window.start] = (peer, response.blocks)
        verified: list[tuple[int, list[Block]]] = []
        while self.windows and self.windows[0].start in self.held:
            top_window = self.windows[0]
            sender, blocks = self.held.pop(top_window.start)
            try:
                below_id = link_range_down(blocks, top_window.start, self.frontier_id, self.suite)
            except InvalidInput as exc:
                self.on_failure(sender)
                raise BadRange(sender, exc.message, verified) from None
            self.windows.pop(0)
            self.frontier_id = below_id
            verified.append((top_window.start, blocks))
        if not self.windows and self.frontier_id != self.local_id:
            raise ForkDetected(
                f"the certified chain below height {self.local_height + 1} is not this node's "
                "committed head"
            )
        return verified
