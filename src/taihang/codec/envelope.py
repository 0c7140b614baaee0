"""Tagged unions on the wire: one decoder for a closed set of message types.

A message travels as the canonical array `[kind, body]`, where `kind` is a small integer
fixed per type and `body` the type's own canonical encoding. `decode` reads the kind first and
then decodes the body as exactly that type, so any byte string either is one message of the
set, canonically, or is refused with a `DecodeError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

import msgspec

from taihang.codec.canonical import Canonical, decode, encode
from taihang.constants import ENCODED_BYTES_MAX
from taihang.errors import DecodeError

M = TypeVar("M")


class _Envelope(Canonical, frozen=True):
    kind: int
    body: msgspec.Raw


class TaggedCodec(Generic[M]):
    """Encode and decode the message types of `kinds` (type -> its wire kind)."""

    def __init__(
        self, kinds: Mapping[type, int], what: str, *, max_bytes: int = ENCODED_BYTES_MAX
    ) -> None:
        self._kinds = dict(kinds)
        self._max_bytes = max_bytes
        self._types = {kind: cls for cls, kind in self._kinds.items()}
        assert len(self._types) == len(self._kinds), "each type needs its own kind"
        self._what = what

    def encode(self, message: M) -> bytes:
        body = msgspec.Raw(encode(message))
        return encode(_Envelope(kind=self._kinds[type(message)], body=body))

    def decode(self, data: bytes) -> M:
        """Raise `DecodeError` for anything that is not one of the messages, canonically."""
        envelope = decode(data, _Envelope, max_bytes=self._max_bytes)
        cls = self._types.get(envelope.kind)
        if cls is None:
            raise DecodeError(f"unknown {self._what} kind {envelope.kind}")
        message: M = decode(bytes(envelope.body), cls, max_bytes=self._max_bytes)
        return message
