"""Transaction gossip: what a node admits from a client goes to every peer, batched.

Theory of operation. Validators form a full mesh (every node is connected to every other),
so one hop reaches everyone: the node that admitted a transaction from a client sends it to
all peers, and a node that received a transaction by gossip does not send it on. Duplicates
are suppressed at the door: a receiver skips the signature check for ids it already verified
and its mempool refuses ids it holds (`duplicate`), so a transaction costs each node one
verification. Transactions are batched for `gossip_interval_ms` (one frame per batch, at most
`GOSSIP_BATCH_MAX` transactions), which keeps frames few under load and adds at most that
interval to the latency of reaching the next leader.
"""

from __future__ import annotations

import asyncio
from typing import Final

import msgspec

from taihang.codec import encode
from taihang.errors import DecodeError
from taihang.net import FrameKind, Transport

GOSSIP_BATCH_MAX: Final = 2_000


def decode_gossip(body: bytes) -> list[bytes]:
    """A gossip frame's transactions; raise `DecodeError` for anything else."""
    try:
        raws = msgspec.msgpack.decode(body, type=list[bytes])
    except msgspec.DecodeError as exc:
        raise DecodeError(f"not a list of transactions: {exc}") from None
    if len(raws) > GOSSIP_BATCH_MAX:
        raise DecodeError(f"{len(raws)} transactions in one frame, above {GOSSIP_BATCH_MAX}")
    return raws


class TxGossip:
    def __init__(self, transport: Transport, interval_ms: int) -> None:
        self._transport = transport
        self._interval_s = interval_ms / 1000
        self._pending: list[bytes] = []
        self._scheduled: asyncio.TimerHandle | None = None

    def add(self, raws: list[bytes]) -> None:
        self._pending.extend(raws)
        if len(self._pending) >= GOSSIP_BATCH_MAX:
            self.flush()
        elif self._scheduled is None:
            loop = asyncio.get_running_loop()
            self._scheduled = loop.call_later(self._interval_s, self.flush)

    def flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), GOSSIP_BATCH_MAX):
            batch = pending[start : start + GOSSIP_BATCH_MAX]
            self._transport.broadcast(FrameKind.TXS, encode(batch))
