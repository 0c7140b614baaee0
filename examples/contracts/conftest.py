"""Lets pytest run these contract tests too (`pytest examples/contracts`), with the same fresh
in-memory ledger per test that `taihang contract test` gives them."""

from pathlib import Path

import pytest

from taihang.sdk.contract_testing import Ledger


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Ledger:
    return Ledger(base_dir=Path(request.path).parent)
