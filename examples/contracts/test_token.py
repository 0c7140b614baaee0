"""Tests of token.py; run them with `taihang contract test examples/contracts/test_token.py`.

Each test gets a fresh in-memory ledger (taihang.sdk.contract_testing.Ledger) with the test
accounts alice, bob (org1), carol and dave (org2); alice sends unless `sender=` says otherwise.
"""

from taihang.sdk.contract_testing import Ledger


def test_init_gives_the_supply_to_the_deployer(ledger: Ledger) -> None:
    token = ledger.deploy("token.py", args=[1000])
    assert token.call("balance_of", ledger.address("alice")) == 1000
    assert token.call("balance_of", ledger.address("bob")) == 0


def test_transfer_moves_balance_and_emits(ledger: Ledger) -> None:
    token = ledger.deploy("token.py", args=[1000])
    alice, bob = ledger.address("alice"), ledger.address("bob")
    receipt = token.transact("transfer", bob, 250)
    assert receipt.gas_used > 0
    assert [(e.name, e.data) for e in receipt.events] == [
        ("Transfer", {"from": alice, "to": bob, "amount": 250})
    ]
    assert token.call("balance_of", alice) == 750
    assert token.call("balance_of", bob) == 250
    token.transact("transfer", alice, 50, sender="bob")
    assert token.call("balance_of", bob) == 200


def test_transfer_refuses_more_than_the_balance(ledger: Ledger) -> None:
    token = ledger.deploy("token.py", args=[100])
    bob = ledger.address("bob")
    with ledger.reverts("insufficient balance") as failed:
        token.transact("transfer", bob, 101)
    assert failed.failure is not None
    with ledger.reverts("insufficient balance"):
        token.transact("transfer", bob, 1, sender="carol")
    assert token.call("balance_of", ledger.address("alice")) == 100  # nothing moved


def test_transfer_refuses_non_positive_amounts(ledger: Ledger) -> None:
    token = ledger.deploy("token.py", args=[100])
    for amount in (0, -5):
        with ledger.reverts("amount must be positive"):
            token.transact("transfer", ledger.address("bob"), amount)


def test_init_cannot_run_again(ledger: Ledger) -> None:
    token = ledger.deploy("token.py", args=[100])
    with ledger.reverts():
        token.transact("init", 10**6, sender="bob")
    assert token.call("balance_of", ledger.address("bob")) == 0
