"""Make the consensus test helpers importable when the sync tests run on their own.

The sync tests build real certified chains with `consensus_support` (tests/unit/consensus);
pytest puts that folder on `sys.path` only when it collects a test from it, so
`pytest tests/unit/sync` needs it added here (as tests/bench does).
"""

from __future__ import annotations

import sys
from pathlib import Path

_CONSENSUS_TESTS = str(Path(__file__).resolve().parents[1] / "consensus")
if _CONSENSUS_TESTS not in sys.path:
    sys.path.insert(0, _CONSENSUS_TESTS)
