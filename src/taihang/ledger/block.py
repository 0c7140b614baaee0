"""Blocks, headers and certificates in their final shape (DESIGN.md §4, consensus spec).

The header is what consensus orders: it names its parent, carries the quorum certificate
(QC) of that parent, the Merkle root of its transactions, and the lagged execution result
`exec_root = (e, state_root, receipts_root)` with e <= h - 3 and never below the parent's e.
A block's own QC arrives with its child; the highest QC is stored as a record of its own.

Validators are ordered by address; a QC carries a signer bitmap in that order and the
signatures of the set bits in the same order. The genesis block (height 0) is certified by a
QC without signatures, accepted only as the parent certificate of height 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from taihang.codec import Canonical, encode
from taihang.constants import (
    EXEC_LAG_MIN,
    HASH_BYTES,
    PROTOCOL_VERSION,
    TAG_BLOCK,
    TAG_VALIDATOR_SET,
    TAG_VOTE,
)
from taihang.crypto import CryptoSuite, tagged_hash
from taihang.crypto.merkle import compute_root
from taihang.errors import InvalidBlock, InvalidCertificate
from taihang.types import BlockId

ZERO_HASH: Final = bytes(HASH_BYTES)
TaggedHashFn = Callable[[bytes, bytes], bytes]


class ExecRoot(Canonical, frozen=True):
    height: int
    state_root: bytes
    receipts_root: bytes


class VoteData(Canonical, frozen=True):
    channel: str
    epoch: int
    round: int
    block_id: bytes
    height: int
    parent_id: bytes
    parent_round: int


class QuorumCert(Canonical, frozen=True):
    vote_data: VoteData
    signers: bytes  # bitmap over the validator set ordered by address, bit i = byte i//8 >> i%8
    signatures: list[bytes]  # one per set bit, in validator order


class TimeoutEntry(Canonical, frozen=True):
    signer: int
    hqc_round: int
    signature: bytes


class TimeoutCert(Canonical, frozen=True):
    channel: str
    epoch: int
    round: int
    high_qc: QuorumCert
    entries: list[TimeoutEntry]


class BlockHeader(Canonical, frozen=True):
    protocol_version: int
    channel: str
    epoch: int
    round: int
    height: int
    parent_id: bytes
    timestamp_ms: int
    proposer: str  # the proposer's address; empty for genesis
    tx_root: bytes
    exec_root: ExecRoot
    validator_set_hash: bytes
    qc: QuorumCert
    tc: TimeoutCert | None = None


class Block(Canonical, frozen=True):
    header: BlockHeader
    transactions: list[bytes]  # transaction envelopes


class Validator(Canonical, frozen=True):
    address: str
    public_key: bytes
    weight: int


class ValidatorSet:
    """Validators ordered by address, with quorum arithmetic (Q = floor(2W/3) + 1)."""

    __slots__ = ("by_address", "hash", "members", "total_weight")

    def __init__(
        self, validators: list[Validator], tagged_hash_fn: TaggedHashFn = tagged_hash
    ) -> None:
        ordered = sorted(validators, key=lambda v: v.address)
        if not ordered:
            raise InvalidCertificate("a validator set needs at least one validator")
        if len({v.address for v in ordered}) != len(ordered):
            raise InvalidCertificate("duplicate validator address")
        if any(v.weight <= 0 for v in ordered):
            raise InvalidCertificate("validator weights must be positive")
        self.members: tuple[Validator, ...] = tuple(ordered)
        self.by_address = {v.address: i for i, v in enumerate(ordered)}
        self.total_weight = sum(v.weight for v in ordered)
        self.hash = compute_validator_set_hash(list(ordered), tagged_hash_fn)

    @property
    def quorum_weight(self) -> int:
        return (2 * self.total_weight) // 3 + 1

    def index_of(self, address: str) -> int:
        index = self.by_address.get(address)
        if index is None:
            raise InvalidCertificate(f"{address} is not a validator")
        return index


def compute_validator_set_hash(
    validators: list[Validator], tagged_hash_fn: TaggedHashFn = tagged_hash
) -> bytes:
    """The set's hash under the channel's suite (`suite.tagged_hash`; SHA-256 by default)."""
    ordered = sorted(validators, key=lambda v: v.address)
    return tagged_hash_fn(TAG_VALIDATOR_SET, encode(ordered))


def compute_block_id(suite: CryptoSuite, header: BlockHeader) -> BlockId:
    return BlockId(suite.tagged_hash(TAG_BLOCK, encode(header)))


def compute_tx_root(suite: CryptoSuite, transactions: list[bytes]) -> bytes:
    """The Merkle root (under the suite hash) of the transaction envelopes."""
    return compute_root(transactions, suite.hash)


def compute_vote_message(vote_data: VoteData) -> bytes:
    """The bytes a validator signs to vote: `taihang/vote/v1 || canonical VoteData`."""
    return TAG_VOTE + encode(vote_data)


def build_vote_data(suite: CryptoSuite, header: BlockHeader) -> VoteData:
    return VoteData(
        channel=header.channel,
        epoch=header.epoch,
        round=header.round,
        block_id=compute_block_id(suite, header),
        height=header.height,
        parent_id=header.parent_id,
        parent_round=header.qc.vote_data.round,
    )


def build_genesis_qc(channel: str, genesis_id: bytes) -> QuorumCert:
    vote_data = VoteData(
        channel=channel,
        epoch=0,
        round=0,
        block_id=genesis_id,
        height=0,
        parent_id=ZERO_HASH,
        parent_round=0,
    )
    return QuorumCert(vote_data=vote_data, signers=b"", signatures=[])


def encode_signer_bitmap(indices: list[int], count: int) -> bytes:
    bitmap = bytearray((count + 7) // 8)
    for index in indices:
        bitmap[index // 8] |= 1 << (index % 8)
    return bytes(bitmap)


def decode_signer_bitmap(bitmap: bytes, count: int) -> list[int]:
    """Indices of set bits; raise `InvalidCertificate` on a wrong length or stray bits."""
    if len(bitmap) != (count + 7) // 8:
        raise InvalidCertificate(
            f"signer bitmap has {len(bitmap)} bytes, expected {(count + 7) // 8}"
        )
    indices = [i for i in range(count) if bitmap[i // 8] >> (i % 8) & 1]
    if count % 8 and bitmap and bitmap[-1] >> (count % 8):
        raise InvalidCertificate("signer bitmap sets bits beyond the validator set")
    return indices


def is_genesis_qc(qc: QuorumCert) -> bool:
    return qc.vote_data.height == 0 and not qc.signatures and not qc.signers


def verify_qc(
    qc: QuorumCert,
    validators: ValidatorSet,
    suite: CryptoSuite,
    *,
    channel: str,
    epoch: int,
    genesis_id: bytes,
) -> None:
    """Raise `InvalidCertificate` unless `qc` is a valid quorum certificate for this channel."""
    vote_data = qc.vote_data
    if vote_data.channel != channel:
        raise InvalidCertificate(f"certificate is for channel {vote_data.channel!r}")
    if vote_data.epoch != epoch:
        raise InvalidCertificate(f"certificate is for epoch {vote_data.epoch}, not {epoch}")
    if is_genesis_qc(qc):
        if vote_data.block_id != genesis_id or vote_data.round != 0:
            raise InvalidCertificate("unsigned certificate that does not name the genesis block")
        return
    indices = decode_signer_bitmap(qc.signers, len(validators.members))
    if len(indices) != len(qc.signatures):
        raise InvalidCertificate(f"{len(indices)} signers but {len(qc.signatures)} signatures")
    weight = sum(validators.members[i].weight for i in indices)
    if weight < validators.quorum_weight:
        raise InvalidCertificate(
            f"signer weight {weight} is below the quorum {validators.quorum_weight}"
        )
    message = compute_vote_message(vote_data)
    for index, signature in zip(indices, qc.signatures, strict=True):
        if not suite.verify(validators.members[index].public_key, message, signature):
            raise InvalidCertificate(
                f"signature of validator {validators.members[index].address} does not verify"
            )


def validate_header_links(header: BlockHeader, parent: BlockHeader, parent_id: bytes) -> None:
    """Raise `InvalidBlock` unless `header` correctly extends `parent` (ids, heights, roots)."""
    if header.protocol_version != PROTOCOL_VERSION:
        raise InvalidBlock(f"protocol version {header.protocol_version} is not supported")
    if header.channel != parent.channel or header.epoch != parent.epoch:
        raise InvalidBlock(f"block {header.height} changes channel or epoch within a chain")
    if header.height != parent.height + 1:
        raise InvalidBlock(f"height {header.height} does not follow {parent.height}")
    if header.parent_id != parent_id:
        raise InvalidBlock(f"block {header.height} does not link to its parent's id")
    if header.qc.vote_data.block_id != parent_id:
        raise InvalidBlock(f"the certificate in block {header.height} is not for its parent")
    if header.timestamp_ms < parent.timestamp_ms:
        raise InvalidBlock(f"timestamp of block {header.height} goes backwards")
    validate_exec_root_lag(header, parent)


def validate_exec_root_lag(header: BlockHeader, parent: BlockHeader) -> None:
    executed = header.exec_root.height
    if executed > max(0, header.height - EXEC_LAG_MIN):
        raise InvalidBlock(
            f"block {header.height} carries exec_root for height {executed}, "
            f"more than allowed (e <= h - {EXEC_LAG_MIN})"
        )
    if executed < parent.exec_root.height:
        raise InvalidBlock(f"exec_root height of block {header.height} goes backwards")
