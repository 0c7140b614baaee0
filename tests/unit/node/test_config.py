"""Node configuration: defaults round-trip; every bad value is refused with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from taihang.errors import ConfigurationError
from taihang.node.config import NodeConfig, load_config, save_config


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    config = NodeConfig(name="n1", channel="c")
    save_config(tmp_path / "config.toml", config)
    assert load_config(tmp_path / "config.toml") == config


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('name = "n"\nchannel = "c"\n[block]\nmin_block_interval_ms = 0\n', "min_block"),
        ('name = "n"\nchannel = "c"\n[block]\nbytes_max = 100\n', "bytes_max"),
        ('name = "n"\nchannel = "c"\n[mempool]\ntxs_max = 0\n', "mempool"),
        ('name = "n"\nchannel = "c"\n[api]\nport = 70000\n', "port"),
        ('name = "n"\nchannel = "c"\nverify_workers = 0\n', "verify_workers"),
        ('name = "n"\nchannel = "c"\n[execution]\nworker_memory_mb = 64\n', "worker_memory_mb"),
        ('name = "n"\nchannel = "c"\n[execution]\nwatchdog_ms = 5\n', "watchdog_ms"),
        ('name = "n"\nchannel = "c"\n[execution]\nworkers = 2\n', "workers"),
        ('name = "n"\nchannel = "c"\nlog_level = "loud"\n', "log_level"),
        ('name = "n"\nchannel = "c"\nsurprise = 1\n', "surprise"),
        ('name = "n"\n', "channel"),
        ("name = [", "config.toml"),
    ],
)
def test_load_config_rejects_bad_values(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigurationError, match=reason):
        load_config(tmp_path / "config.toml")


def test_load_config_missing_file_says_where(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no node config"):
        load_config(tmp_path / "config.toml")
