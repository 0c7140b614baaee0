"""The state a channel starts from: its members and their roles, from the genesis document."""

from __future__ import annotations

from taihang.codec import encode_value
from taihang.crypto import get_suite
from taihang.execution.state import state_key
from taihang.ledger.genesis import Genesis
from taihang.ledger.transaction import compute_address


def build_genesis_writes(genesis: Genesis) -> dict[bytes, bytes]:
    """State key -> encoded value for the members and initial balances listed in genesis."""
    suite = get_suite(genesis.crypto)
    writes: dict[bytes, bytes] = {}
    for spec in genesis.members:
        public_key = bytes.fromhex(spec.public_key)
        address = compute_address(suite, public_key)
        member = {"public_key": public_key, "org": spec.org, "roles": sorted(set(spec.roles))}
        writes[state_key("members", f"member/{address}")] = encode_value(member)
    for balance in genesis.balances:
        writes[state_key("asset", f"balance/{balance.address}")] = encode_value(balance.amount)
    if genesis.balances:
        supply = sum(b.amount for b in genesis.balances)
        writes[state_key("asset", "supply")] = encode_value(supply)
    return writes
