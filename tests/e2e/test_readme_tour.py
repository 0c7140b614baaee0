"""The README's five-minute tour, run verbatim in an empty directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def tour_commands() -> list[str]:
    text = README.read_text()
    block = text.split("<!-- tour:begin -->", 1)[1].split("<!-- tour:end -->", 1)[0]
    lines = re.findall(r"^([^`\n#].*?)\s*(?:#.*)?$", block, flags=re.MULTILINE)
    return [line.strip() for line in lines if line.strip()]


def test_readme_tour_runs_verbatim(tmp_path: Path) -> None:
    commands = tour_commands()
    assert commands[0].startswith("taihang up")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    outputs: dict[str, str] = {}
    try:
        for command in commands:
            if command.startswith("export "):
                name, value = command.removeprefix("export ").split("=", 1)
                env[name] = value
                continue
            result = subprocess.run(
                command,
                shell=True,
                cwd=tmp_path,
                env=env,
                text=True,
                capture_output=True,
                timeout=90,
            )
            assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
            outputs[command] = result.stdout
    finally:
        subprocess.run(
            "taihang down", shell=True, cwd=tmp_path, env=env, timeout=60, capture_output=True
        )
    assert outputs["taihang query asset balance alice"].strip() == "10"
    assert outputs["taihang contract call counter count"].strip() == "5"
    assert "4 passed" in outputs["taihang contract test counter.py"]
    assert "state root matches" in outputs["taihang ledger verify"]
