"""`taihang contract deploy|invoke|call`: Python contracts from scripts (docs/contracts.md).

The developer tools (`new`, `test`, `list`, `show`, `upgrade`, `freeze`, `unfreeze`) live in
`contract_tools` and share this module's helpers.

`deploy` and `invoke` sign with the network's development key (or `--key NAME`), never
prompt, wait for the receipt and print it as JSON: `status`, `gas_used`, `return_value`,
`events` and `error` (`{"code", "message"}` or null). A transaction the node refuses at
submission prints the same shape with status `rejected`. `call` prints a `@view`'s return
value. Exit codes: 0 when the receipt is ok (or the view answered), 2 when the transaction or
view failed, 1 when the command itself failed (bad arguments, no network, no node). Arguments
are one JSON list, values as in DESIGN.md section 4 (bytes as `{"$bytes": "<hex>"}`). `deploy`
compiles the source here first, with the chain's compiler, and refuses one that does not
compile (exit 1, nothing sent) with `file:line:col: reason`, the line and a caret.
Heavy imports happen inside the commands, as in `main.py`, so `taihang --help` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from taihang.cli.network import Network
    from taihang.sdk.contracts import Contracts
    from taihang.sdk.models import Receipt, TxStatus

DEFAULT_HOME = Path(".taihang")
DEPLOY_GAS_LIMIT = 5_000_000  # as taihang.sdk.contracts (not imported here: --help stays fast)
INVOKE_GAS_LIMIT = 1_000_000
EXIT_FAILED_TX = 2
EXIT_COMMAND = 1

HomeOption = Annotated[Path, typer.Option("--home", help="The network directory.")]
ArgsOption = Annotated[
    str, typer.Option("--args", help='Arguments as a JSON list, bytes as {"$bytes": "<hex>"}.')
]
KeyOption = Annotated[
    str | None, typer.Option("--key", help="Key of the network directory that signs.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (the only format).")]


def register(app: typer.Typer) -> None:
    """Add the `contract` group to the `taihang` app."""
    from taihang.cli import contract_tools

    contract_app = typer.Typer(
        help="Write, test, deploy, invoke, query and manage Python contracts.",
        no_args_is_help=True,
    )
    contract_app.command("new")(contract_tools.new)
    contract_app.command("test")(contract_tools.run_tests)
    contract_app.command("deploy")(deploy)
    contract_app.command("invoke")(invoke)
    contract_app.command("call")(call)
    contract_app.command("list")(contract_tools.list_contracts)
    contract_app.command("show")(contract_tools.show)
    contract_app.command("upgrade")(contract_tools.upgrade)
    contract_app.command("freeze")(contract_tools.freeze)
    contract_app.command("unfreeze")(contract_tools.unfreeze)
    app.add_typer(contract_app, name="contract")


def deploy(
    file: Annotated[Path, typer.Argument(help="The contract's source file.")],
    name: Annotated[str, typer.Option("--name", help="The contract's name.")],
    args: ArgsOption = "[]",
    version: Annotated[str, typer.Option(help="Version label.")] = "1",
    home: HomeOption = DEFAULT_HOME,
    key: KeyOption = None,
    gas_limit: Annotated[int, typer.Option(help="Gas for compile and init.")] = DEPLOY_GAS_LIMIT,
    as_json: JsonOption = True,
) -> None:
    """Deploy FILE as contract NAME, running its `init` with --args."""
    source = read_source(file)
    values = _parse(args)
    transact(
        home, key, lambda c: c.deploy(name, source, values, version=version, gas_limit=gas_limit)
    )


def invoke(
    name: Annotated[str, typer.Argument(help="The contract.")],
    method: Annotated[str, typer.Argument(help="A @public method.")],
    args: ArgsOption = "[]",
    home: HomeOption = DEFAULT_HOME,
    key: KeyOption = None,
    gas_limit: Annotated[int, typer.Option(help="The transaction's gas limit.")] = INVOKE_GAS_LIMIT,
    as_json: JsonOption = True,
) -> None:
    """Send a transaction calling METHOD of contract NAME and print its receipt."""
    values = _parse(args)
    transact(home, key, lambda c: c.invoke(name, method, values, gas_limit=gas_limit))


def call(
    name: Annotated[str, typer.Argument(help="The contract.")],
    method: Annotated[str, typer.Argument(help="A @view method.")],
    args: ArgsOption = "[]",
    home: HomeOption = DEFAULT_HOME,
    as_json: JsonOption = True,
) -> None:
    """Query a @view of contract NAME without a transaction; print its return value."""
    from taihang.codec import value_to_json
    from taihang.errors import ContractError, InvalidInput, TaihangError
    from taihang.sdk.client import Client

    values = _parse(args)
    network = load(home)
    try:
        with Client(network.api) as client:
            result = client.query(name, method, values)
    except (ContractError, InvalidInput) as exc:
        echo({"error": {"code": exc.code, "message": exc.message}})
        raise typer.Exit(EXIT_FAILED_TX) from None
    except TaihangError as exc:
        fail(exc.message)
    echo(value_to_json(result))


def _parse(text: str) -> list[Any]:
    from taihang.codec import value_from_json
    from taihang.errors import DecodeError

    try:
        data = json.loads(text)
    except ValueError as exc:
        fail(f"--args is not JSON: {exc}")
    if not isinstance(data, list):
        fail("--args must be a JSON list")
    try:
        values = value_from_json(data)
    except DecodeError as exc:
        fail(f"--args: {exc.message}")
    assert isinstance(values, list)
    return values


def read_source(file: Path) -> str:
    """The contract source in `file`, checked with the chain's compiler; exit 1 if not."""
    from taihang.execution.contracts import ContractCompileError
    from taihang.sdk.contracts import check_source, format_compile_error

    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}")
    try:
        check_source(source)
    except ContractCompileError as exc:
        fail(f"contract does not compile\n{format_compile_error(exc, source, str(file))}")
    return source


def load(home: Path) -> Network:
    from taihang.cli.network import load_network
    from taihang.errors import TaihangError

    try:
        return load_network(home)
    except TaihangError as exc:
        fail(exc.message)


def transact(home: Path, key: str | None, action: Callable[[Contracts], TxStatus]) -> None:
    """Run `action` with the signing `Contracts` of the network; print the receipt and exit."""
    from taihang.cli.network import DEV_KEY_NAME
    from taihang.cli.txs import load_signer
    from taihang.errors import ContractError, InvalidInput, TaihangError
    from taihang.sdk.account import Account
    from taihang.sdk.client import Client
    from taihang.sdk.contracts import Contracts

    network = load(home)
    try:
        signer = load_signer(network, key or DEV_KEY_NAME)
        with Client(network.api) as client:
            contracts = Contracts(client, Account(client, signer))
            try:
                committed = action(contracts)
            except (ContractError, InvalidInput) as exc:  # refused at submission
                echo(_rejected(exc.code, exc.message))
                raise typer.Exit(EXIT_FAILED_TX) from None
    except TaihangError as exc:
        fail(exc.message)
    receipt = committed.receipt
    assert receipt is not None
    echo(receipt_json(receipt, tx_id=committed.id, height=committed.height))
    if receipt.status != "ok":
        raise typer.Exit(EXIT_FAILED_TX)


def receipt_json(receipt: Receipt, *, tx_id: str, height: int | None) -> dict[str, Any]:
    """The receipt as the contract commands print it."""
    from taihang.codec import value_to_json

    error = None
    if receipt.status != "ok":
        error = {"code": receipt.status, "message": receipt.error_message}
    return {
        "tx_id": tx_id,
        "height": height,
        "status": receipt.status,
        "gas_used": receipt.gas_used,
        "return_value": value_to_json(receipt.return_value),
        "events": [
            {"contract": e.contract, "name": e.name, "data": value_to_json(e.data)}
            for e in receipt.events
        ],
        "error": error,
    }


def _rejected(code: str, message: str) -> dict[str, Any]:
    return {
        "tx_id": None,
        "height": None,
        "status": "rejected",
        "gas_used": 0,
        "return_value": None,
        "events": [],
        "error": {"code": code, "message": message},
    }


def echo(data: Any) -> None:
    typer.echo(json.dumps(data, sort_keys=True))


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_COMMAND)
