"""`taihang events tail`: follow a node's event stream as JSON lines, through the SDK.

Each line is `{"id", "type", "height", ...data}`. A block's own `id` would collide with the
stream id, so block lines carry it as `block_id`. Heavy imports happen inside the command,
as in `main.py`, so `taihang --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from taihang.sdk.events import StreamItem

DEFAULT_HOME = Path(".taihang")


def register(app: typer.Typer) -> None:
    """Add the `events` group with its `tail` command to the `taihang` app."""
    events_app = typer.Typer(help="Follow blocks, receipts and contract events.")
    events_app.command("tail")(tail)
    app.add_typer(events_app, name="events")


def tail(
    home: Annotated[Path, typer.Option("--home", help="The network directory.")] = DEFAULT_HOME,
    from_height: Annotated[
        int | None, typer.Option("--from-height", min=0, help="First height (default: live).")
    ] = None,
    types: Annotated[
        list[str] | None,
        typer.Option("--type", help="block, tx or event; repeat or comma-separate."),
    ] = None,
    contract: Annotated[str | None, typer.Option(help="Only this contract's txs/events.")] = None,
    event: Annotated[str | None, typer.Option(help="Only events with this name.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after N items.")] = None,
) -> None:
    """Print stream items as JSON lines until Ctrl-C (or `--limit` items)."""
    try:
        events_tail(home, from_height, types, contract, event, limit)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None  # Ctrl-C is how a tail ends, not a failure


def events_tail(
    home: Path,
    from_height: int | None,
    types: list[str] | None,
    contract: str | None,
    event: str | None,
    limit: int | None,
) -> int:
    """Print items of the first node's stream, one JSON object a line; return how many."""
    from taihang.cli.network import load_network
    from taihang.sdk.events import iter_events

    wanted = None if types is None else [t for text in types for t in text.split(",") if t]
    stream = iter_events(
        load_network(home).api,
        from_height=from_height,
        types=wanted,
        contract=contract,
        event=event,
    )
    printed = 0
    try:
        for item in stream:
            typer.echo(json.dumps(build_line(item)))
            printed += 1
            if limit is not None and printed >= limit:
                break
    finally:
        stream.close()  # closes the connection now, not at garbage collection
    return printed


def build_line(item: StreamItem) -> dict[str, Any]:
    data = dict(item.data)
    if "id" in data:
        data["block_id"] = data.pop("id")
    return {"id": item.id, "type": item.type, "height": item.height, **data}
