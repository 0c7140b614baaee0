"""Unit tests for `taihang.ledger.block`: validator sets, certificates and header links."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest

from taihang.codec import decode, encode
from taihang.constants import EXEC_LAG_MIN, PROTOCOL_VERSION
from taihang.crypto import get_suite
from taihang.crypto.merkle import compute_root
from taihang.errors import InvalidBlock, InvalidCertificate
from taihang.ledger.block import (
    ZERO_HASH,
    Block,
    BlockHeader,
    ExecRoot,
    QuorumCert,
    Validator,
    ValidatorSet,
    build_genesis_qc,
    build_vote_data,
    compute_block_id,
    compute_tx_root,
    compute_validator_set_hash,
    compute_vote_message,
    decode_signer_bitmap,
    encode_signer_bitmap,
    is_genesis_qc,
    validate_exec_root_lag,
    validate_header_links,
    verify_qc,
)
from taihang.ledger.transaction import compute_address

SUITE = get_suite("ed25519")
CHANNEL = "main"
GENESIS_ID = b"\x99" * 32


def make_seeds(count: int) -> list[bytes]:
    return [bytes([i + 1]) * 32 for i in range(count)]


def make_validator_set(seeds: list[bytes], weights: list[int] | None = None) -> ValidatorSet:
    weights = weights or [1] * len(seeds)
    validators = []
    for seed, weight in zip(seeds, weights, strict=True):
        key = SUITE.public_key_from_seed(seed)
        validators.append(
            Validator(address=compute_address(SUITE, key), public_key=key, weight=weight)
        )
    return ValidatorSet(validators)


def seed_of(validators: ValidatorSet, seeds: list[bytes], index: int) -> bytes:
    """The seed of the validator at `index` of the address-ordered set."""
    key = validators.members[index].public_key
    return next(seed for seed in seeds if SUITE.public_key_from_seed(seed) == key)


def make_header(**overrides: Any) -> BlockHeader:
    fields: dict[str, Any] = {
        "protocol_version": PROTOCOL_VERSION,
        "channel": CHANNEL,
        "epoch": 0,
        "round": 5,
        "height": 5,
        "parent_id": b"\x01" * 32,
        "timestamp_ms": 1_000,
        "proposer": "ab" * 20,
        "tx_root": compute_root([]),
        "exec_root": ExecRoot(height=2, state_root=b"\x02" * 32, receipts_root=b"\x03" * 32),
        "validator_set_hash": b"\x04" * 32,
        "qc": build_genesis_qc(CHANNEL, GENESIS_ID),
    }
    fields.update(overrides)
    return BlockHeader(**fields)


def sign_qc(
    validators: ValidatorSet, seeds: list[bytes], indices: list[int], header: BlockHeader
) -> QuorumCert:
    vote_data = build_vote_data(SUITE, header)
    message = compute_vote_message(vote_data)
    return QuorumCert(
        vote_data=vote_data,
        signers=encode_signer_bitmap(indices, len(validators.members)),
        signatures=[SUITE.sign(seed_of(validators, seeds, i), message) for i in sorted(indices)],
    )


def check_qc(qc: QuorumCert, validators: ValidatorSet, **overrides: Any) -> None:
    kwargs: dict[str, Any] = {"channel": CHANNEL, "epoch": 0, "genesis_id": GENESIS_ID}
    kwargs.update(overrides)
    verify_qc(qc, validators, SUITE, **kwargs)


# ----------------------------------------------------------------------------- validator set


@pytest.mark.parametrize(
    ("weights", "total", "quorum"),
    [
        ([1], 1, 1),
        ([1, 1, 1], 3, 3),
        ([1] * 4, 4, 3),
        ([1] * 7, 7, 5),
        ([1] * 10, 10, 7),
        ([1, 2, 3, 4], 10, 7),
        ([5, 1, 1, 1], 8, 6),
        ([3], 3, 3),
    ],
)
def test_validator_set_quorum_is_more_than_two_thirds_of_the_weight(
    weights: list[int], total: int, quorum: int
) -> None:
    validators = make_validator_set(make_seeds(len(weights)), weights)
    assert validators.total_weight == total
    assert validators.quorum_weight == quorum
    assert 3 * quorum > 2 * total >= 3 * (quorum - 1)


def test_validator_set_orders_members_by_address() -> None:
    validators = make_validator_set(make_seeds(7))
    addresses = [v.address for v in validators.members]
    assert addresses == sorted(addresses)
    for index, address in enumerate(addresses):
        assert validators.index_of(address) == index
    with pytest.raises(InvalidCertificate):
        validators.index_of("00" * 20)


def test_validator_set_hash_ignores_input_order() -> None:
    validators = make_validator_set(make_seeds(4))
    members = list(validators.members)
    assert ValidatorSet(members[::-1]).hash == validators.hash
    assert compute_validator_set_hash(members[::-1]) == validators.hash
    heavier = [msgspec.structs.replace(members[0], weight=2), *members[1:]]
    assert ValidatorSet(heavier).hash != validators.hash


@pytest.mark.parametrize("weight", [0, -1])
def test_validator_set_rejects_non_positive_weights(weight: int) -> None:
    with pytest.raises(InvalidCertificate, match="positive"):
        make_validator_set(make_seeds(2), [1, weight])


def test_validator_set_rejects_duplicates_and_emptiness() -> None:
    validator = make_validator_set(make_seeds(1)).members[0]
    with pytest.raises(InvalidCertificate, match="duplicate"):
        ValidatorSet([validator, validator])
    with pytest.raises(InvalidCertificate, match="at least one"):
        ValidatorSet([])


# ----------------------------------------------------------------------------- signer bitmap


@pytest.mark.parametrize("count", [1, 2, 7, 8, 9, 16, 17])
def test_signer_bitmap_round_trips_every_small_subset(count: int) -> None:
    for size in range(min(count, 3) + 1):
        for indices in itertools.combinations(range(count), size):
            bitmap = encode_signer_bitmap(list(indices), count)
            assert len(bitmap) == (count + 7) // 8
            assert decode_signer_bitmap(bitmap, count) == list(indices)
    everyone = list(range(count))
    assert decode_signer_bitmap(encode_signer_bitmap(everyone, count), count) == everyone


def test_encode_signer_bitmap_sets_bit_i_of_byte_i_div_8() -> None:
    assert encode_signer_bitmap([0, 3, 8], 9) == bytes([0b0000_1001, 0b0000_0001])


@pytest.mark.parametrize(("bitmap", "count"), [(b"\x02", 1), (b"\x80", 7), (b"\xff\x02", 9)])
def test_decode_signer_bitmap_rejects_stray_bits(bitmap: bytes, count: int) -> None:
    with pytest.raises(InvalidCertificate, match="beyond"):
        decode_signer_bitmap(bitmap, count)


@pytest.mark.parametrize(("bitmap", "count"), [(b"", 1), (b"\x01\x00", 8), (b"\x01", 9)])
def test_decode_signer_bitmap_rejects_wrong_lengths(bitmap: bytes, count: int) -> None:
    with pytest.raises(InvalidCertificate, match="bytes"):
        decode_signer_bitmap(bitmap, count)


# ----------------------------------------------------------------------------- verify_qc


@pytest.mark.parametrize(
    ("count", "signers"), [(1, [0]), (4, [0, 1, 2]), (4, [0, 1, 2, 3]), (7, [1, 2, 4, 5, 6])]
)
def test_verify_qc_accepts_a_quorum_of_valid_signatures(count: int, signers: list[int]) -> None:
    seeds = make_seeds(count)
    validators = make_validator_set(seeds)
    qc = sign_qc(validators, seeds, signers, make_header())
    check_qc(qc, validators)
    assert decode(encode(qc), QuorumCert) == qc


def test_verify_qc_counts_weight_not_heads() -> None:
    seeds = make_seeds(4)
    validators = make_validator_set(seeds, [1, 1, 1, 1])
    heavy_key = validators.members[2].public_key
    weights = [7 if v.public_key == heavy_key else 1 for v in validators.members]
    weighted = ValidatorSet(
        [
            msgspec.structs.replace(v, weight=w)
            for v, w in zip(validators.members, weights, strict=True)
        ]
    )
    check_qc(sign_qc(weighted, seeds, [2], make_header()), weighted)  # 7 of 10 reaches 7
    with pytest.raises(InvalidCertificate, match="below the quorum"):
        check_qc(sign_qc(weighted, seeds, [0, 1, 3], make_header()), weighted)


def test_verify_qc_rejects_another_channel_or_epoch() -> None:
    seeds = make_seeds(4)
    validators = make_validator_set(seeds)
    qc = sign_qc(validators, seeds, [0, 1, 2], make_header())
    with pytest.raises(InvalidCertificate, match="channel"):
        check_qc(qc, validators, channel="other")
    with pytest.raises(InvalidCertificate, match="epoch"):
        check_qc(qc, validators, epoch=1)


def test_verify_qc_rejects_weight_below_quorum() -> None:
    seeds = make_seeds(4)
    validators = make_validator_set(seeds)
    with pytest.raises(InvalidCertificate, match="below the quorum"):
        check_qc(sign_qc(validators, seeds, [0, 3], make_header()), validators)
    with pytest.raises(InvalidCertificate, match="below the quorum"):
        check_qc(sign_qc(validators, seeds, [], make_header()), validators)


def test_verify_qc_rejects_a_bad_signature() -> None:
    seeds = make_seeds(4)
    validators = make_validator_set(seeds)
    qc = sign_qc(validators, seeds, [0, 1, 2], make_header())
    for position in range(3):
        signatures = list(qc.signatures)
        signatures[position] = bytes([signatures[position][0] ^ 1]) + signatures[position][1:]
        with pytest.raises(InvalidCertificate, match="does not verify"):
            check_qc(msgspec.structs.replace(qc, signatures=signatures), validators)
    swapped = [qc.signatures[1], qc.signatures[0], qc.signatures[2]]
    with pytest.raises(InvalidCertificate, match="does not verify"):
        check_qc(msgspec.structs.replace(qc, signatures=swapped), validators)


def test_verify_qc_rejects_signatures_over_other_vote_data() -> None:
    seeds = make_seeds(4)
    validators = make_validator_set(seeds)
    qc = sign_qc(validators, seeds, [0, 1, 2], make_header())
    for change in ({"round": 6}, {"height": 6}, {"block_id": b"\x00" * 32}, {"parent_round": 9}):
        forged = msgspec.structs.replace(qc.vote_data, **change)
        with pytest.raises(InvalidCertificate, match="does not verify"):
            check_qc(msgspec.structs.replace(qc, vote_data=forged), validators)


def test_verify_qc_rejects_mismatched_signer_and_signature_counts() -> None:
    seeds = make_seeds(4)
    validators = make_validator_set(seeds)
    qc = sign_qc(validators, seeds, [0, 1, 2], make_header())
    with pytest.raises(InvalidCertificate, match="signatures"):
        check_qc(msgspec.structs.replace(qc, signatures=qc.signatures[:2]), validators)
    with pytest.raises(InvalidCertificate, match="signatures"):
        check_qc(
            msgspec.structs.replace(qc, signatures=[*qc.signatures, qc.signatures[0]]), validators
        )
    with pytest.raises(InvalidCertificate, match="signatures"):
        check_qc(
            msgspec.structs.replace(qc, signers=encode_signer_bitmap([0, 1, 2, 3], 4)), validators
        )


def test_verify_qc_rejects_a_malformed_bitmap() -> None:
    seeds = make_seeds(4)
    validators = make_validator_set(seeds)
    qc = sign_qc(validators, seeds, [0, 1, 2], make_header())
    with pytest.raises(InvalidCertificate, match="beyond"):
        check_qc(msgspec.structs.replace(qc, signers=bytes([qc.signers[0] | 0x10])), validators)
    with pytest.raises(InvalidCertificate, match="bytes"):
        check_qc(msgspec.structs.replace(qc, signers=qc.signers + b"\x00"), validators)


def test_verify_qc_accepts_the_unsigned_genesis_qc() -> None:
    validators = make_validator_set(make_seeds(4))
    qc = build_genesis_qc(CHANNEL, GENESIS_ID)
    assert is_genesis_qc(qc)
    check_qc(qc, validators)


def test_verify_qc_rejects_an_unsigned_qc_for_another_block() -> None:
    validators = make_validator_set(make_seeds(4))
    with pytest.raises(InvalidCertificate, match="genesis"):
        check_qc(build_genesis_qc(CHANNEL, b"\x42" * 32), validators)
    genesis_qc = build_genesis_qc(CHANNEL, GENESIS_ID)
    with pytest.raises(InvalidCertificate, match="genesis"):
        check_qc(
            msgspec.structs.replace(
                genesis_qc, vote_data=msgspec.structs.replace(genesis_qc.vote_data, round=1)
            ),
            validators,
        )
    with pytest.raises(InvalidCertificate, match="channel"):
        check_qc(build_genesis_qc("other", GENESIS_ID), validators)


def test_verify_qc_rejects_an_unsigned_qc_above_height_zero() -> None:
    validators = make_validator_set(make_seeds(4))
    genesis_qc = build_genesis_qc(CHANNEL, GENESIS_ID)
    lifted = msgspec.structs.replace(
        genesis_qc, vote_data=msgspec.structs.replace(genesis_qc.vote_data, height=1)
    )
    assert not is_genesis_qc(lifted)
    with pytest.raises(InvalidCertificate):
        check_qc(lifted, validators)


# ----------------------------------------------------------------------------- header links


def make_child(parent: BlockHeader, link: bytes, **overrides: Any) -> BlockHeader:
    fields: dict[str, Any] = {
        "height": parent.height + 1,
        "round": parent.round + 1,
        "parent_id": link,
        "timestamp_ms": parent.timestamp_ms,
        "exec_root": parent.exec_root,
        "qc": build_genesis_qc(CHANNEL, link),
    }
    fields.update(overrides)
    return make_header(**fields)


def test_validate_header_links_accepts_a_well_linked_child() -> None:
    parent = make_header()
    parent_id = compute_block_id(SUITE, parent)
    validate_header_links(make_child(parent, parent_id), parent, parent_id)
    validate_header_links(make_child(parent, parent_id, timestamp_ms=2_000), parent, parent_id)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"protocol_version": PROTOCOL_VERSION + 1}, "protocol version"),
        ({"height": 7}, "does not follow"),
        ({"height": 5}, "does not follow"),
        ({"parent_id": b"\x00" * 32}, "parent's id"),
        ({"qc": build_genesis_qc(CHANNEL, b"\x00" * 32)}, "not for its parent"),
        ({"timestamp_ms": 999}, "backwards"),
        (
            {"exec_root": ExecRoot(height=1, state_root=ZERO_HASH, receipts_root=ZERO_HASH)},
            "backwards",
        ),
        (
            {"exec_root": ExecRoot(height=4, state_root=ZERO_HASH, receipts_root=ZERO_HASH)},
            "e <= h - 3",
        ),
    ],
)
def test_validate_header_links_rejects_broken_links(change: dict[str, Any], message: str) -> None:
    parent = make_header()
    parent_id = compute_block_id(SUITE, parent)
    with pytest.raises(InvalidBlock, match=message):
        validate_header_links(make_child(parent, parent_id, **change), parent, parent_id)


@pytest.mark.parametrize("height", range(1, 12))
def test_validate_exec_root_lag_allows_exactly_parent_e_to_h_minus_3(height: int) -> None:
    for parent_e in range(max(0, height - 1 - EXEC_LAG_MIN) + 1):
        parent = make_header(
            height=height - 1,
            exec_root=ExecRoot(height=parent_e, state_root=ZERO_HASH, receipts_root=ZERO_HASH),
        )
        for e in range(height + 2):
            header = make_header(
                height=height,
                exec_root=ExecRoot(height=e, state_root=ZERO_HASH, receipts_root=ZERO_HASH),
            )
            if parent_e <= e <= max(0, height - EXEC_LAG_MIN):
                validate_exec_root_lag(header, parent)
            else:
                with pytest.raises(InvalidBlock):
                    validate_exec_root_lag(header, parent)


def test_heights_one_to_three_carry_the_genesis_state() -> None:
    genesis = make_header(
        height=0, exec_root=ExecRoot(height=0, state_root=ZERO_HASH, receipts_root=ZERO_HASH)
    )
    for height in (1, 2, 3):
        header = make_header(height=height, exec_root=genesis.exec_root)
        validate_exec_root_lag(header, genesis)
        ahead = msgspec.structs.replace(
            header, exec_root=msgspec.structs.replace(genesis.exec_root, height=1)
        )
        with pytest.raises(InvalidBlock):
            validate_exec_root_lag(ahead, genesis)


# ----------------------------------------------------------------------------- ids and encoding


def test_compute_block_id_commits_to_every_header_field() -> None:
    header = make_header()
    block_id = compute_block_id(SUITE, header)
    assert block_id == SUITE.tagged_hash(b"taihang/block/v1", encode(header))
    for change in (
        {"round": 6},
        {"timestamp_ms": 1_001},
        {"proposer": "cd" * 20},
        {"tx_root": b"\x00" * 32},
    ):
        assert compute_block_id(SUITE, msgspec.structs.replace(header, **change)) != block_id


def test_build_vote_data_names_the_block_and_its_parent() -> None:
    header = make_header()
    vote_data = build_vote_data(SUITE, header)
    assert vote_data.block_id == compute_block_id(SUITE, header)
    assert (vote_data.height, vote_data.round, vote_data.parent_id) == (5, 5, header.parent_id)
    assert vote_data.parent_round == header.qc.vote_data.round
    assert compute_vote_message(vote_data) == b"taihang/vote/v1" + encode(vote_data)


def test_block_round_trips_through_the_codec() -> None:
    block = Block(header=make_header(), transactions=[b"tx-1", b"tx-2"])
    assert decode(encode(block), Block) == block
    assert compute_tx_root(SUITE, block.transactions) == compute_root([b"tx-1", b"tx-2"])
