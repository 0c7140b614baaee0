"""The chain on a real RocksDB: commit, execute, reopen, recover, and refuse bad stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from taihang.codec import decode, encode
from taihang.consensus.solo import build_block, certify_block, compute_exec_height
from taihang.constants import PROTOCOL_VERSION
from taihang.crypto import get_suite
from taihang.errors import StoreError
from taihang.ledger.block import Block, QuorumCert
from taihang.ledger.genesis import BalanceSpec, Genesis, MemberSpec, OrgSpec, ValidatorSpec
from taihang.ledger.transaction import compute_address, decode_transaction
from taihang.node.chain import Chain
from taihang.sdk.tx import build_signed_tx
from taihang.store.kv import RocksKV
from taihang.store.ledger_store import HIGHEST_QC, META_SCHEMA

SUITE = get_suite("ed25519")
VALIDATOR_SEED = bytes(range(32))
ADMIN_SEED = bytes([7]) * 32


class Signer:
    address = compute_address(SUITE, SUITE.public_key_from_seed(VALIDATOR_SEED))

    def sign(self, message: bytes) -> bytes:
        return SUITE.sign(VALIDATOR_SEED, message)


def make_genesis(channel: str = "test") -> Genesis:
    admin_key = SUITE.public_key_from_seed(ADMIN_SEED)
    return Genesis(
        protocol_version=PROTOCOL_VERSION,
        channel=channel,
        crypto="ed25519",
        timestamp_ms=1_700_000_000_000,
        orgs=[OrgSpec(id="org1", name="Org 1", ca_cert_pem="")],
        validators=[
            ValidatorSpec(
                name="v1", org="org1", public_key=SUITE.public_key_from_seed(VALIDATOR_SEED).hex()
            )
        ],
        members=[MemberSpec(public_key=admin_key.hex(), org="org1", roles=["admin", "issuer"])],
        balances=[BalanceSpec(address=compute_address(SUITE, admin_key), amount=1000)],
    )


def produce(chain: Chain, txs: list[bytes], *, execute: bool = True) -> int:
    parent = decode(chain.store.find_block(chain.tip_height) or b"", Block).header
    height = chain.tip_height + 1
    exec_height = compute_exec_height(height, chain.executed_height, parent.exec_root.height)
    block = build_block(
        parent=parent,
        parent_id=chain.tip_id,
        parent_qc=chain.highest_qc,
        transactions=txs,
        exec_root=chain.exec_root_for(exec_height),
        timestamp_ms=parent.timestamp_ms + 1,
        proposer=Signer.address,
        validator_set_hash=chain.validators.hash,
        suite=chain.suite,
    )
    qc = certify_block(block.header, Signer(), chain.validators, chain.suite)
    chain.commit(height, encode(block), qc.vote_data.block_id, qc)
    if execute:
        chain.execute(height, [decode_transaction(t, SUITE) for t in txs])
    return height


def transfer(nonce: int) -> bytes:
    return build_signed_tx(
        seed=ADMIN_SEED,
        suite_name="ed25519",
        channel="test",
        nonce=nonce,
        contract="asset",
        method="transfer",
        args=["ab" * 20, 1],
        expires_at_height=1000,
    )


def test_chain_commits_executes_and_reopens(tmp_path: Path) -> None:
    chain = Chain.open(tmp_path / "db", make_genesis())
    for nonce in range(5):
        produce(chain, [transfer(nonce)])
    assert (chain.tip_height, chain.executed_height) == (5, 5)
    root = chain.tree.root
    chain.close()
    reopened = Chain.open(tmp_path / "db", make_genesis())
    assert (reopened.tip_height, reopened.executed_height) == (5, 5)
    assert reopened.tree.root == root == reopened.exec_root_for(5).state_root
    reopened.close()


def test_chain_recovers_committed_but_unexecuted_blocks(tmp_path: Path) -> None:
    chain = Chain.open(tmp_path / "db", make_genesis())
    produce(chain, [transfer(0)])
    produce(chain, [transfer(1)], execute=False)  # as if the node crashed here
    chain.close()
    reopened = Chain.open(tmp_path / "db", make_genesis())
    assert reopened.tip_height == 2
    assert reopened.store.committed_heights() == [2]
    executed = reopened.execute(2)  # decodes the transactions from the stored block
    assert executed.result.receipts[0].status == "ok"
    assert reopened.store.committed_heights() == []
    reopened.close()


def test_chain_rejects_a_tampered_certificate_on_load(tmp_path: Path) -> None:
    chain = Chain.open(tmp_path / "db", make_genesis())
    produce(chain, [])
    qc = chain.highest_qc
    forged = QuorumCert(vote_data=qc.vote_data, signers=qc.signers, signatures=[bytes(64)])
    chain.kv.write({HIGHEST_QC: encode(forged)}, sync=True)
    chain.close()
    with pytest.raises(StoreError, match="certificate"):
        Chain.open(tmp_path / "db", make_genesis())


def test_chain_refuses_a_store_of_another_genesis(tmp_path: Path) -> None:
    Chain.open(tmp_path / "db", make_genesis()).close()
    with pytest.raises(StoreError, match="different genesis"):
        Chain.open(tmp_path / "db", make_genesis(channel="other"))


def test_chain_refuses_another_schema_version(tmp_path: Path) -> None:
    Chain.open(tmp_path / "db", make_genesis()).close()
    kv = RocksKV(tmp_path / "db")
    kv.write({META_SCHEMA: (99).to_bytes(8, "big")}, sync=True)
    kv.close()
    with pytest.raises(StoreError, match="schema version 99"):
        Chain.open(tmp_path / "db", make_genesis())


def receipt_statuses(chain: Chain, height: int) -> list[tuple[str, str]]:
    from taihang.ledger.receipt import Receipt

    receipts = [decode(r, Receipt) for r in chain.store.get_receipts(height)]
    return [(r.status, r.error_message) for r in receipts]


def test_chain_rejects_forged_and_undecodable_txs_of_a_byzantine_proposer(tmp_path: Path) -> None:
    """A proposer's bad transactions get rejected receipts in place; execution goes on."""
    chain = Chain.open(tmp_path / "db", make_genesis())
    good = transfer(0)
    forged = bytearray(transfer(1))
    forged[-1] ^= 1  # the signature's last byte: still decodes, no longer verifies
    produce(chain, [b"\x01garbage", bytes(forged), good], execute=False)
    chain.execute(1, is_verified=lambda tx_id: False)
    statuses = receipt_statuses(chain, 1)
    assert [s for s, _ in statuses] == ["rejected", "rejected", "ok"]
    assert "signature" in statuses[1][1]
    chain.close()


def test_chain_indexes_only_the_first_inclusion_of_a_duplicate_tx(tmp_path: Path) -> None:
    chain = Chain.open(tmp_path / "db", make_genesis())
    tx = transfer(0)
    produce(chain, [tx], execute=False)
    produce(chain, [tx], execute=False)  # a second proposer included it again
    chain.execute(1)
    chain.execute(2)
    assert [s for s, _ in receipt_statuses(chain, 2)] == ["rejected"]
    tx_id = decode_transaction(tx, SUITE).id
    assert chain.store.find_tx_location(tx_id) == (1, 0)
    chain.close()
