"""Python contracts from the SDK: deploy, invoke, query, list, upgrade, freeze.

    with Client(url) as client:
        contracts = Contracts(client, Account(client, KeySigner(keystore.load("alice"))))
        deployed = contracts.deploy("token", Path("token.py").read_text(), [1000])
        receipt = contracts.invoke("token", "transfer", [bob, 10]).receipt
        contracts.call("token", "balance_of", [bob])          # a @view, no transaction
        contracts.list()                                       # [ContractInfo, ...]

Every transacting method signs with the account, submits, waits for the commit and returns
the `TxStatus` (its `receipt` says `ok`, `reverted`, `out_of_gas`; a transaction the node
refuses at submission raises, as `Account.submit` does). `deploy` and `upgrade` compile the
source here first, with the chain's own compiler, and raise `ContractCompileError` (line,
column, reason) before anything is signed; `format_compile_error` prints it for people, with
the offending line and a caret. The lifecycle is the `contracts` system contract
(docs/contracts.md, "Lifecycle").
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass
from typing import Any, Final

from taihang.errors import InvalidInput, NotFound
from taihang.execution.contracts import ContractCompileError, compile_contract
from taihang.sdk.account import Account
from taihang.sdk.client import Client
from taihang.sdk.models import TxStatus

SYSTEM_CONTRACT: Final = "contracts"
DEPLOY_GAS_LIMIT: Final = 5_000_000  # compile and init; `taihang contract deploy|upgrade`
INVOKE_GAS_LIMIT: Final = 1_000_000  # the chain's default transaction gas limit
CONTROL_GAS_LIMIT: Final = 1_000_000  # freeze / unfreeze


class ContractNotFound(NotFound):
    code = "contract_not_found"


@dataclass(frozen=True, slots=True)
class ContractInfo:
    """A deployed contract's record as `contracts.get` / `contracts.list` answer it."""

    name: str
    version: str
    source_hash: str  # hex sha256 of the source
    deployer: str
    org: str
    frozen: bool

    @classmethod
    def from_value(cls, value: Any) -> ContractInfo:
        if not isinstance(value, dict):
            raise InvalidInput(f"not a contract record: {value!r}")
        digest = value.get("source_hash", b"")
        return cls(
            name=str(value["name"]),
            version=str(value["version"]),
            source_hash=digest.hex() if isinstance(digest, bytes) else str(digest),
            deployer=str(value["deployer"]),
            org=str(value["org"]),
            frozen=bool(value["frozen"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source_hash": self.source_hash,
            "deployer": self.deployer,
            "org": self.org,
            "frozen": self.frozen,
        }


class Contracts:
    """Contract lifecycle and calls over a node's API; `account` signs (queries need none)."""

    def __init__(self, client: Client, account: Account | None = None) -> None:
        self.client = client
        self.account = account

    # --- transactions ---------------------------------------------------------------------
    def deploy(
        self,
        name: str,
        source: str,
        args: list[Any] | None = None,
        *,
        version: str = "1",
        gas_limit: int = DEPLOY_GAS_LIMIT,
    ) -> TxStatus:
        """Check `source` locally, then deploy it as `name` running `init(*args)`."""
        check_source(source)
        return self._send(SYSTEM_CONTRACT, "deploy", [name, source, version, args or []], gas_limit)

    def upgrade(
        self,
        name: str,
        source: str,
        *,
        version: str | None = None,
        gas_limit: int = DEPLOY_GAS_LIMIT,
    ) -> TxStatus:
        """Replace `name`'s code, state kept; `version` defaults to the current one plus 1."""
        check_source(source)
        label = version if version is not None else compute_next_version(self.get(name).version)
        return self._send(SYSTEM_CONTRACT, "upgrade", [name, source, label], gas_limit)

    def freeze(self, name: str, *, gas_limit: int = CONTROL_GAS_LIMIT) -> TxStatus:
        return self._send(SYSTEM_CONTRACT, "freeze", [name], gas_limit)

    def unfreeze(self, name: str, *, gas_limit: int = CONTROL_GAS_LIMIT) -> TxStatus:
        return self._send(SYSTEM_CONTRACT, "unfreeze", [name], gas_limit)

    def invoke(
        self,
        name: str,
        method: str,
        args: list[Any] | None = None,
        *,
        gas_limit: int = INVOKE_GAS_LIMIT,
    ) -> TxStatus:
        """Call a `@public` method in a transaction."""
        return self._send(name, method, args or [], gas_limit)

    # --- queries ----------------------------------------------------------------------------
    def call(self, name: str, method: str, args: list[Any] | None = None) -> Any:
        """Answer a `@view` without a transaction; a failing view raises `ContractReverted`."""
        return self.client.query(name, method, args or [])

    def find(self, name: str) -> ContractInfo | None:
        record = self.client.query(SYSTEM_CONTRACT, "get", [name])
        return None if record is None else ContractInfo.from_value(record)

    def get(self, name: str) -> ContractInfo:
        info = self.find(name)
        if info is None:
            raise ContractNotFound(f"no contract named {name!r}")
        return info

    def list(self) -> builtins.list[ContractInfo]:
        """Every deployed contract, in name order."""
        records = self.client.query(SYSTEM_CONTRACT, "list", [])
        return [ContractInfo.from_value(r) for r in records]

    def get_source(self, name: str) -> str:
        """The deployed source, read from the `contracts` namespace of the state."""
        record = self.client.get_state(SYSTEM_CONTRACT, f"contract/{name}").value
        if not isinstance(record, dict) or not isinstance(record.get("source"), str):
            raise ContractNotFound(f"no contract named {name!r}")
        source: str = record["source"]
        return source

    def _send(
        self, contract: str, method: str, args: builtins.list[Any], gas_limit: int
    ) -> TxStatus:
        if self.account is None:
            raise InvalidInput("a transaction needs an account to sign it", code="no_account")
        tx_id = self.account.submit(contract, method, args, gas_limit=gas_limit)
        return self.client.wait_for_receipt(tx_id)


def check_source(source: str) -> None:
    """Compile `source` as every node would; raises `ContractCompileError`."""
    compile_contract(source)


def compute_next_version(version: str) -> str:
    """ "7" -> "8"; a label that is not a whole number needs an explicit version."""
    if not version.isdecimal():
        raise InvalidInput(
            f"version {version!r} is not a number; give the new version explicitly",
            code="invalid_version",
        )
    return str(int(version) + 1)


def find_error_column(error: ContractCompileError, source: str) -> int | None:
    """The error's 0-based column: the checker's, or the parser's for a syntax error."""
    if error.column is not None:
        return error.column
    try:
        ast.parse(source, feature_version=(3, 11))
    except SyntaxError as exc:
        if exc.lineno == error.line and exc.offset is not None:
            return max(exc.offset - 1, 0)
    except (ValueError, RecursionError, MemoryError):
        return None
    return None


def format_compile_error(error: ContractCompileError, source: str, filename: str) -> str:
    """`file:line:col: reason`, then the offending line and a caret under the column."""
    column = find_error_column(error, source)
    lines = source.splitlines()
    where = f"{filename}:{error.line}" + (f":{column + 1}" if column is not None else "")
    detail = f" ({error.detail})" if error.detail else ""
    out = [f"{where}: {error.reason}{detail}"]
    if 1 <= error.line <= len(lines):
        text = lines[error.line - 1].rstrip()
        out.append(f"    {text}")
        if column is not None:  # keep the line's tabs so the caret lines up under them
            indent = "".join("\t" if c == "\t" else " " for c in text[:column])
            out.append(f"    {indent}^")
    return "\n".join(out)
