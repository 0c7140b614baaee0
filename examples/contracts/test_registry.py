"""Tests of registry.py; run them with `taihang contract test examples/contracts/test_registry.py`.

Each test gets a fresh in-memory ledger (taihang.sdk.contract_testing.Ledger) with the test
accounts alice, bob (org1), carol and dave (org2); alice sends unless `sender=` says otherwise.
"""

from taihang.sdk.contract_testing import DeployedContract, Ledger


def deploy(ledger: Ledger) -> DeployedContract:
    return ledger.deploy("registry.py")


def test_register_records_the_sender_as_owner(ledger: Ledger) -> None:
    registry = deploy(ledger)
    alice = ledger.address("alice")
    receipt = registry.transact("register", "acme", "https://acme.example")
    assert [(e.name, e.data) for e in receipt.events] == [
        ("Registered", {"name": "acme", "owner": alice})
    ]
    assert registry.call("owner_of", "acme") == alice
    record = registry.call("lookup", "acme")
    assert record == {"owner": alice, "value": "https://acme.example", "registered_at": 2}
    assert registry.call("owner_of", "nobody") is None
    assert registry.call("lookup", "nobody") is None


def test_a_name_is_registered_once(ledger: Ledger) -> None:
    registry = deploy(ledger)
    registry.transact("register", "acme", "first")
    with ledger.reverts("name is already registered"):
        registry.transact("register", "acme", "second", sender="bob")
    assert registry.call("lookup", "acme")["value"] == "first"


def test_register_checks_its_arguments(ledger: Ledger) -> None:
    registry = deploy(ledger)
    with ledger.reverts("name must be 1 to 64 characters"):
        registry.transact("register", "", "x")
    with ledger.reverts("name must be 1 to 64 characters"):
        registry.transact("register", "n" * 65, "x")
    with ledger.reverts("name must be a string"):
        registry.transact("register", 7, "x")
    with ledger.reverts("value must be at most 256 characters"):
        registry.transact("register", "acme", "v" * 257)
    registry.transact("register", "n" * 64, "v" * 256)  # the limits themselves are fine


def test_only_the_owner_transfers_and_the_new_owner_takes_over(ledger: Ledger) -> None:
    registry = deploy(ledger)
    alice, bob = ledger.address("alice"), ledger.address("bob")
    registry.transact("register", "acme", "x")
    with ledger.reverts("only the owner may do this"):
        registry.transact("transfer", "acme", ledger.address("carol"), sender="carol")
    receipt = registry.transact("transfer", "acme", bob)
    assert receipt.events[0].data == {"name": "acme", "from": alice, "to": bob}
    assert registry.call("owner_of", "acme") == bob
    # The old owner has lost every right; the new one has them all.
    with ledger.reverts("only the owner may do this"):
        registry.transact("set_value", "acme", "hijacked")
    with ledger.reverts("only the owner may do this"):
        registry.transact("transfer", "acme", alice)
    registry.transact("set_value", "acme", "bob's", sender="bob")
    assert registry.call("lookup", "acme")["value"] == "bob's"


def test_transfer_refuses_odd_targets(ledger: Ledger) -> None:
    registry = deploy(ledger)
    registry.transact("register", "acme", "x")
    with ledger.reverts("the name already belongs to you"):
        registry.transact("transfer", "acme", ledger.address("alice"))
    with ledger.reverts("new owner must be an address"):
        registry.transact("transfer", "acme", "")
    with ledger.reverts("name is not registered"):
        registry.transact("transfer", "other", ledger.address("bob"))


def test_release_frees_the_name(ledger: Ledger) -> None:
    registry = deploy(ledger)
    registry.transact("register", "acme", "x")
    with ledger.reverts("only the owner may do this"):
        registry.transact("release", "acme", sender="bob")
    registry.transact("release", "acme")
    assert registry.call("owner_of", "acme") is None
    registry.transact("register", "acme", "mine now", sender="bob")
    assert registry.call("owner_of", "acme") == ledger.address("bob")


def test_names_lists_by_prefix_in_order(ledger: Ledger) -> None:
    registry = deploy(ledger)
    for name in ("beta", "alpha", "alpine", "gamma"):
        registry.transact("register", name, "x")
    assert registry.call("names", "", 10) == ["alpha", "alpine", "beta", "gamma"]
    assert registry.call("names", "al", 10) == ["alpha", "alpine"]
    assert registry.call("names", "", 2) == ["alpha", "alpine"]
    with ledger.reverts("limit must be 1 to 100"):
        registry.call("names", "", 0)


def test_a_failed_call_changes_nothing(ledger: Ledger) -> None:
    registry = deploy(ledger)
    registry.transact("register", "acme", "x")
    failed = registry.try_transact("set_value", "acme", "v" * 300)
    assert failed.status == "reverted"
    assert failed.events == ()
    assert registry.call("lookup", "acme")["value"] == "x"
