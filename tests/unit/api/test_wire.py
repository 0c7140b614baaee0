"""The JSON form of blocks: a Byzantine proposer's undecodable transaction must not break it."""

from __future__ import annotations

import msgspec

from taihang.api.wire import block_to_json
from taihang.constants import PROTOCOL_VERSION, TAG_TX
from taihang.crypto import get_suite
from taihang.ledger.block import Block
from taihang.ledger.genesis import Genesis, OrgSpec, ValidatorSpec, build_genesis_block
from taihang.sdk.models import Block as BlockModel
from taihang.sdk.tx import build_signed_tx

SUITE = get_suite("ed25519")


def genesis_block() -> Block:
    public_key = SUITE.public_key_from_seed(bytes(32)).hex()
    genesis = Genesis(
        protocol_version=PROTOCOL_VERSION,
        channel="test",
        crypto="ed25519",
        timestamp_ms=1_700_000_000_000,
        orgs=[OrgSpec(id="org1", name="Org 1", ca_cert_pem="")],
        validators=[ValidatorSpec(name="v1", org="org1", public_key=public_key)],
        members=[],
    )
    return build_genesis_block(genesis, bytes(32))


def test_block_json_lists_an_undecodable_transaction_with_its_reason() -> None:
    good = build_signed_tx(
        seed=bytes(32),
        suite_name="ed25519",
        channel="test",
        nonce=0,
        contract="kv",
        method="put",
        args=["k", "v"],
        expires_at_height=10,
    )
    block = msgspec.structs.replace(genesis_block(), transactions=[good, b"\x01garbage"])
    out = block_to_json(block, SUITE)
    first, second = out["transactions"]
    assert first["method"] == "put" and "invalid" not in first
    assert second["id"] == SUITE.tagged_hash(TAG_TX, b"\x01garbage").hex()
    assert second["invalid"]
    parsed = msgspec.convert(out, BlockModel)  # the SDK reads it
    assert parsed.transactions[1].invalid == second["invalid"]
