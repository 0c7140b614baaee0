"""The canonical codec under random values and hostile bytes.

Two halves. Round trips: every allowed dynamic value decodes from its encoding to itself, type
for type. Rejections: each way of writing bytes that are not the one canonical encoding
(trailing or missing bytes, floats, wide integers, unsorted maps, deep nesting, oversize input,
misused extensions) raises `DecodeError`, and a seeded fuzz over random and mutated bytes shows
that every decoder that reads untrusted input raises nothing but `InvalidInput` subclasses.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taihang.codec import BIG_INT_EXT_CODE, decode, decode_value, encode, encode_value
from taihang.constants import BIG_INT_BITS_MAX, NESTING_DEPTH_MAX
from taihang.crypto import get_suite
from taihang.errors import DecodeError, InvalidInput
from taihang.ledger.block import (
    Block,
    BlockHeader,
    ExecRoot,
    QuorumCert,
    TimeoutCert,
    TimeoutEntry,
    VoteData,
)
from taihang.ledger.transaction import (
    TxBody,
    TxEnvelope,
    build_body,
    decode_transaction,
    sign_body,
)

SUITE = get_suite("ed25519")
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1
BIG_MAX = 2**BIG_INT_BITS_MAX - 1  # the widest magnitude a contract integer may have

BOUNDARY_INTS = [
    0,
    1,
    -1,
    127,
    128,
    -32,
    -33,
    255,
    256,
    2**16,
    2**32,
    2**63 - 1,
    2**63,
    UINT64_MAX,
    UINT64_MAX + 1,
    INT64_MIN,
    INT64_MIN - 1,
    -(2**71),
    2**71,
    -(2**511),
    2**511,
    BIG_MAX,
    -BIG_MAX,
]

small_ints = st.integers(min_value=INT64_MIN, max_value=UINT64_MAX)
ints = st.one_of(
    small_ints, st.integers(min_value=-BIG_MAX, max_value=BIG_MAX), st.sampled_from(BOUNDARY_INTS)
)
keys = st.one_of(st.text(max_size=8), st.binary(max_size=8), small_ints, st.booleans())
scalars = st.one_of(st.none(), st.booleans(), ints, st.text(max_size=16), st.binary(max_size=16))
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=25,
)
# Values without big ints, so that plain msgpack helpers can build hostile variants of them.
plain_values = st.recursive(
    st.one_of(st.none(), st.booleans(), small_ints, st.text(max_size=8), st.binary(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)


def assert_same_value(actual: Any, expected: Any) -> None:
    """Equal and of the same types all the way down (True is not 1, b"" is not "")."""
    assert type(actual) is type(expected), (actual, expected)
    if isinstance(expected, list):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            assert_same_value(a, e)
    elif isinstance(expected, dict):
        assert len(actual) == len(expected)
        for key, item in expected.items():
            match = [k for k in actual if k == key and type(k) is type(key)]
            assert match, (key, actual)
            assert_same_value(actual[match[0]], item)
    else:
        assert actual == expected


def nest(depth: int) -> Any:
    """`depth` containers around a scalar, alternating lists and maps."""
    value: Any = 0
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def nest_bytes(depth: int) -> bytes:
    """The encoding of `nest(depth)`, written by hand (`encode_value` refuses deep values)."""
    headers = [b"\x91" if level % 2 else b"\x81\xa1k" for level in range(depth)]
    return b"".join(reversed(headers)) + b"\x00"


def msgpack_map(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """A map with the entries in exactly the given order (fixmap or map16 header)."""
    header = (
        bytes([0x80 | len(pairs)]) if len(pairs) < 16 else b"\xde" + struct.pack(">H", len(pairs))
    )
    return header + b"".join(k + v for k, v in pairs)


def ext(code: int, payload: bytes) -> bytes:
    return msgspec.msgpack.encode(msgspec.msgpack.Ext(code, payload))


# ----------------------------------------------------------------------------- round trips


@settings(max_examples=400, deadline=None)
@given(values)
def test_decode_value_round_trips_every_allowed_value(value: Any) -> None:
    data = encode_value(value)
    decoded = decode_value(data)
    assert_same_value(decoded, value)
    assert encode_value(decoded) == data


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=4).map(tuple))
def test_encode_value_writes_tuples_as_lists(value: tuple[Any, ...]) -> None:
    assert encode_value(value) == encode_value(list(value))
    assert_same_value(decode_value(encode_value(value)), list(value))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, scalars, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_encode_value_ignores_insertion_order(mapping: dict[Any, Any], rng: random.Random) -> None:
    items = list(mapping.items())
    rng.shuffle(items)
    assert encode_value(dict(items)) == encode_value(mapping)


@settings(max_examples=300, deadline=None)
@given(ints)
def test_encode_value_uses_the_big_int_extension_exactly_beyond_64_bits(number: int) -> None:
    data = encode_value(number)
    if INT64_MIN <= number <= UINT64_MAX:
        assert data == msgspec.msgpack.encode(number)
    else:
        payload = msgspec.msgpack.decode(data, type=msgspec.msgpack.Ext)
        payload_bytes = bytes(payload.data)
        assert payload.code == BIG_INT_EXT_CODE
        # minimal two's complement: dropping the first byte must change the value
        assert int.from_bytes(payload_bytes, "big", signed=True) == number
        assert int.from_bytes(payload_bytes[1:], "big", signed=True) != number
    assert decode_value(data) == number


# ----------------------------------------------------------------------------- rejections


@settings(max_examples=200, deadline=None)
@given(values, st.binary(min_size=1, max_size=8))
def test_decode_value_rejects_trailing_bytes(value: Any, extra: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_value(encode_value(value) + extra)


@settings(max_examples=200, deadline=None)
@given(values, st.data())
def test_decode_value_rejects_truncation(value: Any, data: st.DataObject) -> None:
    encoded = encode_value(value)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(DecodeError):
        decode_value(encoded[:cut])


float_bytes = st.one_of(
    st.floats(allow_nan=True).map(lambda f: b"\xcb" + struct.pack(">d", f)),
    st.floats(width=32, allow_nan=True).map(lambda f: b"\xca" + struct.pack(">f", f)),
)


def _in_list(parts: tuple[list[Any], bytes, list[Any]]) -> bytes:
    before, inner, after = parts
    items = [msgspec.Raw(encode_value(v)) for v in before]
    items.append(msgspec.Raw(inner))
    items.extend(msgspec.Raw(encode_value(v)) for v in after)
    return msgspec.msgpack.encode(items)


def _in_map_value(parts: tuple[str, bytes]) -> bytes:
    return msgpack_map([(encode_value(parts[0]), parts[1])])


def _as_map_key(parts: tuple[bytes, Any]) -> bytes:
    return msgpack_map([(parts[0], encode_value(parts[1]))])


floats_somewhere = st.recursive(
    st.one_of(float_bytes, st.tuples(float_bytes, plain_values).map(_as_map_key)),
    lambda inner: st.one_of(
        st.tuples(
            st.lists(plain_values, max_size=2), inner, st.lists(plain_values, max_size=2)
        ).map(_in_list),
        st.tuples(st.text(max_size=4), inner).map(_in_map_value),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(floats_somewhere)
def test_decode_value_rejects_floats_anywhere(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_value(data)


def int_forms(number: int) -> list[bytes]:
    """Every MessagePack integer form that can hold `number`."""
    forms = []
    if 0 <= number <= 0x7F:
        forms.append(bytes([number]))
    if -32 <= number < 0:
        forms.append(struct.pack(">b", number))
    for tag, fmt, low, high in (
        (b"\xcc", ">B", 0, 2**8 - 1),
        (b"\xcd", ">H", 0, 2**16 - 1),
        (b"\xce", ">I", 0, 2**32 - 1),
        (b"\xcf", ">Q", 0, 2**64 - 1),
        (b"\xd0", ">b", -(2**7), 2**7 - 1),
        (b"\xd1", ">h", -(2**15), 2**15 - 1),
        (b"\xd2", ">i", -(2**31), 2**31 - 1),
        (b"\xd3", ">q", -(2**63), 2**63 - 1),
    ):
        if low <= number <= high:
            forms.append(tag + struct.pack(fmt, number))
    return forms


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        # below -2**31 and above 2**63 - 1 a single 64-bit form exists, so nothing is wider
        st.integers(min_value=-(2**31), max_value=2**63 - 1),
        st.sampled_from([0, 1, -1, 127, 128, -32, -33, 255, 256, 2**32]),
    )
)
def test_decode_value_rejects_non_minimal_integers(number: int) -> None:
    canonical = encode_value(number)
    wide = [form for form in int_forms(number) if form != canonical]
    assert canonical in int_forms(number)
    assert wide
    for form in wide:
        with pytest.raises(DecodeError):
            decode_value(form)
        with pytest.raises(DecodeError):
            decode_value(b"\x91" + form)  # the same inside a list


def test_decode_value_rejects_one_written_as_uint16() -> None:
    with pytest.raises(DecodeError, match="canonical"):
        decode_value(b"\xcd\x00\x01")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, scalars, min_size=2, max_size=15))
def test_decode_value_rejects_unsorted_map_keys(mapping: dict[Any, Any]) -> None:
    pairs = sorted((encode_value(k), encode_value(v)) for k, v in mapping.items())
    assert decode_value(msgpack_map(pairs)) == mapping  # the sorted order is the canonical one
    with pytest.raises(DecodeError):
        decode_value(msgpack_map(pairs[::-1]))
    with pytest.raises(DecodeError):
        decode_value(msgpack_map(pairs[1:] + pairs[:1]))


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=NESTING_DEPTH_MAX + 1, max_value=4 * NESTING_DEPTH_MAX))
def test_decode_value_rejects_nesting_deeper_than_the_limit(depth: int) -> None:
    with pytest.raises(DecodeError):
        decode_value(nest_bytes(depth))
    with pytest.raises(DecodeError):
        encode_value(nest(depth))


def test_decode_value_accepts_nesting_up_to_the_limit() -> None:
    value = nest(NESTING_DEPTH_MAX)
    assert encode_value(value) == nest_bytes(NESTING_DEPTH_MAX)
    assert decode_value(nest_bytes(NESTING_DEPTH_MAX)) == value


def test_decode_value_rejects_nesting_that_exhausts_the_stack() -> None:
    with pytest.raises(DecodeError):
        decode_value(b"\x91" * 200_000 + b"\x00")


@settings(max_examples=100, deadline=None)
@given(values)
def test_decode_value_rejects_input_over_max_bytes(value: Any) -> None:
    data = encode_value(value)
    assert_same_value(decode_value(data, max_bytes=len(data)), value)
    with pytest.raises(DecodeError, match="exceeds"):
        decode_value(data, max_bytes=len(data) - 1)


@settings(max_examples=300, deadline=None)
@given(small_ints, st.integers(min_value=0, max_value=4))
def test_decode_value_rejects_big_int_extension_for_64_bit_values(number: int, pad: int) -> None:
    length = (number.bit_length() + 8) // 8 + pad
    for payload in (number.to_bytes(length, "big", signed=True), b""):
        with pytest.raises(DecodeError):
            decode_value(ext(BIG_INT_EXT_CODE, payload))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=UINT64_MAX + 1, max_value=BIG_MAX), st.booleans())
def test_decode_value_rejects_padded_big_int_payloads(magnitude: int, negative: bool) -> None:
    number = -magnitude if negative else magnitude
    canonical = msgspec.msgpack.decode(encode_value(number), type=msgspec.msgpack.Ext).data
    padding = b"\xff" if negative else b"\x00"
    with pytest.raises(DecodeError):
        decode_value(ext(BIG_INT_EXT_CODE, padding + canonical))


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=BIG_MAX + 1, max_value=2**600), st.booleans())
def test_decode_value_rejects_integers_wider_than_the_limit(magnitude: int, negative: bool) -> None:
    number = -magnitude if negative else magnitude
    payload = number.to_bytes((magnitude.bit_length() + 8) // 8, "big", signed=True)
    with pytest.raises(DecodeError):
        decode_value(ext(BIG_INT_EXT_CODE, payload))
    with pytest.raises(DecodeError):
        encode_value(number)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=-128, max_value=127).filter(lambda c: c != BIG_INT_EXT_CODE),
    st.binary(max_size=20),
)
def test_decode_value_rejects_unknown_extension_codes(code: int, payload: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_value(ext(code, payload))


# ----------------------------------------------------------------------------- fuzz

FUZZ_INPUTS = 10_000


def _seed_corpus() -> list[bytes]:
    seed = bytes(range(32))
    body = build_body(
        channel="main",
        sender_public_key=SUITE.public_key_from_seed(seed),
        nonce=7,
        contract="kv",
        method="put",
        args=["key", {"a": [1, -(2**70), b"\x00", None, True], 5: "x"}],
        gas_limit=50_000,
        expires_at_height=100,
    )
    envelope = sign_body(body, seed, SUITE)
    vote = VoteData(
        channel="main",
        epoch=0,
        round=4,
        block_id=b"\x01" * 32,
        height=4,
        parent_id=b"\x02" * 32,
        parent_round=3,
    )
    qc = QuorumCert(vote_data=vote, signers=b"\x05", signatures=[b"\x03" * 64, b"\x04" * 64])
    header = BlockHeader(
        protocol_version=1,
        channel="main",
        epoch=0,
        round=5,
        height=5,
        parent_id=b"\x01" * 32,
        timestamp_ms=1_700_000_000_000,
        proposer="ab" * 20,
        tx_root=b"\x06" * 32,
        exec_root=ExecRoot(height=2, state_root=b"\x07" * 32, receipts_root=b"\x08" * 32),
        validator_set_hash=b"\x09" * 32,
        qc=qc,
        tc=TimeoutCert(
            channel="main",
            epoch=0,
            round=4,
            high_qc=qc,
            entries=[TimeoutEntry(signer=0, hqc_round=3, signature=b"\x0a" * 64)],
        ),
    )
    return [
        envelope,
        encode(body),
        encode(Block(header=header, transactions=[envelope, envelope])),
        encode(qc),
        encode_value([1, "a", {b"x": -(2**80), 3: [None, False]}, 2**64]),
        b"",
    ]


def _mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        where = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(where, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[min(where, len(out) - 1)] = rng.choice((0x00, 0x7F, 0x80, 0xC0, 0xCB, 0xDC, 0xFF))
        elif op == 2:
            out[where:where] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == 3:
            del out[where : where + rng.randint(1, 8)]
        elif op == 4:
            out = out[:where]
        else:
            other = rng.choice(corpus)
            start = rng.randrange(len(other) + 1)
            out[where:where] = other[start : start + rng.randint(1, 16)]
    return bytes(out)


DECODERS: list[tuple[str, Callable[[bytes], object]]] = [
    ("TxEnvelope", lambda b: decode(b, TxEnvelope)),
    ("TxBody", lambda b: decode(b, TxBody)),
    ("Block", lambda b: decode(b, Block)),
    ("QuorumCert", lambda b: decode(b, QuorumCert)),
    ("value", decode_value),
    ("transaction", lambda b: decode_transaction(b, SUITE)),
]


def test_decoders_raise_only_invalid_input_on_random_and_mutated_bytes() -> None:
    rng = random.Random(20240601)
    corpus = _seed_corpus()
    accepted = 0
    for i in range(FUZZ_INPUTS):
        if i % 4 == 0:
            data = rng.randbytes(rng.randrange(64))
        else:
            data = _mutate(rng.choice(corpus), rng, corpus)
        for decoder_name, decoder in DECODERS:
            try:
                decoder(data)
                accepted += 1
            except InvalidInput:
                pass
            except Exception as exc:  # pragma: no cover - the assertion message is the point
                pytest.fail(f"{decoder_name} raised {exc!r} for {data.hex()}")
    assert accepted > 0  # the mutations sometimes keep the input valid: the harness is live
