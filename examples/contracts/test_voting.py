"""Tests of voting.py; run them with `taihang contract test examples/contracts/test_voting.py`.

Each test gets a fresh in-memory ledger (taihang.sdk.contract_testing.Ledger) with the test
accounts alice, bob (org1), carol and dave (org2); alice sends unless `sender=` says otherwise.
"""

from taihang.sdk.contract_testing import DeployedContract, Ledger


def two_of_three(ledger: Ledger) -> tuple[DeployedContract, int]:
    """The voting contract with proposal 1: bob, carol and dave, any two of them."""
    voting = ledger.deploy("voting.py")
    approvers = [ledger.address(n) for n in ("bob", "carol", "dave")]
    proposal_id = voting.transact("propose", "raise the limit", approvers, 2).return_value
    return voting, proposal_id


def test_propose_records_an_open_proposal(ledger: Ledger) -> None:
    voting, proposal_id = two_of_three(ledger)
    assert proposal_id == 1
    proposal = voting.call("proposal", proposal_id)
    assert proposal["status"] == "open"
    assert proposal["proposer"] == ledger.address("alice")
    assert proposal["threshold"] == 2
    assert proposal["approvals"] == []
    assert voting.call("approvals_needed", proposal_id) == 2
    assert voting.call("is_executed", proposal_id) is False
    second = voting.transact("propose", "another", [ledger.address("bob")], 1).return_value
    assert second == 2


def test_threshold_executes_the_proposal(ledger: Ledger) -> None:
    voting, proposal_id = two_of_three(ledger)
    first = voting.transact("approve", proposal_id, sender="bob")
    assert first.return_value == "open"
    assert [e.name for e in first.events] == ["Approved"]
    assert voting.call("approvals_needed", proposal_id) == 1
    second = voting.transact("approve", proposal_id, sender="dave")
    assert second.return_value == "executed"
    assert [e.name for e in second.events] == ["Approved", "Executed"]
    assert second.events[1].data == {"id": proposal_id, "approvals": 2}
    assert voting.call("is_executed", proposal_id) is True
    assert voting.call("proposal", proposal_id)["executed_at"] == second.height
    # Executed is final: no more approvals, revocations or cancelling.
    with ledger.reverts("proposal is executed"):
        voting.transact("approve", proposal_id, sender="carol")
    with ledger.reverts("proposal is executed"):
        voting.transact("revoke", proposal_id, sender="bob")
    with ledger.reverts("proposal is executed"):
        voting.transact("cancel", proposal_id)


def test_only_listed_approvers_approve_once_each(ledger: Ledger) -> None:
    voting, proposal_id = two_of_three(ledger)
    with ledger.reverts("only a listed approver may approve"):
        voting.transact("approve", proposal_id)  # alice proposed but is not an approver
    voting.transact("approve", proposal_id, sender="carol")
    with ledger.reverts("already approved"):
        voting.transact("approve", proposal_id, sender="carol")
    assert voting.call("approvals_needed", proposal_id) == 1
    assert voting.call("is_executed", proposal_id) is False


def test_revoke_withdraws_an_approval(ledger: Ledger) -> None:
    voting, proposal_id = two_of_three(ledger)
    voting.transact("approve", proposal_id, sender="bob")
    with ledger.reverts("nothing to revoke: not approved"):
        voting.transact("revoke", proposal_id, sender="carol")
    voting.transact("revoke", proposal_id, sender="bob")
    assert voting.call("proposal", proposal_id)["approvals"] == []
    voting.transact("approve", proposal_id, sender="carol")
    assert voting.call("is_executed", proposal_id) is False  # bob's approval no longer counts
    voting.transact("approve", proposal_id, sender="bob")
    assert voting.call("is_executed", proposal_id) is True


def test_only_the_proposer_cancels_an_open_proposal(ledger: Ledger) -> None:
    voting, proposal_id = two_of_three(ledger)
    with ledger.reverts("only the proposer may cancel"):
        voting.transact("cancel", proposal_id, sender="bob")
    voting.transact("cancel", proposal_id)
    assert voting.call("proposal", proposal_id)["status"] == "cancelled"
    with ledger.reverts("proposal is cancelled"):
        voting.transact("approve", proposal_id, sender="bob")


def test_propose_checks_its_arguments(ledger: Ledger) -> None:
    voting = ledger.deploy("voting.py")
    bob, carol = ledger.address("bob"), ledger.address("carol")
    cases = [
        (("", [bob], 1), "description must not be empty"),
        (("x", [], 1), "a proposal has 1 to 32 approvers"),
        (("x", [bob, bob], 1), "approvers must be distinct"),
        (("x", [bob, carol], 0), "threshold must be 1 to the approvers"),
        (("x", [bob, carol], 3), "threshold must be 1 to the approvers"),
        (("x", bob, 1), "approvers must be a list of addresses"),
        (("x", [bob, 5], 1), "approvers are addresses"),
        (("x", [f"a{i}" for i in range(33)], 1), "a proposal has 1 to 32 approvers"),
    ]
    for args, message in cases:
        with ledger.reverts(message):
            voting.transact("propose", *args)
    with ledger.reverts("no such proposal"):
        voting.call("proposal", 1)  # nothing was stored


def test_unknown_proposals_are_refused(ledger: Ledger) -> None:
    voting, _ = two_of_three(ledger)
    with ledger.reverts("no such proposal"):
        voting.transact("approve", 99, sender="bob")
    with ledger.reverts("proposal id must be an integer"):
        voting.transact("approve", "1", sender="bob")
