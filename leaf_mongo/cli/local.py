"""``leaf-mongo local status`` and ``leaf-mongo local stop``: the local store's data folder and server."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from leaf_mongo.cli.app import app
from leaf_mongo.cli.common import DebugOpt, out, run_command
from leaf_mongo.connection import local_store_folder
from leaf_mongo.local import status, stop
from leaf_mongo.settings import load_settings

local_app = typer.Typer(help="The local store (the default when no LEAF_MONGO_URI is set): status, stop.")
app.add_typer(local_app, name="local")

PathOpt = typer.Option(
    None,
    "--path",
    help="Data folder (default: LEAF_MONGO_URI=local:FOLDER, else LEAF_MONGO_LOCAL_PATH, else the per-user folder)",
    show_default=False,
)


@local_app.command("status")
@run_command
def status_command(
    path: Path | None = PathOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object"),
    debug: bool = DebugOpt,
) -> None:
    """The data folder, the server's pid and mongodb:// URI (for mongosh, Compass, pymongo), the collections.

    Exit codes: 0 (also when no store exists yet: it says so), 3 when the folder cannot be read.
    """
    folder = path or local_store_folder(load_settings())
    info = status(folder)
    if as_json:
        typer.echo(json.dumps(info if info is not None else {"path": str(folder), "running": False}, indent=2))
        return
    if info is None:
        out.print(f"no local store in {folder} yet: the first ingest creates it")
        return
    server = f"running, pid {info['pid']}, {info['uri']}" if info["running"] else "not running (starts on demand)"
    if info["users"]:
        server += f", authenticating the users of {info['users']}"
    if info["test_commands"]:
        server += ", test commands enabled"
    out.print(f"local store {info['path']}: {server}; {info['disk_bytes'] / 1e6:.1f} MB on disk", highlight=False)
    if info["collections"]:
        out.print(_table(info["collections"]))


def _table(collections: list[dict]) -> Table:
    table = Table(title_justify="left")
    for column in ("collection", "documents", "data MB", "search indexes"):
        table.add_column(column, justify="right" if column in ("documents", "data MB") else "left")
    for c in collections:
        indexes = ", ".join(f"{s['name']} ({s['type']})" for s in c["search_indexes"])
        table.add_row(f"{c['database']}.{c['name']}", str(c["documents"]), f"{c['data_bytes'] / 1e6:.1f}", indexes)
    return table


@local_app.command("stop")
@run_command
def stop_command(path: Path | None = PathOpt, debug: bool = DebugOpt) -> None:
    """Stop the folder's server (it finishes the command in flight and checkpoints); the next use restarts it."""
    folder = path or local_store_folder(load_settings())
    if stop(folder):
        out.print(f"stopped the local store server of {folder}")
    else:
        out.print(f"no local store server was running for {folder}")
