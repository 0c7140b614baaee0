"""The mutation check (consensus test plan): the simulator must find each injected bug.

Each mutant (`sim_mutants`) runs over the CI seed budget, at most 300 seeds with
`--byzantine 1`, and must be caught, stopping at the first violation, so a check costs little.
The first catching seed is pinned in `FIRST_SEED`, so a change that makes the fault generator
or the checkers weaker shows up here; docs/simulator.md records the same seeds.
"""

from __future__ import annotations

import pytest

from taihang.ledger.block import QuorumCert, VoteData
from taihang.sim.checkers import VIOLATION_KINDS, SafetyMonitor, Violation
from taihang.sim.runner import SimOptions, run_seed

MUTANT_SEED_BUDGET = 300  # the layer-1 budget: the random-fault seeds of one CI run
BYZANTINE = 1
SIGNING_RULE_KINDS = {
    "double_vote",
    "vote_after_timeout",
    "vote_round_regression",
    "timeout_round_regression",
    "timeout_below_lock",
}
# mutant -> (the violations that may reveal it, the first seed that does with --byzantine 1)
EXPECTED = {
    "SkipPersistBinding": (SIGNING_RULE_KINDS, 47),
    "IgnoreTcHqcBinding": ({"vote_breaks_rule_3", "agreement"}, 17),
    "NonConsecutiveCommitBinding": ({"commit_without_2chain", "agreement"}, 0),
}


def find_first_violation(binding: str) -> tuple[int, dict[str, object]] | None:
    options = SimOptions(binding=f"sim_mutants:{binding}", byzantine=BYZANTINE)
    for seed in range(MUTANT_SEED_BUDGET):
        violation = run_seed(seed, options).violation
        if violation is not None:
            return seed, violation
    return None


@pytest.mark.parametrize("binding", sorted(EXPECTED))
def test_mutant_is_found_within_the_seed_budget(binding: str) -> None:
    kinds, first_seed = EXPECTED[binding]
    found = find_first_violation(binding)
    assert found is not None, (
        f"{binding}: no violation in {MUTANT_SEED_BUDGET} seeds with --byzantine {BYZANTINE}: "
        "the fault generator needs improving"
    )
    seed, violation = found
    assert violation["kind"] in kinds, violation
    assert seed == first_seed, f"{binding} is now first caught at seed {seed}: update the docs"


def test_violation_kinds_are_known() -> None:
    assert SIGNING_RULE_KINDS.issubset(VIOLATION_KINDS)
    assert {"vote_breaks_rule_3", "commit_without_2chain"}.issubset(VIOLATION_KINDS)


def _qc(round_: int, parent_id: bytes, parent_round: int) -> QuorumCert:
    data = VoteData(
        channel="sim",
        epoch=0,
        round=round_,
        block_id=b"\x01" * 32,
        height=5,
        parent_id=parent_id,
        parent_round=parent_round,
    )
    return QuorumCert(vote_data=data, signers=b"", signatures=[])


def test_commit_proof_check_needs_a_consecutive_child_of_the_head() -> None:
    head = b"\x02" * 32
    monitor = SafetyMonitor()
    monitor.check_commit_proof(0, head, _qc(8, head, 7))  # the 2-chain rule holds
    for proof in (_qc(8, head, 6), _qc(8, b"\x03" * 32, 7)):
        with pytest.raises(Violation) as caught:
            monitor.check_commit_proof(0, head, proof)
        assert caught.value.kind == "commit_without_2chain"
