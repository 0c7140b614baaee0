"""The mutation check (consensus test plan): the simulator must find an injected bug.

Each run stops at its first violation, so it costs little. Only the skip-persist mutant is
checked here: with crash and network faults alone, "commit without consecutive rounds" and
"vote ignoring the TC's hqc" cannot show (honest leaders always extend their highest QC), so
their checks arrive with the Byzantine validators of the next issue (`sim_mutants`).
"""

from __future__ import annotations

from taihang.sim.checkers import VIOLATION_KINDS
from taihang.sim.runner import SimOptions, run_seed

MUTANT_SEED_BUDGET = 300  # the layer-1 budget: the random-fault seeds of one CI run
SIGNING_RULE_KINDS = {
    "double_vote",
    "vote_after_timeout",
    "vote_round_regression",
    "timeout_round_regression",
    "timeout_below_lock",
}


def test_skip_persist_mutant_is_found_within_the_seed_budget() -> None:
    options = SimOptions(binding="sim_mutants:SkipPersistBinding")
    for seed in range(MUTANT_SEED_BUDGET):
        violation = run_seed(seed, options).violation
        if violation is not None:
            assert violation["kind"] in SIGNING_RULE_KINDS, violation
            return
    raise AssertionError(
        f"no violation in {MUTANT_SEED_BUDGET} seeds with SafetyData never persisted: "
        "the fault generator needs improving"
    )


def test_signing_rule_kinds_are_violation_kinds() -> None:
    assert SIGNING_RULE_KINDS.issubset(VIOLATION_KINDS)
