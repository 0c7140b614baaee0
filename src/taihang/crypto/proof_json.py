"""State proofs in their JSON wire form (hex strings), for light clients reading the API."""

from __future__ import annotations

from typing import Any

from taihang.crypto.jmt import ProofLeaf, ProofLevel, StateProof
from taihang.errors import InvalidProof


def _hex(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidProof(f"{what} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise InvalidProof(f"{what} is not hex") from None


def state_proof_from_json(data: Any) -> StateProof:
    """Parse `{"levels": [{"bitmap", "siblings"}], "leaf": {...} | null}` or raise InvalidProof."""
    if not isinstance(data, dict) or not isinstance(data.get("levels"), list):
        raise InvalidProof("a proof is an object with a list of levels")
    levels = []
    for level in data["levels"]:
        if not isinstance(level, dict) or not isinstance(level.get("bitmap"), int):
            raise InvalidProof("a proof level has an integer bitmap")
        siblings = level.get("siblings")
        if not isinstance(siblings, list):
            raise InvalidProof("a proof level has a list of siblings")
        levels.append(
            ProofLevel(bitmap=level["bitmap"], siblings=[_hex(s, "sibling") for s in siblings])
        )
    leaf_data = data.get("leaf")
    leaf = None
    if leaf_data is not None:
        if not isinstance(leaf_data, dict):
            raise InvalidProof("the proof leaf must be an object or null")
        leaf = ProofLeaf(
            key_hash=_hex(leaf_data.get("key_hash"), "key_hash"),
            value_hash=_hex(leaf_data.get("value_hash"), "value_hash"),
        )
    return StateProof(levels=levels, leaf=leaf)
