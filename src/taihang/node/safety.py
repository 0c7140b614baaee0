"""The node's safety record: proof that this key has signed, kept apart from the store.

With one validator nothing is released before block and QC are synced, so the consensus
records are the safety data; what they cannot survive is their own loss. A node whose data
directory was wiped (or restored from an old backup) would restart at a lower round and sign
different blocks at rounds it already signed: equivocation. So `safety.json` is created with the
key (`taihang init`), records the highest round the key certified (written after the commit
batch, every `SAFETY_INTERVAL_ROUNDS` rounds and at the first and last block), and the node
refuses to sign when its store is behind that record or the record is missing.
The Jolteon signing guard of the consensus issue replaces this with per-vote SafetyData.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from taihang.errors import ConfigurationError

SAFETY_FILE = "safety.json"
SAFETY_INTERVAL_ROUNDS = 100


def create_safety_record(home: Path) -> None:
    save_safety_record(home, 0)


def save_safety_record(home: Path, last_round: int) -> None:
    """Atomically and durably: temp file, fsync, rename, fsync the directory."""
    path = home / SAFETY_FILE
    temp = home / (SAFETY_FILE + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps({"version": 1, "last_round": last_round}).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    dir_fd = os.open(home, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_safety_record(home: Path) -> int:
    path = home / SAFETY_FILE
    try:
        data = json.loads(path.read_text())
        last_round = data["last_round"]
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path} is missing: this node cannot tell a first start from lost safety data, "
            "so it refuses to sign (restore the file, or re-create the node with a new key)"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise ConfigurationError(f"{path} is corrupted; refusing to sign") from None
    if not isinstance(last_round, int) or last_round < 0:
        raise ConfigurationError(f"{path} is corrupted; refusing to sign")
    return last_round


def validate_store_against_safety(home: Path, tip_round: int) -> int:
    """The recorded round; raise unless the store is at least as far as the key has signed."""
    last_round = load_safety_record(home)
    if tip_round < last_round:
        raise ConfigurationError(
            f"this node's key has certified up to round {last_round} but its store ends at "
            f"round {tip_round}: the data was lost or rolled back; signing again would "
            "equivocate, so the node refuses to start"
        )
    return last_round
