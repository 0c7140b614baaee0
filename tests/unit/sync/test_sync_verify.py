"""Unit tests for `taihang.sync.messages` and `taihang.sync.verify`: wire forms, certified tips
and hash-linked ranges, on real certified chains (fast suite; one tip under real Ed25519)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from consensus_support import ED25519, ChainBuilder, make_genesis, make_keys, sign_qc, sign_tc
from sync_support import (
    BLOCKS,
    BUILDER,
    CHANNEL,
    GENESIS_ID,
    IDS,
    KEYS,
    SUITE,
    build_tip,
    get_range,
    replace_header,
    replace_transactions,
)

from taihang.codec import encode
from taihang.errors import DecodeError, InvalidCertificate, InvalidInput
from taihang.ledger.block import ZERO_HASH, ExecRoot, QuorumCert, ValidatorSet
from taihang.sync.messages import (
    RangeRequest,
    RangeResponse,
    SyncMessage,
    Tip,
    TipRequest,
    decode_sync_message,
    encode_sync_message,
)
from taihang.sync.verify import InvalidSyncData, link_range_down, verify_tip

# Messages.

MESSAGES: list[SyncMessage] = [
    TipRequest(nonce=0),
    TipRequest(nonce=2**63 - 1),
    Tip(nonce=1, height=0, block_id=GENESIS_ID, proof=None),
    build_tip(12, nonce=3),
    RangeRequest(start=1, count=64),
    RangeResponse(start=4, blocks=get_range(4, 5)),  # some of these carry transactions
    RangeResponse(start=9, blocks=[]),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_decode_sync_message_round_trips_each_message(message: SyncMessage) -> None:
    data = encode_sync_message(message)
    decoded = decode_sync_message(data)
    assert type(decoded) is type(message)
    assert decoded == message
    assert encode_sync_message(decoded) == data


def test_encode_sync_message_tags_each_kind_differently() -> None:
    kinds = {msgspec.msgpack.decode(encode_sync_message(m))[0] for m in MESSAGES}
    assert len(kinds) == 4


def _envelope(kind: int, body: bytes) -> bytes:
    """An envelope built by hand, as a peer running other code could send it."""
    return msgspec.msgpack.encode([kind, msgspec.Raw(body)])


def test_envelope_built_by_hand_is_the_real_encoding() -> None:
    message = TipRequest(nonce=5)
    assert _envelope(1, encode(message)) == encode_sync_message(message)


@pytest.mark.parametrize("kind", [0, 5, 99, -1])
def test_decode_sync_message_rejects_unknown_kind(kind: int) -> None:
    with pytest.raises(DecodeError, match="unknown sync message kind"):
        decode_sync_message(_envelope(kind, encode(TipRequest(nonce=1))))


GARBAGE = {
    "empty": b"",
    "nil": msgspec.msgpack.encode(None),
    "junk": b"\xc1\xff\x00garbage",
    "not_an_envelope": msgspec.msgpack.encode({"kind": 1}),
    "truncated": encode_sync_message(build_tip(3))[:-3],
    "trailing_byte": encode_sync_message(TipRequest(nonce=1)) + b"\x00",
    "body_of_other_kind": _envelope(1, encode(RangeRequest(start=1, count=2))),
    "body_not_msgpack": _envelope(3, b"\xc1"),
    "non_minimal_int": _envelope(1, b"\x91\xcd\x00\x01"),  # [1] with 1 as a uint16
}


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
def test_decode_sync_message_rejects_garbage(data: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_sync_message(data)
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.code == "malformed"


# verify_tip.


def _verify_tip(tip: Tip, validators: ValidatorSet = KEYS.validators, suite: Any = SUITE) -> None:
    verify_tip(tip, validators, suite, channel=CHANNEL, epoch=0, genesis_id=GENESIS_ID)


@pytest.mark.parametrize("height", [1, 2, 17, 48])
def test_verify_tip_accepts_genuine_commit_proof(height: int) -> None:
    _verify_tip(build_tip(height))


def test_verify_tip_accepts_genesis_without_proof() -> None:
    _verify_tip(build_tip(0))


def test_verify_tip_accepts_genuine_proof_under_ed25519() -> None:
    keys = make_keys(4, ED25519)
    genesis = make_genesis(keys)
    builder = ChainBuilder(keys, genesis)
    blocks = builder.chain([1, 2, 3])
    proof = builder.qc_of(blocks[2])
    tip = Tip(nonce=1, height=2, block_id=builder.block_id(blocks[1]), proof=proof)
    verify_tip(
        tip, keys.validators, ED25519, channel=CHANNEL, epoch=0, genesis_id=builder.genesis_id
    )
    forged = msgspec.structs.replace(proof, signatures=[bytes(64)] * 3)
    with pytest.raises(InvalidCertificate, match="does not verify"):
        verify_tip(
            msgspec.structs.replace(tip, proof=forged),
            keys.validators,
            ED25519,
            channel=CHANNEL,
            epoch=0,
            genesis_id=builder.genesis_id,
        )


def test_verify_tip_rejects_missing_proof() -> None:
    tip = msgspec.structs.replace(build_tip(5), proof=None)
    with pytest.raises(InvalidSyncData, match="without a commit proof"):
        _verify_tip(tip)


def test_verify_tip_rejects_non_consecutive_rounds() -> None:
    # Block 2 in round 2, its child in round 4: the QC on the child is genuine but commits nothing.
    blocks = BUILDER.chain([1, 2, 4])
    proof = BUILDER.qc_of(blocks[2])
    assert (proof.vote_data.parent_round, proof.vote_data.round) == (2, 4)
    tip = Tip(nonce=1, height=2, block_id=BUILDER.block_id(blocks[1]), proof=proof)
    with pytest.raises(InvalidSyncData, match="not consecutive"):
        _verify_tip(tip)


def test_verify_tip_rejects_proof_naming_another_parent() -> None:
    tip = msgspec.structs.replace(build_tip(5), block_id=IDS[4])
    with pytest.raises(InvalidSyncData, match="does not name the tip"):
        _verify_tip(tip)


def test_verify_tip_rejects_proof_for_another_height() -> None:
    # The id is the real parent's, but the tip claims a height the proof does not name.
    for height in (4, 6):
        tip = msgspec.structs.replace(build_tip(5), height=height)
        with pytest.raises(InvalidSyncData, match="does not name the tip"):
            _verify_tip(tip)


def test_verify_tip_rejects_proof_of_another_tip() -> None:
    # A genuine commit proof, but of block 9: it names block 9, not block 5, as its parent.
    tip = msgspec.structs.replace(build_tip(5), proof=build_tip(9).proof)
    with pytest.raises(InvalidSyncData):
        _verify_tip(tip)


def _proof_of(height: int) -> QuorumCert:
    proof = build_tip(height).proof
    assert proof is not None
    return proof


def test_verify_tip_rejects_too_few_signers() -> None:
    proof = sign_qc(KEYS, _proof_of(5).vote_data, signers=[0, 1])  # quorum is 3 of 4
    tip = msgspec.structs.replace(build_tip(5), proof=proof)
    with pytest.raises(InvalidCertificate, match="below the quorum"):
        _verify_tip(tip)


def test_verify_tip_rejects_bad_signature() -> None:
    proof = _proof_of(5)
    signatures = [*proof.signatures[:-1], bytes(len(proof.signatures[-1]))]
    tip = msgspec.structs.replace(
        build_tip(5), proof=msgspec.structs.replace(proof, signatures=signatures)
    )
    with pytest.raises(InvalidCertificate, match="does not verify"):
        _verify_tip(tip)


def test_verify_tip_rejects_signatures_over_other_vote_data() -> None:
    # Signed in rounds 5 -> 6, relabelled 6 -> 7: still consecutive, but nobody signed that.
    proof = _proof_of(5)
    data = proof.vote_data
    relabelled = msgspec.structs.replace(
        proof,
        vote_data=msgspec.structs.replace(data, round=data.round + 1, parent_round=data.round),
    )
    tip = msgspec.structs.replace(build_tip(5), proof=relabelled)
    with pytest.raises(InvalidCertificate, match="does not verify"):
        _verify_tip(tip)


def test_verify_tip_rejects_height_zero_that_is_not_genesis() -> None:
    for block_id in (IDS[1], ZERO_HASH):
        tip = Tip(nonce=1, height=0, block_id=block_id, proof=None)
        with pytest.raises(InvalidSyncData, match="genesis"):
            _verify_tip(tip)


def test_verify_tip_rejects_negative_height() -> None:
    for tip in (
        Tip(nonce=1, height=-1, block_id=GENESIS_ID, proof=None),
        Tip(nonce=1, height=-1, block_id=IDS[1], proof=_proof_of(1)),
    ):
        with pytest.raises(InvalidSyncData, match="negative"):
            _verify_tip(tip)


def test_invalid_sync_data_is_invalid_input_with_stable_code() -> None:
    with pytest.raises(InvalidInput) as caught:
        _verify_tip(Tip(nonce=1, height=-1, block_id=b"", proof=None))
    assert caught.value.code == "invalid_sync_data"


# link_range_down.


@pytest.mark.parametrize(("start", "count"), [(1, 1), (1, 8), (3, 5), (40, 9), (49, 1)])
def test_link_range_down_accepts_genuine_range(start: int, count: int) -> None:
    top = start + count - 1
    below_id = link_range_down(get_range(start, count), start, IDS[top], SUITE)
    assert below_id == IDS[start - 1]


def test_link_range_down_chains_windows_down_to_genesis() -> None:
    expected = IDS[48]
    for start in (41, 33, 25, 17, 9, 1):
        expected = link_range_down(get_range(start, 8), start, expected, SUITE)
    assert expected == GENESIS_ID


OTHER_ROOT = ExecRoot(height=0, state_root=bytes(32), receipts_root=bytes(32))
HEADER_CHANGES: dict[str, Any] = {
    "protocol_version": lambda h: h.protocol_version + 1,
    "channel": lambda h: h.channel + "x",
    "epoch": lambda h: h.epoch + 1,
    "round": lambda h: h.round + 100,
    "parent_id": lambda h: bytes(32),
    "timestamp_ms": lambda h: h.timestamp_ms + 1,
    "proposer": lambda h: h.proposer[::-1],
    "tx_root": lambda h: bytes(32),
    "exec_root": lambda h: OTHER_ROOT,
    "validator_set_hash": lambda h: bytes(32),
    "qc": lambda h: msgspec.structs.replace(h.qc, signatures=h.qc.signatures[:-1]),
    "tc": lambda h: sign_tc(KEYS, h.round, _proof_of(1), {0: 1, 1: 1, 2: 1}),
}


@pytest.mark.parametrize("offset", [0, 3, 7], ids=["bottom", "middle", "top"])
@pytest.mark.parametrize("field", HEADER_CHANGES, ids=list(HEADER_CHANGES))
def test_link_range_down_rejects_changed_header_field(field: str, offset: int) -> None:
    blocks = get_range(11, 8)
    block = blocks[offset]
    blocks[offset] = replace_header(block, **{field: HEADER_CHANGES[field](block.header)})
    assert blocks[offset] != block
    with pytest.raises(InvalidSyncData, match="does not hash"):
        link_range_down(blocks, 11, IDS[18], SUITE)


@pytest.mark.parametrize("offset", [0, 3, 7], ids=["bottom", "middle", "top"])
def test_link_range_down_rejects_changed_height(offset: int) -> None:
    blocks = get_range(11, 8)
    blocks[offset] = replace_header(blocks[offset], height=blocks[offset].header.height + 1)
    with pytest.raises(InvalidSyncData, match="has height"):
        link_range_down(blocks, 11, IDS[18], SUITE)


@pytest.mark.parametrize(
    "change",
    [
        lambda txs: [*txs, b"forged"],
        lambda txs: txs[:-1],
        lambda txs: [b"forged" + txs[0], *txs[1:]],
        lambda txs: txs[::-1],
    ],
    ids=["added", "removed", "changed", "reordered"],
)
def test_link_range_down_rejects_changed_transactions(change: Any) -> None:
    blocks = get_range(11, 8)  # block 14 carries two transactions
    offset = 3
    block = blocks[offset]
    assert len(block.transactions) == 2
    blocks[offset] = replace_transactions(block, change(block.transactions))
    assert blocks[offset] != block
    with pytest.raises(InvalidInput):
        link_range_down(blocks, 11, IDS[18], SUITE)


def test_link_range_down_rejects_wrong_start() -> None:
    for start in (10, 12):
        with pytest.raises(InvalidSyncData, match="has height"):
            link_range_down(get_range(11, 8), start, IDS[18], SUITE)


def test_link_range_down_rejects_gap_and_swap() -> None:
    blocks = get_range(11, 8)
    with pytest.raises(InvalidSyncData):
        link_range_down([*blocks[:3], *blocks[4:]], 11, IDS[18], SUITE)
    swapped = [*blocks[:3], blocks[4], blocks[3], *blocks[5:]]
    with pytest.raises(InvalidSyncData):
        link_range_down(swapped, 11, IDS[18], SUITE)


def test_link_range_down_rejects_empty_range() -> None:
    with pytest.raises(InvalidSyncData, match="empty"):
        link_range_down([], 11, IDS[18], SUITE)


def test_link_range_down_rejects_range_not_linking_to_expected_top() -> None:
    for expected in (IDS[19], IDS[17], ZERO_HASH):
        with pytest.raises(InvalidSyncData, match="does not hash"):
            link_range_down(get_range(11, 8), 11, expected, SUITE)


def test_link_range_down_rejects_genuine_blocks_from_another_chain() -> None:
    # A sibling of block 12 (another round): genuine on its own, not the committed one.
    sibling = BUILDER.child(BLOCKS[11], round=40)
    blocks = [BLOCKS[11], sibling]
    with pytest.raises(InvalidSyncData, match="does not hash"):
        link_range_down(blocks, 11, IDS[12], SUITE)
    assert link_range_down(blocks, 11, BUILDER.block_id(sibling), SUITE) == IDS[10]
