"""Every runnable example of the SDK guide (examples/sdk/*.py) runs against a real node."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import RunningNode

pytestmark = pytest.mark.e2e

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "sdk").glob("*.py"))


def test_the_guide_has_examples() -> None:
    assert len(EXAMPLES) >= 3
    guide = (Path(__file__).resolve().parents[2] / "docs" / "sdk.md").read_text()
    for example in EXAMPLES:
        assert f"examples/sdk/{example.name}" in guide, f"{example.name} is not in docs/sdk.md"


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_example_runs(node: RunningNode, example: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(example), str(node.network.path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{example.name}:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), "an example says what it did"
