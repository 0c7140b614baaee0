"""The node-to-node transport (an edge): mutual TLS 1.3, framing, one connection per peer.

`Transport` is payload-agnostic: the node hands it `(kind, body)` frames and gets frames back
through a callback, with the sending peer's genesis name. See `transport.py` for the theory of
operation and docs/adr/0006-transport.md for the decisions.
"""

from taihang.net.frames import FrameKind
from taihang.net.transport import Transport
from taihang.net.trust import PeerRefused, TransportIdentity

__all__ = ["FrameKind", "PeerRefused", "Transport", "TransportIdentity"]
