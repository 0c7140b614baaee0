"""Frames on the wire between nodes, and a sans-IO decoder for them.

Theory of operation
-------------------
After TLS, a connection carries a stream of frames:

    length: u32 big-endian | kind: u8 | body: `length` bytes

`length` counts the body only, and a body longer than the transport's `frame_bytes_max` is a
protocol violation: the decoder raises `FrameTooLarge` as soon as it has read the 5-byte header,
before it buffers any of the body, so a peer cannot make us hold more than one maximum frame
plus one read chunk.

Kinds below `CONTROL_KIND_MIN` are payload (`FrameKind`) and go to the node untouched; kinds
from `CONTROL_KIND_MIN` up belong to the transport itself: `HELLO` (the first frame each way,
see `Hello`) and `KEEPALIVE` (an empty frame a writer sends when it has been idle, so that a
reader can tell a silent peer from a dead one). Any other kind is unknown: the transport
charges the peer and drops the frame.

`FrameDecoder` turns bytes as they arrive (any split, any coalescing) into `(kind, body)`
pairs; it does no IO and keeps one `bytearray`, so the transport reads in large chunks and
pays no syscall or coroutine switch per frame.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final

import msgspec

from taihang.errors import InvalidInput

HEADER: Final = struct.Struct(">IB")
HEADER_BYTES: Final = HEADER.size  # 5
CONTROL_KIND_MIN: Final = 0xF0
HELLO: Final = 0xF0
KEEPALIVE: Final = 0xF1
HELLO_BYTES_MAX: Final = 1024  # a hello holds a version, a 32/64-byte hash and a name


class FrameKind(IntEnum):
    """Payload kinds the node sends and receives; values below `CONTROL_KIND_MIN`."""

    CONSENSUS = 1
    TXS = 2
    SYNC = 3  # ledger sync: tips and block ranges (taihang.sync)


PAYLOAD_KINDS: Final[dict[int, FrameKind]] = {int(kind): kind for kind in FrameKind}


class FrameTooLarge(InvalidInput):
    """A frame header announced a body above the limit: the peer broke the protocol."""

    code = "frame_too_large"


class Hello(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """The first frame each way after TLS: who we are and which chain we follow."""

    protocol_version: int
    genesis_hash: bytes
    name: str


_HELLO_DECODER: Final = msgspec.msgpack.Decoder(Hello)


def encode_frame_header(kind: int, body_bytes: int) -> bytes:
    return HEADER.pack(body_bytes, kind)


def encode_frame(kind: int, body: bytes) -> bytes:
    return HEADER.pack(len(body), kind) + body


def encode_hello(hello: Hello) -> bytes:
    """A whole HELLO frame."""
    return encode_frame(HELLO, msgspec.msgpack.encode(hello))


def decode_hello(body: bytes) -> Hello:
    """Raise `msgspec.DecodeError` (or ValidationError) unless `body` is a hello."""
    return _HELLO_DECODER.decode(body)


class FrameDecoder:
    """Bytes in, complete `(kind, body)` frames out, in order; bounded by `body_bytes_max`."""

    __slots__ = ("_body_bytes_max", "_buffer")

    def __init__(self, body_bytes_max: int) -> None:
        assert body_bytes_max > 0
        self._body_bytes_max = body_bytes_max
        self._buffer = bytearray()

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Append `data`; return every frame now complete. Raise `FrameTooLarge` on a bad header.

        After `FrameTooLarge` the stream cannot be resynchronised: close the connection.
        """
        buffer = self._buffer
        buffer += data
        frames: list[tuple[int, bytes]] = []
        offset = 0
        end = len(buffer)
        unpack_from = HEADER.unpack_from
        while end - offset >= HEADER_BYTES:
            length, kind = unpack_from(buffer, offset)
            if length > self._body_bytes_max:
                raise FrameTooLarge(
                    f"frame of {length} bytes (kind {kind}) above the limit of "
                    f"{self._body_bytes_max}"
                )
            start = offset + HEADER_BYTES
            stop = start + length
            if stop > end:
                break  # the rest of this frame is still on the way
            frames.append((kind, bytes(buffer[start:stop])))
            offset = stop
        if offset:
            del buffer[:offset]
        return frames
