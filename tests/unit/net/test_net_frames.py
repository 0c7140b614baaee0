"""The frame format and its sans-IO decoder: any split of the stream gives the same frames."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from taihang.constants import PROTOCOL_VERSION
from taihang.net.frames import (
    HEADER_BYTES,
    HELLO,
    FrameDecoder,
    FrameKind,
    FrameTooLarge,
    Hello,
    decode_hello,
    encode_frame,
    encode_frame_header,
    encode_hello,
)

FRAMES = [(FrameKind.CONSENSUS, b"vote"), (FrameKind.TXS, b""), (7, b"x" * 300)]
STREAM = b"".join(encode_frame(kind, body) for kind, body in FRAMES)


def test_encode_frame_is_length_kind_body() -> None:
    assert encode_frame(FrameKind.TXS, b"abc") == b"\x00\x00\x00\x03\x02abc"
    assert encode_frame_header(FrameKind.CONSENSUS, 5) == b"\x00\x00\x00\x05\x01"
    assert HEADER_BYTES == 5


def test_decoder_splits_coalesced_frames() -> None:
    decoder = FrameDecoder(1024)
    assert decoder.feed(STREAM) == FRAMES
    assert decoder.buffered_bytes == 0


def test_decoder_waits_for_the_rest_of_a_frame() -> None:
    decoder = FrameDecoder(1024)
    got = [frame for byte in STREAM for frame in decoder.feed(bytes([byte]))]
    assert got == FRAMES


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=8))
def test_decoder_gives_the_same_frames_for_any_split(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    decoder = FrameDecoder(1024)
    got = [
        f for start, stop in itertools.pairwise(bounds) for f in decoder.feed(STREAM[start:stop])
    ]
    assert got == FRAMES


def test_decoder_accepts_a_body_of_exactly_the_limit() -> None:
    assert FrameDecoder(4).feed(encode_frame(FrameKind.TXS, b"abcd")) == [(FrameKind.TXS, b"abcd")]


def test_decoder_refuses_an_oversized_frame_from_its_header_alone() -> None:
    decoder = FrameDecoder(4)
    with pytest.raises(FrameTooLarge, match="5 bytes"):
        decoder.feed(encode_frame_header(FrameKind.TXS, 5))  # no body sent: never buffered


def test_hello_round_trips_and_rejects_garbage() -> None:
    hello = Hello(PROTOCOL_VERSION, b"\x01" * 32, "n1")
    frame = encode_hello(hello)
    assert FrameDecoder(1024).feed(frame) == [(HELLO, frame[HEADER_BYTES:])]
    assert decode_hello(frame[HEADER_BYTES:]) == hello
    with pytest.raises(msgspec.DecodeError):
        decode_hello(b"\x93\x01\xc4")
    with pytest.raises(msgspec.ValidationError):
        decode_hello(msgspec.msgpack.encode([1, "not bytes", "n1"]))
