"""Test keys and genesis for the execution tests: person `who` has seed `bytes([who]) * 32`."""

from __future__ import annotations

from taihang.ledger.genesis import BalanceSpec, Genesis, MemberSpec, OrgSpec, ValidatorSpec
from taihang.testing.ledger import SUITE, addr, key_of, seed_of

__all__ = ["SUITE", "addr", "key_of", "make_genesis", "seed_of"]


def make_genesis(
    channel: str, members: list[MemberSpec], balances: list[BalanceSpec] | None = None
) -> Genesis:
    """Two orgs (`org1`, `org2`), validator 1 in org1, and the given members and balances."""
    return Genesis(
        protocol_version=1,
        channel=channel,
        crypto="ed25519",
        timestamp_ms=0,
        orgs=[
            OrgSpec(id="org1", name="One", ca_cert_pem=""),
            OrgSpec(id="org2", name="Two", ca_cert_pem=""),
        ],
        validators=[ValidatorSpec(name="v1", org="org1", public_key=key_of(1).hex())],
        members=members,
        balances=balances or [],
    )
