"""Mempool: sans-IO admission, dedupe, per-sender nonce order and fair, bounded block filling.

The theory of operation is in `taihang.mempool.pool`.
"""

from taihang.mempool.pool import Mempool, MempoolLimits, RejectCode

__all__ = ["Mempool", "MempoolLimits", "RejectCode"]
