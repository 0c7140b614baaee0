"""Deterministic test keys for the execution tests: person `who` has seed `bytes([who]) * 32`."""

from __future__ import annotations

from taihang.crypto import get_suite
from taihang.ledger.transaction import compute_address

SUITE = get_suite("ed25519")


def seed_of(who: int) -> bytes:
    return bytes([who]) * 32


def key_of(who: int) -> bytes:
    return SUITE.public_key_from_seed(seed_of(who))


def addr(who: int) -> str:
    return compute_address(SUITE, key_of(who))
