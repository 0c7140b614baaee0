"""Test Python contracts locally: the in-memory ledger that `taihang contract test` runs on.

Theory of operation. A `Ledger` is a one-channel chain without a network: a genesis with test
accounts (`alice` and `bob` in org1, `carol` and `dave` in org2, each a registered member with
a fixed, public test key), a dict of state, and the node's own `Executor`. Every transaction
is really built, signed, decoded and signature-checked as a node admits it, then executed as a
block of its own (height + 1, timestamp + 1 s), and its write set is applied; views go through
the same query path as `POST /api/v1/query`. So a contract meets the chain's compiler, gas
schedule, limits and lifecycle rules here, and its gas here is its gas there.

    from taihang.sdk.contract_testing import Ledger

    def test_transfer(ledger: Ledger) -> None:
        token = ledger.deploy("token.py", args=[1000])          # as alice, next to this file
        bob = ledger.address("bob")
        receipt = token.transact("transfer", bob, 10)           # raises if not ok
        assert receipt.gas_used > 0
        assert token.call("balance_of", bob) == 10
        with ledger.reverts("insufficient balance"):
            token.transact("transfer", bob, 10**6, sender="carol")

`taihang.sdk.contract_test_runner.run_test_file(path)` runs every `test_*` function of a plain
Python file, each with a fresh `Ledger` whose paths are relative to the file, and reports each
call with its gas and each test's outcome; plain `assert a == b` failures show both values. A
contract that does not compile is an `error` (the command failed), not a test failure.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from taihang.codec import Value, decode_value
from taihang.crypto import get_suite
from taihang.errors import ContractError, InvalidInput
from taihang.execution import BlockContext, Executor, build_genesis_writes, execute_query
from taihang.execution.contracts import ContractCompileError
from taihang.execution.executor import get_account_nonce
from taihang.execution.state import state_key
from taihang.ledger.genesis import Genesis, MemberSpec, OrgSpec, ValidatorSpec
from taihang.ledger.receipt import Receipt
from taihang.ledger.transaction import (
    decode_transaction,
    validate_transaction_context,
    verify_transaction_signature,
)
from taihang.sdk.contracts import (
    DEPLOY_GAS_LIMIT,
    INVOKE_GAS_LIMIT,
    SYSTEM_CONTRACT,
    ContractInfo,
    ContractNotFound,
    check_source,
    compute_next_version,
    format_compile_error,
)
from taihang.sdk.signer import KeySigner
from taihang.sdk.tx import sign_tx

DEFAULT_ACCOUNTS: Final[Mapping[str, str]] = {
    "alice": "org1",
    "bob": "org1",
    "carol": "org2",
    "dave": "org2",
}
DEFAULT_SENDER: Final = "alice"
CHANNEL: Final = "test"
BLOCK_INTERVAL_MS: Final = 1_000
EXPIRY_BLOCKS: Final = 100


# --- values -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LocalAccount:
    """A test account: a member of `org` with a fixed (public, test-only) key."""

    name: str
    org: str
    address: str
    signer: KeySigner


@dataclass(frozen=True, slots=True)
class Event:
    contract: str
    name: str
    data: Value


@dataclass(frozen=True, slots=True)
class TxResult:
    """A transaction's receipt, decoded: `status` is ok, reverted, out_of_gas or rejected."""

    tx_id: str
    height: int
    status: str
    gas_used: int
    return_value: Value
    events: tuple[Event, ...]
    error: str  # the receipt's error message; "" when ok

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call a test made, for the report: a transaction (with gas) or a view."""

    kind: Literal["transaction", "view"]
    contract: str
    method: str
    args: tuple[Value, ...]
    sender: str | None  # the test account's name; None for a view
    status: str  # a receipt status, or "ok" / "failed" for a view
    gas_used: int | None  # None for a view (queries have no receipt)
    error: str
    return_value: Value


class TransactionFailed(AssertionError):
    """A transaction's receipt is not `ok`; `result` is the receipt."""

    def __init__(self, method: str, result: TxResult) -> None:
        super().__init__(f"{method} {result.status}: {result.error}")
        self.result = result


class CallFailed(AssertionError):
    """A view failed (reverted, no such method, out of gas); `message` is the node's text."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method} failed: {message}")
        self.message = message


class ContractSourceRejected(InvalidInput):
    """A contract file does not compile; the message is `file:line:col: reason` + caret."""

    code = "contract_rejected"

    def __init__(self, error: ContractCompileError, source: str, filename: str) -> None:
        super().__init__(format_compile_error(error, source, filename))
        self.error = error
        self.filename = filename


class Expectation:
    """What `Ledger.reverts` caught: the failure, once the block has ended."""

    def __init__(self) -> None:
        self.failure: TransactionFailed | CallFailed | None = None

    @property
    def message(self) -> str:
        if isinstance(self.failure, TransactionFailed):
            return self.failure.result.error
        return "" if self.failure is None else self.failure.message


# --- the ledger -----------------------------------------------------------------------------
class Ledger:
    """An in-memory chain with the node's executor; see the module docstring."""

    def __init__(
        self,
        *,
        accounts: Mapping[str, str] | None = None,
        base_dir: Path | str | None = None,
        crypto: str = "ed25519",
        on_call: Callable[[CallRecord], None] | None = None,
    ) -> None:
        self.suite = get_suite(crypto)
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self.accounts = {
            name: _make_account(name, org, crypto)
            for name, org in (accounts or DEFAULT_ACCOUNTS).items()
        }
        self.genesis = _build_genesis(crypto, self.accounts.values())
        self.data: dict[bytes, bytes] = dict(build_genesis_writes(self.genesis))
        self.executor = Executor(self.suite)
        self.height = 0  # of the last block
        self.timestamp_ms = self.genesis.timestamp_ms
        self.calls: list[CallRecord] = []
        self.on_call = on_call

    # StateReader, for the executor.
    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def scan(self, prefix: bytes, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        keys = sorted(k for k in self.data if k.startswith(prefix) and (after is None or k > after))
        return [(k, self.data[k]) for k in keys[:limit]]

    # --- accounts and time -------------------------------------------------------------------
    def address(self, name: str) -> str:
        return self.get_account(name).address

    def get_account(self, name: str) -> LocalAccount:
        account = self.accounts.get(name)
        if account is None:
            known = ", ".join(sorted(self.accounts))
            raise InvalidInput(f"no test account {name!r} (the accounts are {known})")
        return account

    def find_account_name(self, address: str) -> str | None:
        return next((a.name for a in self.accounts.values() if a.address == address), None)

    def advance(self, blocks: int = 1, *, ms: int | None = None) -> None:
        """Let `blocks` empty blocks pass (each `ms` later; default one second)."""
        if blocks < 0:
            raise InvalidInput("blocks must be >= 0")
        for _ in range(blocks):
            self.height += 1
            self.timestamp_ms += BLOCK_INTERVAL_MS if ms is None else ms

    # --- contracts -------------------------------------------------------------------------
    def deploy(
        self,
        file: Path | str,
        *,
        name: str | None = None,
        args: Sequence[Value] = (),
        sender: str = DEFAULT_SENDER,
        version: str = "1",
        gas_limit: int = DEPLOY_GAS_LIMIT,
    ) -> DeployedContract:
        """Deploy a contract file (relative to `base_dir`) as `name` (default: its stem)."""
        path = self._resolve(file)
        source = read_source(path)
        return self.deploy_source(
            source,
            name=name or path.stem,
            args=args,
            sender=sender,
            version=version,
            gas_limit=gas_limit,
            filename=str(path),
        )

    def deploy_source(
        self,
        source: str,
        *,
        name: str,
        args: Sequence[Value] = (),
        sender: str = DEFAULT_SENDER,
        version: str = "1",
        gas_limit: int = DEPLOY_GAS_LIMIT,
        filename: str = "<source>",
        check: bool = True,
    ) -> DeployedContract:
        """Deploy `source`; `check=False` sends even a source that does not compile."""
        if check:
            check_source_file(source, filename)
        self._send(
            SYSTEM_CONTRACT, "deploy", [name, source, version, list(args)], sender, gas_limit
        )
        return DeployedContract(self, name)

    def upgrade(
        self,
        name: str,
        file: Path | str,
        *,
        version: str | None = None,
        sender: str = DEFAULT_SENDER,
        gas_limit: int = DEPLOY_GAS_LIMIT,
    ) -> TxResult:
        """Replace `name`'s code with a file's (state kept); version defaults to current + 1."""
        path = self._resolve(file)
        source = read_source(path)
        check_source_file(source, str(path))
        label = version if version is not None else compute_next_version(self.info(name).version)
        return self._send(SYSTEM_CONTRACT, "upgrade", [name, source, label], sender, gas_limit)

    def freeze(self, name: str, *, sender: str = DEFAULT_SENDER) -> TxResult:
        return self._send(SYSTEM_CONTRACT, "freeze", [name], sender, INVOKE_GAS_LIMIT)

    def unfreeze(self, name: str, *, sender: str = DEFAULT_SENDER) -> TxResult:
        return self._send(SYSTEM_CONTRACT, "unfreeze", [name], sender, INVOKE_GAS_LIMIT)

    def contract(self, name: str) -> DeployedContract:
        self.info(name)  # raises when there is none
        return DeployedContract(self, name)

    def info(self, name: str) -> ContractInfo:
        record = self._query(SYSTEM_CONTRACT, "get", [name])
        if record is None:
            raise ContractNotFound(f"no contract named {name!r}")
        return ContractInfo.from_value(record)

    def list(self) -> builtins.list[ContractInfo]:
        return [ContractInfo.from_value(r) for r in self._query(SYSTEM_CONTRACT, "list", [])]

    def storage(self, contract: str, key: str) -> Value:
        """A raw read of a contract's storage (None when absent), for assertions."""
        raw = self.data.get(state_key(contract, key))
        return None if raw is None else decode_value(raw)

    # --- calls -------------------------------------------------------------------------------
    def transact(
        self,
        contract: str,
        method: str,
        *args: Value,
        sender: str = DEFAULT_SENDER,
        gas_limit: int = INVOKE_GAS_LIMIT,
    ) -> TxResult:
        """Send a transaction; raises `TransactionFailed` unless its receipt is ok."""
        return self._send(contract, method, list(args), sender, gas_limit)

    def try_transact(
        self,
        contract: str,
        method: str,
        *args: Value,
        sender: str = DEFAULT_SENDER,
        gas_limit: int = INVOKE_GAS_LIMIT,
    ) -> TxResult:
        """Send a transaction and return its receipt, whatever its status."""
        try:
            return self._send(contract, method, list(args), sender, gas_limit)
        except TransactionFailed as exc:
            return exc.result

    def call(self, contract: str, method: str, *args: Value) -> Value:
        """Answer a `@view`; raises `CallFailed` when it fails."""
        try:
            value = self._query(contract, method, list(args))
        except ContractError as exc:
            self._record(CallRecord("view", contract, method, args, None, "failed", None, "", None))
            raise CallFailed(method, exc.message) from None
        self._record(CallRecord("view", contract, method, args, None, "ok", None, "", value))
        return value

    @contextmanager
    def reverts(
        self, match: str | None = None, *, status: str = "reverted"
    ) -> Iterator[Expectation]:
        """Expect the block to fail a transaction with `status` (or a view), the error
        message containing `match`; anything else fails the test."""
        expectation = Expectation()
        try:
            yield expectation
        except (TransactionFailed, CallFailed) as exc:
            expectation.failure = exc
        else:
            raise AssertionError(f"expected a failure{_matching(match)}, but nothing failed")
        got = expectation.failure
        if isinstance(got, TransactionFailed) and got.result.status != status:
            raise AssertionError(f"expected {status}, got {got.result.status}: {got.result.error}")
        if match is not None and match not in expectation.message:
            raise AssertionError(f"expected an error containing {match!r}, got {got}")

    # --- internals ---------------------------------------------------------------------------
    def _resolve(self, file: Path | str) -> Path:
        path = Path(file)
        return path if path.is_absolute() else self.base_dir / path

    def _query(self, contract: str, method: str, args: builtins.list[Value]) -> Value:
        return execute_query(self.executor, self, contract, method, args)

    def _send(
        self, contract: str, method: str, args: builtins.list[Value], sender: str, gas_limit: int
    ) -> TxResult:
        account = self.get_account(sender)
        next_height = self.height + 1
        raw = sign_tx(
            account.signer,
            channel=CHANNEL,
            nonce=get_account_nonce(self, account.address),
            contract=contract,
            method=method,
            args=args,
            expires_at_height=next_height + EXPIRY_BLOCKS,
            gas_limit=gas_limit,
        )
        tx = decode_transaction(raw, self.suite)  # what a node checks at admission
        verify_transaction_signature(tx, self.suite)
        validate_transaction_context(tx, CHANNEL, next_height)
        block = BlockContext(CHANNEL, next_height, self.timestamp_ms + BLOCK_INTERVAL_MS)
        executed = self.executor.execute_block(self, block, [tx])
        for key, value in executed.writes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        self.height, self.timestamp_ms = block.height, block.timestamp_ms
        result = _decode_receipt(executed.receipts[0], block.height)
        self._record(
            CallRecord(
                "transaction",
                contract,
                method,
                tuple(args),
                sender,
                result.status,
                result.gas_used,
                result.error,
                result.return_value,
            )
        )
        if not result.ok:
            raise TransactionFailed(method, result)
        return result

    def _record(self, record: CallRecord) -> None:
        self.calls.append(record)
        if self.on_call is not None:
            self.on_call(record)


class DeployedContract:
    """A contract on a `Ledger`, by name: `transact`, `try_transact`, `call`, `info`."""

    def __init__(self, ledger: Ledger, name: str) -> None:
        self.ledger = ledger
        self.name = name

    def transact(
        self,
        method: str,
        *args: Value,
        sender: str = DEFAULT_SENDER,
        gas_limit: int = INVOKE_GAS_LIMIT,
    ) -> TxResult:
        return self.ledger.transact(self.name, method, *args, sender=sender, gas_limit=gas_limit)

    def try_transact(
        self,
        method: str,
        *args: Value,
        sender: str = DEFAULT_SENDER,
        gas_limit: int = INVOKE_GAS_LIMIT,
    ) -> TxResult:
        return self.ledger.try_transact(
            self.name, method, *args, sender=sender, gas_limit=gas_limit
        )

    def call(self, method: str, *args: Value) -> Value:
        return self.ledger.call(self.name, method, *args)

    def info(self) -> ContractInfo:
        return self.ledger.info(self.name)

    def storage(self, key: str) -> Value:
        return self.ledger.storage(self.name, key)

    def __repr__(self) -> str:
        return f"DeployedContract({self.name!r})"


def compute_test_seed(name: str) -> bytes:
    """The seed of test account `name`: public, so never use these keys on a real network."""
    return hashlib.sha256(b"taihang contract test account:" + name.encode()).digest()


def compute_test_address(name: str, crypto: str = "ed25519") -> str:
    """The address of test account `name` on every `Ledger`."""
    return KeySigner.from_seed(compute_test_seed(name), crypto).address


def _make_account(name: str, org: str, crypto: str) -> LocalAccount:
    signer = KeySigner.from_seed(compute_test_seed(name), crypto, name)
    return LocalAccount(name=name, org=org, address=signer.address, signer=signer)


def _build_genesis(crypto: str, accounts: Iterable[LocalAccount]) -> Genesis:
    members = [
        MemberSpec(public_key=a.signer.public_key.hex(), org=a.org, roles=["admin", "member"])
        for a in accounts
    ]
    orgs = sorted({m.org for m in members} | {"org1"})
    validator = KeySigner.from_seed(compute_test_seed("validator"), crypto)
    return Genesis(
        protocol_version=1,
        channel=CHANNEL,
        crypto=crypto,
        timestamp_ms=0,
        orgs=[OrgSpec(id=org, name=org, ca_cert_pem="") for org in orgs],
        validators=[ValidatorSpec(name="v1", org="org1", public_key=validator.public_key.hex())],
        members=members,
    )


def _decode_receipt(receipt: Receipt, height: int) -> TxResult:
    events = tuple(Event(e.contract, e.name, decode_value(bytes(e.data))) for e in receipt.events)
    return TxResult(
        tx_id=receipt.tx_id.hex(),
        height=height,
        status=receipt.status,
        gas_used=receipt.gas_used,
        return_value=receipt.decoded_return_value(),
        events=events,
        error=receipt.error_message,
    )


def read_source(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}", code="unreadable_file") from None


def check_source_file(source: str, filename: str) -> None:
    try:
        check_source(source)
    except ContractCompileError as exc:
        raise ContractSourceRejected(exc, source, filename) from None


def _matching(match: str | None) -> str:
    return "" if match is None else f" containing {match!r}"
