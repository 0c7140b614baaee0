"""The verifier stage: stateless checks before a message reaches the core (consensus spec).

Theory of operation: the node and the simulator call `verify_message` (or a `MessageVerifier`,
which keeps a cache) on every decoded consensus message before they hand it to the core as a
`MessageReceived`. It checks, cheapest first: channel and epoch, sizes and counts, membership
of every author and signer, the shape of certificates and blocks, and then every signature.
It needs no consensus state, so a node may run it in a worker pool or batch it.

What it leaves to the core, because it needs state or time: who leads a round, whether a
round is current, timestamps against the clock, rule 3 and the links to a parent block (the
signing guard is the single place rule 3 is enforced, so a broken guard is not masked here).

The same QC arrives many times (in every proposal, timeout and SyncInfo), so a verified QC or
TC is remembered by the digest of its canonical bytes; a cache belongs to one validator set,
channel and epoch, and the digest covers them too. Individual vote and timeout signatures are
remembered as well (by message digest, signer and signature), because the QC or TC a node
receives is mostly made of signatures it already checked one by one when the votes or
timeouts arrived.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from taihang.codec import encode
from taihang.consensus.messages import (
    BlockRequest,
    BlockResponse,
    ConsensusMessage,
    Proposal,
    SyncInfo,
    TimeoutMsg,
    TimeoutSign,
    Vote,
    compute_proposal_message,
    compute_timeout_message,
)
from taihang.constants import HASH_BYTES, PROTOCOL_VERSION
from taihang.crypto import CryptoSuite
from taihang.errors import (
    InvalidBlock,
    InvalidCertificate,
    InvalidInput,
    InvalidSignature,
    PermissionDenied,
)
from taihang.ledger.block import (
    Block,
    BlockHeader,
    QuorumCert,
    TimeoutCert,
    ValidatorSet,
    compute_block_id,
    compute_tx_root,
    compute_vote_message,
    decode_signer_bitmap,
    is_genesis_qc,
    verify_qc,
)

CACHE_TAG = b"taihang/consensus/verified-cert"


class InvalidMessage(InvalidInput):
    """A consensus message that is malformed or out of bounds (not a signature problem)."""

    code = "invalid_message"


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """Bounds on what a peer may send (defaults match `ConsensusConfig`)."""

    block_txs_max: int = 10_000
    block_bytes_max: int = 8 * 1024 * 1024
    blocks_request_max: int = 64


class CertificateCache:
    """Digests of certificates already verified; bounded, the oldest is forgotten first."""

    __slots__ = ("_digests", "_entries_max")

    def __init__(self, entries_max: int = 4_096) -> None:
        assert entries_max > 0
        self._entries_max = entries_max
        self._digests: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._digests

    def __len__(self) -> int:
        return len(self._digests)

    def add(self, digest: bytes) -> None:
        self._digests[digest] = None
        if len(self._digests) > self._entries_max:
            self._digests.popitem(last=False)


class MessageVerifier:
    """Verifies messages of one channel, epoch and validator set, caching certificates."""

    __slots__ = (
        "_context",
        "cache",
        "channel",
        "epoch",
        "genesis_id",
        "limits",
        "signatures",
        "suite",
        "vset",
    )

    def __init__(
        self,
        validators: ValidatorSet,
        suite: CryptoSuite,
        *,
        channel: str,
        epoch: int,
        genesis_id: bytes,
        limits: MessageLimits | None = None,
        cache: CertificateCache | None = None,
    ) -> None:
        self.vset = validators
        self.suite = suite
        self.channel = channel
        self.epoch = epoch
        self.genesis_id = genesis_id
        self.limits = limits or MessageLimits()
        self.cache = cache if cache is not None else CertificateCache()
        self.signatures = CertificateCache(entries_max=8 * len(validators.members) + 1_024)
        self._context = CACHE_TAG + validators.hash + encode([channel, epoch, genesis_id])

    def verify(self, message: ConsensusMessage) -> None:
        """Return None, or raise an `InvalidInput` saying what is wrong."""
        if isinstance(message, Proposal):
            self.verify_proposal(message)
        elif isinstance(message, Vote):
            self.verify_vote(message)
        elif isinstance(message, TimeoutMsg):
            self.verify_timeout(message)
        elif isinstance(message, BlockRequest):
            self.verify_block_request(message)
        elif isinstance(message, BlockResponse):
            self.verify_block_response(message)
        else:  # the union is closed; anything else is a caller's mistake
            raise InvalidMessage(f"not a consensus message: {type(message).__name__}")

    # Certificates.

    def verify_qc(self, qc: QuorumCert) -> None:
        """`ledger.block.verify_qc`, skipping signatures this verifier already checked."""
        digest = self.suite.tagged_hash(self._context, encode(qc))
        if digest in self.cache:
            return
        data = qc.vote_data
        if is_genesis_qc(qc) or data.channel != self.channel or data.epoch != self.epoch:
            verify_qc(  # the unsigned genesis QC, or an error message naming what is wrong
                qc,
                self.vset,
                self.suite,
                channel=self.channel,
                epoch=self.epoch,
                genesis_id=self.genesis_id,
            )
        else:
            indices = decode_signer_bitmap(qc.signers, len(self.vset.members))
            if len(indices) != len(qc.signatures):
                raise InvalidCertificate(
                    f"{len(indices)} signers but {len(qc.signatures)} signatures"
                )
            weight = sum(self.vset.members[i].weight for i in indices)
            if weight < self.vset.quorum_weight:
                raise InvalidCertificate(
                    f"signer weight {weight} is below the quorum {self.vset.quorum_weight}"
                )
            message = compute_vote_message(data)
            for index, signature in zip(indices, qc.signatures, strict=True):
                if not self._verify_signature(index, message, signature):
                    raise InvalidCertificate(
                        f"signature of validator {self.vset.members[index].address} does not verify"
                    )
        self.cache.add(digest)

    def _verify_signature(self, index: int, message: bytes, signature: bytes) -> bool:
        """Verify validator `index`'s signature, remembering the ones that were valid."""
        key = self.suite.hash(message) + index.to_bytes(4, "big") + signature
        if key in self.signatures:
            return True
        if not self.suite.verify(self.vset.members[index].public_key, message, signature):
            return False
        self.signatures.add(key)
        return True

    def verify_tc(self, tc: TimeoutCert) -> None:
        digest = self.suite.tagged_hash(self._context, encode(tc))
        if digest in self.cache:
            return
        self._validate_tc_shape(tc)
        self.verify_qc(tc.high_qc)
        for entry in tc.entries:
            timeout = TimeoutSign(
                channel=tc.channel, epoch=tc.epoch, round=tc.round, hqc_round=entry.hqc_round
            )
            message = compute_timeout_message(timeout)
            if not self._verify_signature(entry.signer, message, entry.signature):
                raise InvalidCertificate(
                    f"timeout signature of validator {self.vset.members[entry.signer].address} "
                    f"in the TC for round {tc.round} does not verify"
                )
        self.cache.add(digest)

    def _validate_tc_shape(self, tc: TimeoutCert) -> None:
        # Every entry is checked against this TC's own channel and epoch, and so is its QC:
        # signatures from two epochs never add up to one certificate (Concordium#1197).
        if tc.channel != self.channel or tc.epoch != self.epoch:
            raise InvalidCertificate(f"TC is for channel {tc.channel!r} epoch {tc.epoch}")
        hqc_data = tc.high_qc.vote_data
        if hqc_data.channel != tc.channel or hqc_data.epoch != tc.epoch:
            raise InvalidCertificate("the TC's high QC is for another channel or epoch")
        count = len(self.vset.members)
        if not tc.entries or len(tc.entries) > count:
            raise InvalidCertificate(f"TC has {len(tc.entries)} entries for {count} validators")
        previous = -1
        weight = 0
        for entry in tc.entries:
            if not previous < entry.signer < count:
                raise InvalidCertificate("TC signers must be distinct, ascending and in the set")
            previous = entry.signer
            weight += self.vset.members[entry.signer].weight
        if weight < self.vset.quorum_weight:
            raise InvalidCertificate(
                f"TC signer weight {weight} is below the quorum {self.vset.quorum_weight}"
            )
        hqc_round_max = max(entry.hqc_round for entry in tc.entries)
        if hqc_round_max != hqc_data.round or not hqc_data.round < tc.round:
            raise InvalidCertificate(
                f"TC for round {tc.round}: highest hqc_round {hqc_round_max} must equal its "
                f"QC's round {hqc_data.round} and be below the TC's round"
            )

    def verify_sync_info(self, sync: SyncInfo) -> None:
        self.verify_qc(sync.highest_qc)
        if sync.highest_tc is not None:
            self.verify_tc(sync.highest_tc)
        if sync.highest_commit is not None:
            data = sync.highest_commit.vote_data
            if data.parent_round + 1 != data.round:
                raise InvalidCertificate("a commit proof must certify consecutive rounds")
            self.verify_qc(sync.highest_commit)

    # Messages.

    def verify_proposal(self, proposal: Proposal) -> None:
        block = proposal.block
        header = block.header
        self.validate_block(block)
        proposer = self.vset.members[self._get_member_index(header.proposer, "proposer")]
        block_id = compute_block_id(self.suite, header)
        message = compute_proposal_message(block_id)
        if not self.suite.verify(proposer.public_key, message, proposal.signature):
            raise InvalidSignature(f"proposal signature of {header.proposer} does not verify")
        self.verify_block_certificates(header)
        self.verify_sync_info(proposal.sync)

    def verify_vote(self, vote: Vote) -> None:
        data = vote.vote_data
        self._validate_context(data.channel, data.epoch, "vote")
        if not data.parent_round < data.round or data.height < 1:
            raise InvalidMessage(f"vote of {vote.author} has an impossible round or height")
        if len(data.block_id) != HASH_BYTES or len(data.parent_id) != HASH_BYTES:
            raise InvalidMessage(f"vote of {vote.author} names a malformed block id")
        index = self._get_member_index(vote.author, "vote author")
        if not self._verify_signature(index, compute_vote_message(data), vote.signature):
            raise InvalidSignature(f"vote signature of {vote.author} does not verify")

    def verify_timeout(self, message: TimeoutMsg) -> None:
        timeout = message.timeout
        self._validate_context(timeout.channel, timeout.epoch, "timeout")
        if message.high_qc.vote_data.round != timeout.hqc_round:
            raise InvalidMessage(f"timeout of {message.author}: high QC round != hqc_round")
        if not timeout.hqc_round < timeout.round:
            raise InvalidMessage(f"timeout of {message.author}: hqc_round not below its round")
        index = self._get_member_index(message.author, "timeout author")
        if not self._verify_signature(index, compute_timeout_message(timeout), message.signature):
            raise InvalidSignature(f"timeout signature of {message.author} does not verify")
        self.verify_qc(message.high_qc)
        self.verify_sync_info(message.sync)

    def verify_block_request(self, request: BlockRequest) -> None:
        if len(request.block_id) != HASH_BYTES:
            raise InvalidMessage("block request names a malformed block id")
        if not 1 <= request.count <= self.limits.blocks_request_max:
            raise InvalidMessage(
                f"block request for {request.count} blocks; "
                f"1 to {self.limits.blocks_request_max} allowed"
            )

    def verify_block_response(self, response: BlockResponse) -> None:
        if len(response.blocks) > self.limits.blocks_request_max:
            raise InvalidMessage(f"block response with {len(response.blocks)} blocks")
        if len(response.qcs) != len(response.blocks):
            raise InvalidMessage("block response needs exactly one QC per block")
        for block, qc in zip(response.blocks, response.qcs, strict=True):
            self.validate_block(block)
            if qc.vote_data.block_id != compute_block_id(self.suite, block.header):
                raise InvalidCertificate("a QC in a block response does not certify its block")
            self.verify_qc(qc)
            self.verify_block_certificates(block.header)

    # Blocks.

    def validate_block(self, block: Block) -> None:
        """Stateless block checks: shape, limits and the transaction root (no signatures)."""
        validate_block_shape(
            block.header,
            channel=self.channel,
            epoch=self.epoch,
            validator_set_hash=self.vset.hash,
        )
        validate_payload_limits(block, self.limits.block_txs_max, self.limits.block_bytes_max)
        if compute_tx_root(self.suite, block.transactions) != block.header.tx_root:
            raise InvalidBlock(f"block {block.header.height}: tx_root does not match its payload")

    def verify_block_certificates(self, header: BlockHeader) -> None:
        self.verify_qc(header.qc)
        if header.tc is not None:
            self.verify_tc(header.tc)

    def _get_member_index(self, address: str, role: str) -> int:
        index = self.vset.by_address.get(address)
        if index is None:
            raise PermissionDenied(f"{role} {address} is not a validator")
        return index

    def _validate_context(self, channel: str, epoch: int, what: str) -> None:
        if channel != self.channel or epoch != self.epoch:
            raise InvalidMessage(f"{what} is for channel {channel!r} epoch {epoch}")


def validate_block_shape(
    header: BlockHeader, *, channel: str, epoch: int, validator_set_hash: bytes
) -> None:
    """Raise `InvalidBlock` unless the header is well formed on its own (rule 1, stateless).

    The QC must certify the parent one height below; a TC is present exactly when the round
    does not follow the QC's, and then the round follows the TC's.
    """
    qc_data = header.qc.vote_data
    if header.protocol_version != PROTOCOL_VERSION:
        raise InvalidBlock(f"protocol version {header.protocol_version} is not supported")
    if header.channel != channel or header.epoch != epoch:
        raise InvalidBlock(f"block is for channel {header.channel!r} epoch {header.epoch}")
    if header.validator_set_hash != validator_set_hash:
        raise InvalidBlock(f"block {header.height} names another validator set")
    if header.height < 1 or header.height != qc_data.height + 1:
        raise InvalidBlock(f"block height {header.height} does not follow its QC")
    if header.parent_id != qc_data.block_id or len(header.parent_id) != HASH_BYTES:
        raise InvalidBlock(f"the QC in block {header.height} does not certify its parent")
    if not qc_data.round < header.round:
        raise InvalidBlock(f"block round {header.round} is not above its QC's round")
    needs_tc = qc_data.round + 1 != header.round
    if needs_tc != (header.tc is not None):
        raise InvalidBlock(f"block round {header.round}: a TC must be present iff it skips rounds")
    if header.tc is not None and header.tc.round + 1 != header.round:
        raise InvalidBlock(f"block round {header.round} does not follow its TC")


def validate_payload_limits(block: Block, block_txs_max: int, block_bytes_max: int) -> None:
    if len(block.transactions) > block_txs_max:
        raise InvalidBlock(f"block has {len(block.transactions)} transactions")
    if sum(len(tx) for tx in block.transactions) > block_bytes_max:
        raise InvalidBlock(f"block transactions exceed {block_bytes_max} bytes")


def verify_message(
    message: ConsensusMessage,
    validators: ValidatorSet,
    suite: CryptoSuite,
    channel: str,
    epoch: int,
    genesis_id: bytes,
    *,
    limits: MessageLimits | None = None,
    cache: CertificateCache | None = None,
) -> None:
    """Verify one message (see `MessageVerifier`; pass a `cache` to reuse verified certs)."""
    verifier = MessageVerifier(
        validators,
        suite,
        channel=channel,
        epoch=epoch,
        genesis_id=genesis_id,
        limits=limits,
        cache=cache,
    )
    verifier.verify(message)
