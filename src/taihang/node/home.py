"""The node home directory: config, genesis, keys, data and the exclusive lock.

Two processes must never run one node (that is how double signing happens), so the home is
locked with `flock` for the life of the process; a second start fails at once and says so.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from taihang.errors import ConfigurationError
from taihang.ledger.genesis import Genesis, load_genesis_json
from taihang.node.config import NodeConfig, load_config

CONFIG_FILE = "config.toml"
LOCK_FILE = "node.lock"
PID_FILE = "node.pid"
LOG_FILE = "node.log"


@dataclass
class NodeHome:
    path: Path

    def __post_init__(self) -> None:
        self.path = self.path.resolve()
        self._lock_fd: int | None = None

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    def load_config(self) -> NodeConfig:
        if not self.path.is_dir():
            raise ConfigurationError(f"node home {self.path} does not exist")
        return load_config(self.config_path)

    def load_genesis(self, config: NodeConfig) -> Genesis:
        path = self.path / config.genesis_file
        try:
            return load_genesis_json(path.read_bytes())
        except FileNotFoundError:
            raise ConfigurationError(f"no genesis file at {path}") from None

    def data_path(self, config: NodeConfig) -> Path:
        return self.path / config.data_dir

    def acquire_lock(self) -> None:
        """Take the exclusive lock or raise `ConfigurationError` naming the holder."""
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigurationError(
                f"node home {self.path} is locked by pid {holder}: is the node already running?"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        os.fsync(fd)
        self._lock_fd = fd
        (self.path / PID_FILE).write_text(str(os.getpid()))

    def release_lock(self) -> None:
        if self._lock_fd is not None:
            (self.path / PID_FILE).unlink(missing_ok=True)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None


def find_running_pid(home: Path) -> int | None:
    """The pid holding the node's lock, or None when the node is not running."""
    lock = home / LOCK_FILE
    if not lock.exists():
        return None
    fd = os.open(lock, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
