"""Unit tests for `taihang.ledger.genesis`: validation, hashing and the genesis block."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from taihang.codec import decode, encode
from taihang.crypto import get_suite
from taihang.crypto.merkle import compute_root
from taihang.errors import ConfigurationError
from taihang.ledger.block import ZERO_HASH, Block, is_genesis_qc
from taihang.ledger.genesis import (
    BalanceSpec,
    ChainParams,
    Genesis,
    MemberSpec,
    ObserverSpec,
    OrgSpec,
    ValidatorSpec,
    build_genesis_block,
    build_validator_set,
    compute_genesis_hash,
    encode_genesis_json,
    load_genesis_json,
    validate_genesis,
)
from taihang.ledger.transaction import compute_address

SUITE = get_suite("ed25519")


def key_hex(n: int) -> str:
    return SUITE.public_key_from_seed(bytes([n]) * 32).hex()


def address_of(n: int) -> str:
    return compute_address(SUITE, bytes.fromhex(key_hex(n)))


def make_genesis(**overrides: Any) -> Genesis:
    fields: dict[str, Any] = {
        "protocol_version": 1,
        "channel": "main",
        "crypto": "ed25519",
        "timestamp_ms": 1_700_000_000_000,
        "orgs": [
            OrgSpec(id="org1", name="Org One", ca_cert_pem="-----BEGIN CERTIFICATE-----"),
            OrgSpec(id="org2", name="Org Two", ca_cert_pem="-----BEGIN CERTIFICATE-----"),
        ],
        "validators": [
            ValidatorSpec(name="v1", org="org1", public_key=key_hex(1)),
            ValidatorSpec(name="v2", org="org2", public_key=key_hex(2), weight=2),
        ],
        "members": [
            MemberSpec(public_key=key_hex(10), org="org1", roles=["admin", "issuer"]),
            MemberSpec(public_key=key_hex(11), org="org2", roles=["member"]),
        ],
        "observers": [ObserverSpec(name="o1", org="org2", public_key=key_hex(3))],
        "balances": [BalanceSpec(address=address_of(10), amount=1_000)],
    }
    fields.update(overrides)
    return Genesis(**fields)


def replace(value: Any, **changes: Any) -> Any:
    return msgspec.structs.replace(value, **changes)


GOOD = make_genesis()
GOLDEN_HASH = "d3064be222ced23571226f546cf1434a8e4ce7eb74854967236dfc6b00d2bb06"


def test_validate_genesis_accepts_a_good_document() -> None:
    validate_genesis(GOOD)
    validate_genesis(make_genesis(balances=[], observers=[], members=[]))


def test_load_genesis_json_round_trips_encode_genesis_json() -> None:
    text = encode_genesis_json(GOOD)
    assert text.endswith(b"\n")
    assert load_genesis_json(text) == GOOD


def test_load_genesis_json_fills_defaults() -> None:
    data = msgspec.json.decode(encode_genesis_json(GOOD))
    del data["params"], data["observers"], data["balances"]
    for spec in data["validators"]:
        spec.pop("weight")
    genesis = load_genesis_json(msgspec.json.encode(data))
    assert genesis.params == ChainParams()
    assert genesis.observers == [] and genesis.balances == []
    assert [v.weight for v in genesis.validators] == [1, 1]


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"{",
        b"[]",
        b'{"channel": "main"}',
        encode_genesis_json(GOOD).replace(b'"channel"', b'"chanel"'),
    ],
)
def test_load_genesis_json_rejects_malformed_documents(text: bytes) -> None:
    with pytest.raises(ConfigurationError, match="genesis"):
        load_genesis_json(text)


def test_load_genesis_json_rejects_unknown_fields() -> None:
    data = msgspec.json.decode(encode_genesis_json(GOOD))
    data["surprise"] = 1
    with pytest.raises(ConfigurationError):
        load_genesis_json(msgspec.json.encode(data))


def test_load_genesis_json_validates_the_document() -> None:
    with pytest.raises(ConfigurationError, match="unknown org"):
        load_genesis_json(
            encode_genesis_json(
                make_genesis(
                    members=[MemberSpec(public_key=key_hex(10), org="nope", roles=["member"])]
                )
            )
        )


BAD_KEYS = ["zz" * 32, key_hex(1)[:-2], key_hex(1) + "00", "", "0x" + key_hex(1)[2:]]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"protocol_version": 2}, "protocol version"),
        ({"channel": "Main"}, "channel"),
        ({"channel": ""}, "channel"),
        ({"crypto": "rsa"}, "unknown crypto suite"),
        ({"orgs": []}, "orgs"),
        ({"orgs": [GOOD.orgs[0], replace(GOOD.orgs[1], id="org1")]}, "unique"),
        ({"validators": []}, "at least one validator"),
        ({"validators": [replace(GOOD.validators[0], org="org9")]}, "unknown org"),
        ({"validators": [replace(GOOD.validators[0], weight=0)]}, "positive weight"),
        (
            {
                "validators": [
                    GOOD.validators[0],
                    replace(GOOD.validators[1], public_key=key_hex(1)),
                ]
            },
            "repeats",
        ),
        ({"members": [replace(GOOD.members[0], org="org9")]}, "unknown org"),
        ({"members": [replace(GOOD.members[0], roles=["admin", "king"])]}, "unknown roles"),
        (
            {
                "members": [
                    GOOD.members[0],
                    replace(GOOD.members[1], public_key=GOOD.members[0].public_key),
                ]
            },
            "twice",
        ),
        ({"balances": [BalanceSpec(address=address_of(10), amount=0)]}, "balance"),
        ({"balances": [BalanceSpec(address=address_of(10), amount=-5)]}, "balance"),
        ({"balances": [BalanceSpec(address=address_of(10), amount=2**63)]}, "balance"),
        ({"balances": [BalanceSpec(address=address_of(10).upper(), amount=1)]}, "balance"),
        ({"balances": [BalanceSpec(address=address_of(10)[:-1], amount=1)]}, "balance"),
        ({"balances": [BalanceSpec(address="g" * 40, amount=1)]}, "balance"),
        ({"balances": [BalanceSpec(address=address_of(10), amount=1)] * 2}, "twice"),
        (
            {
                "balances": [
                    BalanceSpec(address=address_of(10), amount=2**62),
                    BalanceSpec(address=address_of(11), amount=2**62),
                ]
            },
            "maximum supply",
        ),
        ({"params": ChainParams(block_txs_max=0)}, "block limits"),
        ({"params": ChainParams(block_bytes_max=-1)}, "block limits"),
    ],
)
def test_validate_genesis_rejects_bad_documents(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        validate_genesis(make_genesis(**changes))


@pytest.mark.parametrize("bad_key", BAD_KEYS)
def test_validate_genesis_rejects_bad_validator_keys(bad_key: str) -> None:
    with pytest.raises(ConfigurationError, match="public key"):
        validate_genesis(make_genesis(validators=[replace(GOOD.validators[0], public_key=bad_key)]))


@pytest.mark.parametrize("bad_key", BAD_KEYS)
def test_validate_genesis_rejects_bad_observer_keys(bad_key: str) -> None:
    with pytest.raises(ConfigurationError, match="observer o1 public key"):
        validate_genesis(make_genesis(observers=[replace(GOOD.observers[0], public_key=bad_key)]))


def test_validate_genesis_rejects_an_observer_of_an_unknown_org() -> None:
    with pytest.raises(ConfigurationError, match="observer o1 names unknown org"):
        validate_genesis(make_genesis(observers=[replace(GOOD.observers[0], org="org9")]))


@pytest.mark.parametrize("bad_key", BAD_KEYS)
def test_validate_genesis_rejects_bad_member_keys(bad_key: str) -> None:
    with pytest.raises(ConfigurationError, match="public key"):
        validate_genesis(make_genesis(members=[replace(GOOD.members[0], public_key=bad_key)]))


def test_validate_genesis_accepts_the_largest_total_supply() -> None:
    balances = [
        BalanceSpec(address=address_of(10), amount=2**62),
        BalanceSpec(address=address_of(11), amount=2**62 - 1),
    ]
    validate_genesis(make_genesis(balances=balances))


# ----------------------------------------------------------------------------- hash


def test_compute_genesis_hash_is_stable() -> None:
    # Pinned: a change here changes every channel's identity, so it must be deliberate.
    assert compute_genesis_hash(GOOD).hex() == GOLDEN_HASH
    assert compute_genesis_hash(load_genesis_json(encode_genesis_json(GOOD))).hex() == GOLDEN_HASH
    assert compute_genesis_hash(decode(encode(GOOD), Genesis)).hex() == GOLDEN_HASH


def test_compute_genesis_hash_is_the_tagged_hash_of_the_canonical_bytes() -> None:
    assert compute_genesis_hash(GOOD) == SUITE.tagged_hash(b"taihang/genesis/v1", encode(GOOD))


@pytest.mark.parametrize(
    "changes",
    [
        {"channel": "other"},
        {"timestamp_ms": 1_700_000_000_001},
        {"orgs": GOOD.orgs[::-1]},
        {"validators": [replace(GOOD.validators[0], weight=3), GOOD.validators[1]]},
        {"members": GOOD.members[:1]},
        {"observers": []},
        {"balances": []},
        {"params": ChainParams(block_txs_max=9_999)},
    ],
)
def test_compute_genesis_hash_changes_with_any_field(changes: dict[str, Any]) -> None:
    assert compute_genesis_hash(make_genesis(**changes)) != compute_genesis_hash(GOOD)


# ----------------------------------------------------------------------------- derived values


def test_build_validator_set_uses_the_keys_addresses_and_weights() -> None:
    validators = build_validator_set(GOOD)
    by_address = {v.address: v for v in validators.members}
    assert set(by_address) == {address_of(1), address_of(2)}
    assert by_address[address_of(2)].weight == 2
    assert by_address[address_of(1)].public_key.hex() == key_hex(1)
    assert validators.total_weight == 3


def test_build_genesis_block_is_height_zero_with_an_unsigned_qc() -> None:
    state_root = b"\x07" * 32
    block = build_genesis_block(GOOD, state_root)
    header = block.header
    assert block.transactions == []
    assert (header.height, header.round, header.epoch) == (0, 0, 0)
    assert header.parent_id == ZERO_HASH
    assert header.channel == "main"
    assert header.timestamp_ms == GOOD.timestamp_ms
    assert header.proposer == ""
    assert header.tx_root == compute_root([])
    assert header.exec_root.height == 0
    assert header.exec_root.state_root == state_root
    assert header.validator_set_hash == build_validator_set(GOOD).hash
    assert is_genesis_qc(header.qc)
    assert decode(encode(block), Block) == block
    assert build_genesis_block(GOOD, state_root) == block
