"""Leader election: who proposes in a round (consensus spec, "Pacemaker").

Pluggable so that Twins tests can choose the leader of every round; the default is round robin
over the validators sorted by address, which every node computes alike.
"""

from __future__ import annotations

from typing import Protocol

from taihang.ledger.block import ValidatorSet


class LeaderElection(Protocol):
    def leader(self, round: int) -> str:
        """The address of the validator that proposes in `round`."""
        ...


class RoundRobin:
    """`leader(r) = V_sorted[r mod n]` (weights do not matter)."""

    __slots__ = ("_addresses",)

    def __init__(self, validators: ValidatorSet) -> None:
        self._addresses = tuple(v.address for v in validators.members)  # sorted by address

    def leader(self, round: int) -> str:
        return self._addresses[round % len(self._addresses)]
