"""`taihang contract deploy|invoke|call`: Python contracts from scripts (docs/contracts.md).

`deploy` and `invoke` sign with the network's development key (or `--key NAME`), never
prompt, wait for the receipt and print it as JSON: `status`, `gas_used`, `return_value`,
`events` and `error` (`{"code", "message"}` or null). A transaction the node refuses at
submission prints the same shape with status `rejected`. `call` prints a `@view`'s return
value. Exit codes: 0 when the receipt is ok (or the view answered), 2 when the transaction or
view failed, 1 when the command itself failed (bad arguments, no network, no node). Arguments
are one JSON list, values as in DESIGN.md section 4 (bytes as `{"$bytes": "<hex>"}`).
Heavy imports happen inside the commands, as in `main.py`, so `taihang --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from taihang.cli.network import Network
    from taihang.sdk.models import Receipt

DEFAULT_HOME = Path(".taihang")
DEPLOY_GAS_LIMIT = 5_000_000
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
    contract_app = typer.Typer(help="Deploy, invoke and query Python contracts.")
    contract_app.command("deploy")(deploy)
    contract_app.command("invoke")(invoke)
    contract_app.command("call")(call)
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
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {file}: {exc}")
    _send(home, key, "contracts", "deploy", [name, source, version, _parse(args)], gas_limit)


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
    _send(home, key, name, method, _parse(args), gas_limit)


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
    network = _load(home)
    try:
        with Client(network.api) as client:
            result = client.query(name, method, values)
    except (ContractError, InvalidInput) as exc:
        _echo({"error": {"code": exc.code, "message": exc.message}})
        raise typer.Exit(EXIT_FAILED_TX) from None
    except TaihangError as exc:
        _fail(exc.message)
    _echo(value_to_json(result))


def _parse(text: str) -> list[Any]:
    from taihang.codec import value_from_json
    from taihang.errors import DecodeError

    try:
        data = json.loads(text)
    except ValueError as exc:
        _fail(f"--args is not JSON: {exc}")
    if not isinstance(data, list):
        _fail("--args must be a JSON list")
    try:
        values = value_from_json(data)
    except DecodeError as exc:
        _fail(f"--args: {exc.message}")
    assert isinstance(values, list)
    return values


def _load(home: Path) -> Network:
    from taihang.cli.network import load_network
    from taihang.errors import TaihangError

    try:
        return load_network(home)
    except TaihangError as exc:
        _fail(exc.message)


def _send(
    home: Path, key: str | None, contract: str, method: str, args: list[Any], gas_limit: int
) -> None:
    from taihang.cli.network import DEV_KEY_NAME
    from taihang.cli.txs import load_signer
    from taihang.errors import ContractError, InvalidInput, TaihangError
    from taihang.sdk.account import Account
    from taihang.sdk.client import Client

    network = _load(home)
    try:
        signer = load_signer(network, key or DEV_KEY_NAME)
        with Client(network.api) as client:
            account = Account(client, signer)
            try:
                tx_id = account.submit(contract, method, args, gas_limit=gas_limit)
            except (ContractError, InvalidInput) as exc:
                _echo(_rejected(exc.code, exc.message))
                raise typer.Exit(EXIT_FAILED_TX) from None
            committed = client.wait_for_receipt(tx_id)
    except TaihangError as exc:
        _fail(exc.message)
    receipt = committed.receipt
    assert receipt is not None
    _echo(receipt_json(receipt, tx_id=tx_id, height=committed.height))
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


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, sort_keys=True))


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_COMMAND)
