"""Unit tests for `taihang.consensus.verify`: the stateless verifier stage, with real Ed25519."""

from __future__ import annotations

from typing import Any

import pytest
from consensus_support import (
    CHANNEL,
    ED25519,
    ChainBuilder,
    Keys,
    make_genesis,
    make_keys,
    sign_qc,
    sign_tc,
    sign_timeout,
    sign_vote,
    vote_data_for,
)

from taihang.consensus.messages import (
    BlockRequest,
    BlockResponse,
    Proposal,
    SyncInfo,
    Vote,
)
from taihang.consensus.verify import (
    CertificateCache,
    InvalidMessage,
    MessageLimits,
    MessageVerifier,
    verify_message,
)
from taihang.errors import (
    InvalidBlock,
    InvalidCertificate,
    InvalidInput,
    InvalidSignature,
    PermissionDenied,
)
from taihang.ledger.block import Block, QuorumCert, TimeoutCert, TimeoutEntry

KEYS = make_keys(4, ED25519)
GENESIS = make_genesis(KEYS)
CHAIN = ChainBuilder(KEYS, GENESIS)
BLOCKS = CHAIN.chain([1, 2, 3])


class CountingSuite:
    """The Ed25519 suite, counting signature verifications."""

    def __init__(self) -> None:
        self.verifications = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(ED25519, name)

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        self.verifications += 1
        return ED25519.verify(public_key, message, signature)


def check(message: Any, keys: Keys = KEYS, **kwargs: Any) -> None:
    verify_message(message, keys.validators, keys.suite, CHANNEL, 0, CHAIN.genesis_id, **kwargs)


def test_verify_message_accepts_valid_messages() -> None:
    proposal = CHAIN.proposal(BLOCKS[2])
    vote = sign_vote(KEYS, vote_data_for(ED25519, BLOCKS[2].header), 3)
    timeout = sign_timeout(KEYS, 2, 4, CHAIN.qc_of(BLOCKS[2]))
    response = BlockResponse(
        request_id=CHAIN.block_id(BLOCKS[1]),
        blocks=[BLOCKS[1], BLOCKS[0]],
        qcs=[CHAIN.qc_of(BLOCKS[1]), CHAIN.qc_of(BLOCKS[0])],
    )
    for message in (proposal, vote, timeout, BlockRequest(b"\x01" * 32, 10), response):
        check(message)


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        ("bad_signature", InvalidSignature),
        ("not_leader_signed", InvalidSignature),
        ("wrong_channel", InvalidBlock),
        ("bad_tx_root", InvalidBlock),
        ("too_many_txs", InvalidBlock),
        ("tc_missing", InvalidBlock),
        ("non_member", PermissionDenied),
        ("forged_qc", InvalidCertificate),
    ],
)
def test_verify_message_rejects_bad_proposal(mutate: str, error: type[Exception]) -> None:
    block = BLOCKS[1]
    proposal = CHAIN.proposal(block)
    if mutate == "bad_signature":
        proposal = Proposal(block=block, signature=bytes(64), sync=proposal.sync)
    elif mutate == "not_leader_signed":
        other = KEYS.sign(0, b"something else")
        proposal = Proposal(block=block, signature=other, sync=proposal.sync)
    elif mutate == "wrong_channel":
        proposal = _with_header(proposal, channel="other")
    elif mutate == "bad_tx_root":
        proposal = Proposal(
            block=Block(header=block.header, transactions=[b"tx"]),
            signature=proposal.signature,
            sync=proposal.sync,
        )
    elif mutate == "too_many_txs":
        txs = [b"a", b"b", b"c"]
        big = CHAIN.child(BLOCKS[0], 2, transactions=txs)
        with pytest.raises(error):
            check(CHAIN.proposal(big), limits=MessageLimits(block_txs_max=2))
        return
    elif mutate == "tc_missing":
        proposal = _with_header(proposal, round=5)
    elif mutate == "non_member":
        proposal = _with_header(proposal, proposer="ff" * 20)
    elif mutate == "forged_qc":
        qc = block.header.qc
        forged = QuorumCert(qc.vote_data, qc.signers, [bytes(64)] * len(qc.signatures))
        proposal = _with_header(proposal, qc=forged, resign=True)
    with pytest.raises(error):
        check(proposal)


def test_verify_message_rejects_qc_below_quorum() -> None:
    data = vote_data_for(ED25519, BLOCKS[0].header)
    weak = sign_qc(KEYS, data, [0, 1])
    sync = SyncInfo(highest_qc=weak, highest_tc=None, highest_commit=None)
    with pytest.raises(InvalidCertificate, match="below the quorum"):
        check(sign_timeout(KEYS, 1, 2, weak, sync))


def test_verify_message_rejects_vote_with_bad_signature_or_author() -> None:
    data = vote_data_for(ED25519, BLOCKS[0].header)
    vote = sign_vote(KEYS, data, 1)
    with pytest.raises(InvalidSignature):
        check(Vote(vote_data=data, author=KEYS.addresses[2], signature=vote.signature))
    with pytest.raises(PermissionDenied):
        check(Vote(vote_data=data, author="00" * 20, signature=vote.signature))
    other_epoch = data.__class__(**{**_fields(data), "epoch": 1})
    with pytest.raises(InvalidMessage, match="epoch 1"):
        check(sign_vote(KEYS, other_epoch, 1))


def test_verify_message_rejects_timeout_whose_qc_does_not_match() -> None:
    timeout = sign_timeout(KEYS, 1, 3, CHAIN.qc_of(BLOCKS[1]))
    lower = CHAIN.qc_of(BLOCKS[0])
    mismatched = timeout.__class__(
        timeout=timeout.timeout,
        high_qc=lower,
        author=timeout.author,
        signature=timeout.signature,
        sync=timeout.sync,
    )
    with pytest.raises(InvalidMessage, match="hqc_round"):
        check(mismatched)
    with pytest.raises(InvalidMessage, match="not below"):
        check(sign_timeout(KEYS, 1, 2, CHAIN.qc_of(BLOCKS[1])))


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("valid", None),
        ("below_quorum", "below the quorum"),
        ("duplicate_signer", "distinct"),
        ("hqc_round_mismatch", "highest hqc_round"),
        ("forged_round", "does not verify"),
        ("other_epoch_entry", "does not verify"),
    ],
)
def test_verify_tc_checks_signers_rounds_and_signatures(case: str, match: str | None) -> None:
    high_qc = CHAIN.qc_of(BLOCKS[1])  # round 2
    tc = sign_tc(KEYS, 4, high_qc, {0: 2, 1: 1, 2: 2})
    if case == "below_quorum":
        tc = sign_tc(KEYS, 4, high_qc, {0: 2, 1: 1})
    elif case == "duplicate_signer":
        tc = TimeoutCert(CHANNEL, 0, 4, high_qc, [tc.entries[0], tc.entries[0], tc.entries[1]])
    elif case == "hqc_round_mismatch":
        tc = sign_tc(KEYS, 4, high_qc, {0: 1, 1: 1, 2: 1})
    elif case == "forged_round":
        tc = TimeoutCert(CHANNEL, 0, 1_000_000, high_qc, tc.entries)
    elif case == "other_epoch_entry":
        tc = sign_tc(KEYS, 4, high_qc, {0: 2, 1: 1, 2: 2}, entry_epochs={1: 1})
    sync = SyncInfo(highest_qc=high_qc, highest_tc=tc, highest_commit=None)
    timeout = sign_timeout(KEYS, 3, 5 if case != "forged_round" else 1_000_001, high_qc, sync)
    if match is None:
        check(timeout)
    else:
        with pytest.raises(InvalidCertificate, match=match):
            check(timeout)


def test_verify_message_rejects_non_consecutive_commit_proof() -> None:
    tc = sign_tc(KEYS, 2, CHAIN.qc_of(BLOCKS[0]), {0: 1, 1: 1, 2: 1})
    gap = CHAIN.child(BLOCKS[0], 3, tc=tc)
    proof = CHAIN.qc_of(gap)  # round 3 on a round-1 parent: not a 2-chain
    sync = SyncInfo(highest_qc=proof, highest_tc=None, highest_commit=proof)
    with pytest.raises(InvalidCertificate, match="consecutive"):
        check(sign_timeout(KEYS, 0, 4, proof, sync))


def test_verify_message_bounds_block_requests_and_responses() -> None:
    with pytest.raises(InvalidMessage):
        check(BlockRequest(b"\x01" * 32, 0))
    with pytest.raises(InvalidMessage):
        check(BlockRequest(b"\x01" * 32, 65))
    with pytest.raises(InvalidMessage):
        check(BlockRequest(b"\x01" * 31, 1))
    uneven = BlockResponse(request_id=b"\x01" * 32, blocks=[BLOCKS[0]], qcs=[])
    with pytest.raises(InvalidMessage):
        check(uneven)
    wrong_qc = BlockResponse(
        request_id=CHAIN.block_id(BLOCKS[0]), blocks=[BLOCKS[0]], qcs=[CHAIN.qc_of(BLOCKS[1])]
    )
    with pytest.raises(InvalidCertificate, match="does not certify"):
        check(wrong_qc)
    too_many = BlockResponse(
        request_id=b"\x01" * 32, blocks=[BLOCKS[0]] * 3, qcs=[BLOCKS[1].header.qc] * 3
    )
    with pytest.raises(InvalidMessage):
        check(too_many, limits=MessageLimits(blocks_request_max=2))


def test_verify_message_caches_verified_certificates() -> None:
    suite = CountingSuite()
    verifier = MessageVerifier(
        KEYS.validators, suite, channel=CHANNEL, epoch=0, genesis_id=CHAIN.genesis_id
    )
    proposal = CHAIN.proposal(BLOCKS[2])
    verifier.verify(proposal)
    first = suite.verifications
    assert first == 1 + 3  # the proposer's signature and the QC's three
    verifier.verify(proposal)
    assert suite.verifications == first + 1  # only the proposer's signature again
    assert len(verifier.cache) == 1


def test_certificate_cache_forgets_oldest_first() -> None:
    cache = CertificateCache(entries_max=2)
    for digest in (b"a", b"b", b"c"):
        cache.add(digest)
    assert b"a" not in cache and b"b" in cache and b"c" in cache


def test_verify_message_rejects_everything_else_with_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        check(TimeoutEntry(0, 0, b""))  # type: ignore[arg-type]


# Helpers.


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__struct_fields__}


def _with_header(proposal: Proposal, *, resign: bool = True, **changes: Any) -> Proposal:
    header = proposal.block.header
    new_header = header.__class__(**{**_fields(header), **changes})
    block = Block(header=new_header, transactions=proposal.block.transactions)
    if resign and new_header.proposer in KEYS.addresses:
        return CHAIN.proposal(block, proposal.sync)
    return Proposal(block=block, signature=proposal.signature, sync=proposal.sync)
