"""``leaf-mongo copy --from local --to mongodb://...``: a collection to another deployment, no re-embedding."""

from __future__ import annotations

import json
from typing import Any

import typer
from pydantic import SecretStr

from leaf_mongo.cli.app import app
from leaf_mongo.cli.common import DebugOpt, console, out, run_command
from leaf_mongo.connection import resolve_uri
from leaf_mongo.settings import LeafMongoSettings, load_settings

ENDPOINT_HELP = "'local' (the per-user local store), 'local:PATH' (a local store folder) or a mongodb:// URI"


def endpoint_uri(text: str) -> str:
    """A ``--from``/``--to`` value as a URI, resolved as ``LEAF_MONGO_URI`` is: a local store starts on demand."""
    return resolve_uri(load_settings(uri="local:" if text == "local" else text))


def _client(settings: LeafMongoSettings, uri: str) -> Any:
    from leaf_mongo.connection import check_server, make_client

    client = make_client(settings.model_copy(update={"uri": SecretStr(uri)}))
    check_server(client)
    return client


@app.command("copy")
@run_command
def copy_command(
    source: str = typer.Option(..., "--from", help=ENDPOINT_HELP, show_default=False),
    target: str = typer.Option(..., "--to", help=ENDPOINT_HELP, show_default=False),
    database: str | None = typer.Option(None, "--database", "--db", help="Database (env LEAF_MONGO_DATABASE)"),
    collection: str | None = typer.Option(None, "--collection", "-c", help="Collection (env LEAF_MONGO_COLLECTION)"),
    to_database: str | None = typer.Option(None, "--to-database", help="Target database (default: the same)"),
    to_collection: str | None = typer.Option(None, "--to-collection", help="Target collection (default: the same)"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object"),
    debug: bool = DebugOpt,
) -> None:
    """Copy a collection with its spec, vectors, manifest and index definitions; idempotent, resumable.

    Exit codes: 0 done, 2 no such collection or a target with vectors of another spec, 3 server or index error.
    """
    from leaf_mongo.ingest.copy import copy_collection

    settings = load_settings(**{k: v for k, v in {"database": database, "collection": collection}.items() if v})
    src = _client(settings, endpoint_uri(source))
    dst = _client(settings, endpoint_uri(target))
    try:
        report = copy_collection(
            src[settings.database][settings.collection],
            dst[to_database or settings.database][to_collection or settings.collection],
            batch_size=settings.write_batch_size,
            index_wait=settings.index_wait_seconds,
            on_event=lambda event, data: console.print(f"[dim]{event}: {data}[/]") if event != "finished" else None,
        )
    finally:
        src.close()
        dst.close()
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    out.print(
        f"copied {report.source} -> {report.target}: {report.chunks} chunks ({report.written} written, "
        f"{report.deleted} removed), {report.manifest_entries} files, indexes "
        + ", ".join(f"{n} {a}" for n, a in report.indexes.items())
        + f" in {report.seconds:.1f} s",
        highlight=False,
    )
