"""Unit tests for `taihang.consensus.solo`: blocks a single validator builds and certifies."""

from __future__ import annotations

from typing import Any

import pytest

from taihang.codec import decode, encode
from taihang.consensus.solo import build_block, certify_block, compute_exec_height
from taihang.constants import EXEC_LAG_MIN, PROTOCOL_VERSION
from taihang.crypto import get_suite
from taihang.crypto.merkle import compute_root
from taihang.errors import InvalidCertificate
from taihang.ledger.block import (
    Block,
    BlockHeader,
    ExecRoot,
    QuorumCert,
    Validator,
    ValidatorSet,
    build_genesis_qc,
    compute_block_id,
    validate_header_links,
    verify_qc,
)
from taihang.ledger.genesis import Genesis, MemberSpec, OrgSpec, ValidatorSpec, build_genesis_block
from taihang.ledger.genesis import build_validator_set as build_genesis_validator_set
from taihang.ledger.transaction import compute_address

SUITE = get_suite("ed25519")
SEED = bytes([7]) * 32
PUBLIC_KEY = SUITE.public_key_from_seed(SEED)
GENESIS = Genesis(
    protocol_version=PROTOCOL_VERSION,
    channel="main",
    crypto="ed25519",
    timestamp_ms=1_000,
    orgs=[OrgSpec(id="org1", name="One", ca_cert_pem="")],
    validators=[ValidatorSpec(name="v1", org="org1", public_key=PUBLIC_KEY.hex())],
    members=[MemberSpec(public_key=PUBLIC_KEY.hex(), org="org1", roles=["admin"])],
)
VALIDATORS = build_genesis_validator_set(GENESIS)
GENESIS_BLOCK = build_genesis_block(GENESIS, b"\x05" * 32)
GENESIS_ID: bytes = compute_block_id(SUITE, GENESIS_BLOCK.header)


class SeedSigner:
    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self.address = compute_address(SUITE, SUITE.public_key_from_seed(seed))

    def sign(self, message: bytes) -> bytes:
        return SUITE.sign(self.seed, message)


SIGNER = SeedSigner(SEED)


def check_qc(qc: QuorumCert, validators: ValidatorSet = VALIDATORS) -> None:
    verify_qc(qc, validators, SUITE, channel="main", epoch=0, genesis_id=GENESIS_ID)


def exec_root(height: int) -> ExecRoot:
    return ExecRoot(height=height, state_root=bytes([height]) * 32, receipts_root=b"\x00" * 32)


def next_block(
    parent: BlockHeader, parent_id: bytes, parent_qc: QuorumCert, **overrides: Any
) -> Block:
    fields: dict[str, Any] = {
        "parent": parent,
        "parent_id": parent_id,
        "parent_qc": parent_qc,
        "transactions": [],
        "exec_root": parent.exec_root,
        "timestamp_ms": parent.timestamp_ms + 1,
        "proposer": SIGNER.address,
        "validator_set_hash": VALIDATORS.hash,
        "suite": SUITE,
    }
    fields.update(overrides)
    return build_block(**fields)


def build_chain(length: int) -> list[tuple[Block, bytes, QuorumCert]]:
    """Blocks 1..length, each certified, with exec_root as high as the lag allows."""
    chain = []
    parent, parent_id, qc = GENESIS_BLOCK.header, GENESIS_ID, build_genesis_qc("main", GENESIS_ID)
    for height in range(1, length + 1):
        e = compute_exec_height(height, height - 1, parent.exec_root.height)
        root = parent.exec_root if e == parent.exec_root.height else exec_root(e)
        block = next_block(parent, parent_id, qc, exec_root=root, transactions=[b"tx-%d" % height])
        qc = certify_block(block.header, SIGNER, VALIDATORS, SUITE)
        chain.append((block, qc.vote_data.block_id, qc))
        parent, parent_id = block.header, qc.vote_data.block_id
    return chain


def test_build_block_extends_the_parent() -> None:
    txs = [b"tx-a", b"tx-b"]
    genesis_qc = build_genesis_qc("main", GENESIS_ID)
    block = next_block(GENESIS_BLOCK.header, GENESIS_ID, genesis_qc, transactions=txs)
    header = block.header
    assert block.transactions == txs
    assert (header.height, header.round, header.epoch) == (1, 1, 0)
    assert header.channel == "main"
    assert header.protocol_version == PROTOCOL_VERSION
    assert header.parent_id == GENESIS_ID
    assert header.qc == genesis_qc
    assert header.tx_root == compute_root(txs)
    assert header.proposer == SIGNER.address
    assert header.validator_set_hash == VALIDATORS.hash
    assert header.tc is None
    validate_header_links(header, GENESIS_BLOCK.header, GENESIS_ID)
    assert decode(encode(block), Block) == block


def test_build_block_never_lets_the_timestamp_go_backwards() -> None:
    genesis_qc = build_genesis_qc("main", GENESIS_ID)
    block = next_block(GENESIS_BLOCK.header, GENESIS_ID, genesis_qc, timestamp_ms=5)
    assert block.header.timestamp_ms == GENESIS.timestamp_ms


def test_build_block_refuses_a_qc_for_another_block() -> None:
    with pytest.raises(AssertionError, match="certify the parent"):
        next_block(GENESIS_BLOCK.header, GENESIS_ID, build_genesis_qc("main", b"\x01" * 32))


def test_build_block_refuses_an_exec_root_that_breaks_the_lag_rule() -> None:
    genesis_qc = build_genesis_qc("main", GENESIS_ID)
    with pytest.raises(AssertionError, match="lags"):
        next_block(GENESIS_BLOCK.header, GENESIS_ID, genesis_qc, exec_root=exec_root(1))


def test_certify_block_produces_a_qc_that_verifies() -> None:
    genesis_qc = build_genesis_qc("main", GENESIS_ID)
    check_qc(genesis_qc)
    block = next_block(GENESIS_BLOCK.header, GENESIS_ID, genesis_qc)
    qc = certify_block(block.header, SIGNER, VALIDATORS, SUITE)
    check_qc(qc)
    assert qc.vote_data.block_id == compute_block_id(SUITE, block.header)
    assert qc.vote_data.height == 1
    assert qc.vote_data.parent_id == GENESIS_ID
    assert qc.signers == b"\x01"
    assert len(qc.signatures) == 1
    with pytest.raises(InvalidCertificate):
        verify_qc(qc, VALIDATORS, SUITE, channel="other", epoch=0, genesis_id=GENESIS_ID)


def test_certify_block_chains_verify_link_by_link() -> None:
    chain = build_chain(9)
    parent, parent_id = GENESIS_BLOCK.header, GENESIS_ID
    for block, block_id, qc in chain:
        validate_header_links(block.header, parent, parent_id)
        check_qc(block.header.qc)
        check_qc(qc)
        assert block_id == compute_block_id(SUITE, block.header)
        parent, parent_id = block.header, block_id
    assert [b.header.exec_root.height for b, _, _ in chain] == [0, 0, 0, 1, 2, 3, 4, 5, 6]


def test_certify_block_refuses_a_signer_outside_the_set() -> None:
    block = next_block(GENESIS_BLOCK.header, GENESIS_ID, build_genesis_qc("main", GENESIS_ID))
    with pytest.raises(InvalidCertificate, match="not a validator"):
        certify_block(block.header, SeedSigner(bytes([8]) * 32), VALIDATORS, SUITE)


def test_certify_block_refuses_a_validator_without_a_quorum_alone() -> None:
    keys = [SUITE.public_key_from_seed(bytes([s]) * 32) for s in (7, 8)]
    pair = ValidatorSet(
        [Validator(address=compute_address(SUITE, k), public_key=k, weight=1) for k in keys]
    )
    block = next_block(GENESIS_BLOCK.header, GENESIS_ID, build_genesis_qc("main", GENESIS_ID))
    with pytest.raises(AssertionError, match="quorum"):
        certify_block(block.header, SIGNER, pair, SUITE)


@pytest.mark.parametrize("height", range(1, 15))
def test_compute_exec_height_respects_the_lag_and_the_parent(height: int) -> None:
    for executed in range(height + 2):
        for parent_e in range(max(0, height - 1 - EXEC_LAG_MIN) + 1):
            e = compute_exec_height(height, executed, parent_e)
            assert e <= max(0, height - EXEC_LAG_MIN)
            assert e >= parent_e
            if executed >= parent_e:
                assert e <= executed  # never claims a height it has not executed
                assert e == min(executed, max(0, height - EXEC_LAG_MIN))  # as high as allowed


@pytest.mark.parametrize(
    ("height", "executed", "parent_e", "expected"),
    [(1, 0, 0, 0), (3, 2, 0, 0), (4, 3, 0, 1), (10, 9, 0, 7), (10, 4, 2, 4), (10, 1, 2, 2)],
)
def test_compute_exec_height_examples(
    height: int, executed: int, parent_e: int, expected: int
) -> None:
    assert compute_exec_height(height, executed, parent_e) == expected


def test_compute_exec_height_is_monotonic_along_a_chain() -> None:
    executed_by_height = [0, 0, 1, 1, 1, 4, 6, 6, 7, 12, 12]  # what the executor had finished
    parent_e = 0
    for height, executed in enumerate(executed_by_height, start=1):
        e = compute_exec_height(height, executed, parent_e)
        assert parent_e <= e <= max(0, height - EXEC_LAG_MIN)
        parent_e = e
    assert parent_e == 8
