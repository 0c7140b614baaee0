"""Genesis: the document that defines a channel, and the block and state it starts from.

The document lists the organisations (with their CA certificates), the validators, the
non-voting observers, the initial members with their roles, the crypto suite and the chain
parameters. It is hashed canonically; every node of the channel must hold the same hash.
"""

from __future__ import annotations

from typing import Final

import msgspec

from taihang.codec import Canonical, encode
from taihang.constants import PROTOCOL_VERSION, TAG_GENESIS
from taihang.crypto import CryptoSuite, get_suite
from taihang.crypto.merkle import compute_root
from taihang.errors import ConfigurationError
from taihang.ledger.block import (
    ZERO_HASH,
    Block,
    BlockHeader,
    ExecRoot,
    Validator,
    ValidatorSet,
    build_genesis_qc,
)
from taihang.ledger.transaction import compute_address, is_valid_name

ROLES: Final = ("admin", "member", "issuer", "auditor", "validator")


class OrgSpec(Canonical, array_like=False, frozen=True):
    id: str
    name: str
    ca_cert_pem: str


class ValidatorSpec(Canonical, array_like=False, frozen=True):
    name: str
    org: str
    public_key: str  # hex
    weight: int = 1


class ObserverSpec(Canonical, array_like=False, frozen=True):
    name: str
    org: str
    public_key: str  # hex


class MemberSpec(Canonical, array_like=False, frozen=True):
    public_key: str  # hex
    org: str
    roles: list[str]


class BalanceSpec(Canonical, array_like=False, frozen=True):
    address: str
    amount: int


class ChainParams(Canonical, array_like=False, frozen=True):
    block_txs_max: int = 10_000
    block_bytes_max: int = 8 * 1024 * 1024


class Genesis(Canonical, array_like=False, frozen=True):
    protocol_version: int
    channel: str
    crypto: str
    timestamp_ms: int
    orgs: list[OrgSpec]
    validators: list[ValidatorSpec]
    members: list[MemberSpec]
    observers: list[ObserverSpec] = msgspec.field(default_factory=list)
    balances: list[BalanceSpec] = msgspec.field(
        default_factory=list
    )  # initial `asset` balances; the supply is their sum
    params: ChainParams = ChainParams()


def compute_genesis_hash(genesis: Genesis) -> bytes:
    return get_suite(genesis.crypto).tagged_hash(TAG_GENESIS, encode(genesis))


def load_genesis_json(data: bytes) -> Genesis:
    """Parse and validate a genesis document, or raise `ConfigurationError`."""
    try:
        genesis = msgspec.json.decode(data, type=Genesis)
    except msgspec.DecodeError as exc:
        raise ConfigurationError(f"genesis: {exc}") from None
    validate_genesis(genesis)
    return genesis


def encode_genesis_json(genesis: Genesis) -> bytes:
    return msgspec.json.format(msgspec.json.encode(genesis), indent=2) + b"\n"


def _hex_key(value: str, what: str, suite: CryptoSuite) -> bytes:
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise ConfigurationError(f"genesis: {what} public key is not hex") from None
    if len(key) != suite.public_key_bytes:
        raise ConfigurationError(
            f"genesis: {what} public key must be {suite.public_key_bytes} bytes"
        )
    return key


def validate_genesis(genesis: Genesis) -> None:
    """Raise `ConfigurationError` with the first problem found."""
    if genesis.protocol_version != PROTOCOL_VERSION:
        raise ConfigurationError(f"genesis: protocol version {genesis.protocol_version}")
    if not is_valid_name(genesis.channel):
        raise ConfigurationError(f"genesis: invalid channel name {genesis.channel!r}")
    suite = get_suite(genesis.crypto)
    org_ids = [org.id for org in genesis.orgs]
    if not org_ids or len(set(org_ids)) != len(org_ids):
        raise ConfigurationError("genesis: orgs must be non-empty with unique ids")
    if not genesis.validators:
        raise ConfigurationError("genesis: at least one validator is required")
    validator_keys: set[bytes] = set()
    for v in genesis.validators:
        key = _hex_key(v.public_key, f"validator {v.name}", suite)
        if key in validator_keys:  # one key, one address: the validator set would refuse it
            raise ConfigurationError(f"genesis: validator {v.name} repeats another's key")
        validator_keys.add(key)
        if v.org not in org_ids:
            raise ConfigurationError(f"genesis: validator {v.name} names unknown org {v.org}")
        if v.weight <= 0:
            raise ConfigurationError(f"genesis: validator {v.name} needs a positive weight")
    for o in genesis.observers:
        _hex_key(o.public_key, f"observer {o.name}", suite)
        if o.org not in org_ids:
            raise ConfigurationError(f"genesis: observer {o.name} names unknown org {o.org}")
    member_keys: set[bytes] = set()
    for m in genesis.members:
        key = _hex_key(m.public_key, "member", suite)
        if key in member_keys:  # the genesis state would silently keep only the last entry
            raise ConfigurationError(f"genesis: member key {m.public_key} appears twice")
        member_keys.add(key)
        if m.org not in org_ids:
            raise ConfigurationError(f"genesis: member names unknown org {m.org}")
        unknown = [r for r in m.roles if r not in ROLES]
        if unknown:
            raise ConfigurationError(f"genesis: unknown roles {unknown}; known: {list(ROLES)}")
    addresses = [b.address for b in genesis.balances]
    if len(set(addresses)) != len(addresses):
        raise ConfigurationError("genesis: an address appears twice in balances")
    for balance in genesis.balances:
        if not 0 < balance.amount < 2**63 or not _is_address(balance.address):
            raise ConfigurationError(f"genesis: invalid balance entry for {balance.address!r}")
    if sum(b.amount for b in genesis.balances) >= 2**63:
        raise ConfigurationError("genesis: total balances exceed the maximum supply")
    if genesis.params.block_txs_max <= 0 or genesis.params.block_bytes_max <= 0:
        raise ConfigurationError("genesis: block limits must be positive")


def _is_address(text: str) -> bool:
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text)


def build_validator_set(genesis: Genesis) -> ValidatorSet:
    suite = get_suite(genesis.crypto)
    validators = []
    for spec in genesis.validators:
        key = bytes.fromhex(spec.public_key)
        validators.append(
            Validator(address=compute_address(suite, key), public_key=key, weight=spec.weight)
        )
    return ValidatorSet(validators, suite.tagged_hash)


def build_genesis_block(genesis: Genesis, state_root: bytes) -> Block:
    """Height 0: no transactions, the genesis state as its exec_root, an unsigned QC."""
    suite = get_suite(genesis.crypto)
    header = BlockHeader(
        protocol_version=genesis.protocol_version,
        channel=genesis.channel,
        epoch=0,
        round=0,
        height=0,
        parent_id=ZERO_HASH,
        timestamp_ms=genesis.timestamp_ms,
        proposer="",
        tx_root=compute_root([], suite.hash),
        exec_root=ExecRoot(
            height=0, state_root=state_root, receipts_root=compute_root([], suite.hash)
        ),
        validator_set_hash=build_validator_set(genesis).hash,
        qc=build_genesis_qc(genesis.channel, ZERO_HASH),  # genesis has no parent to certify
    )
    return Block(header=header, transactions=[])
