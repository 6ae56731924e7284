"""``leaf-mongo ingest PATH...``: progress bars while it runs, a summary table (or JSON) when done."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from leaf_mongo.cli.app import app
from leaf_mongo.cli.common import (
    MODELS,
    SERVER,
    VECTORS,
    DebugOpt,
    console,
    out,
    run_command,
    settings_flags,
    settings_from_flags,
)
from leaf_mongo.ingest import ingest


class _ProgressView:
    """Feeds ingest events into rich progress bars: a spinner while the server, spec and models are prepared;
    then files, the bytes of text to read (what is known in advance of a streamed corpus) with chunks (and,
    for record corpora, records) so far, chunk rate and ETA; the index wait spinner."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.prepare: Any = progress.add_task("preparing: server, spec, models", total=None, amount="")
        self.files: Any = None
        self.read: Any = None
        self.index: Any = None
        self.records = self.chunks = 0
        self.streamed = False

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        p = self.progress
        if event == "scan":
            p.remove_task(self.prepare)
            self.files = p.add_task("files", total=data["files"], amount=f"0/{data['files']}")
            self.read = p.add_task("text read", total=data.get("bytes") or None, amount="")
            self._read_amount()
        elif event == "file_start":
            p.update(self.files, description=f"files [dim]{data['path'][-40:]}[/]")
        elif event == "file_done":
            p.advance(self.files)
            task = self._task(self.files)
            p.update(self.files, amount=f"{int(task.completed)}/{int(task.total or 0)}")
        elif event == "records_read":
            self.streamed = self.streamed or bool(data.get("records"))
            self.records += data["n"] if data.get("records") else 0
            p.advance(self.read, data["done"])
            self._read_amount()
            self._describe()
        elif event == "chunks_encoded":
            self.chunks += data["n"]
            self._describe()
        elif event == "index_status":
            if self.index is None:
                self.index = p.add_task("waiting for the search indexes", total=None, amount="")
            name = data.get("index", "vectorSearch index")
            done = data["status"] == "READY"
            p.update(self.index, description=f"{name}: {data['status']}", total=1, completed=1 if done else 0)

    def _task(self, task_id: Any) -> Task:
        return next(t for t in self.progress.tasks if t.id == task_id)

    def _read_amount(self) -> None:
        task = self._task(self.read)
        total = decimal(int(task.total)) if task.total else "?"
        self.progress.update(self.read, amount=f"{decimal(int(task.completed))}/{total}")

    def _describe(self) -> None:
        elapsed = self._task(self.read).elapsed or 0.0
        rate = f", {self.chunks / elapsed:.1f} chunks/s" if elapsed > 0 else ""
        records = f"{self.records:,} records, " if self.streamed else ""
        self.progress.update(self.read, description=f"text read: {records}{self.chunks:,} chunks encoded{rate}")


def _summary(report: Any) -> Table:
    t = Table(title=f"ingest {report.namespace}" + (" (dry run)" if report.dry_run else ""), show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("files ingested", str(len(report.files_ingested)))
    t.add_row("files unchanged", str(len(report.files_unchanged)))
    t.add_row("files skipped", str(len(report.files_skipped)))
    for s in report.files_skipped:
        t.add_row("", f"[yellow]{s['path']}[/]: {s['reason']}")
    if report.files_pruned:
        t.add_row("files pruned", str(len(report.files_pruned)))
    if report.records_read or report.records_skipped:
        t.add_row("records read", f"{report.records_read} ({report.records_skipped} skipped)")
    t.add_row("chunks encoded", str(report.chunks_encoded))
    t.add_row("chunks written", str(report.chunks_written))
    t.add_row("chunks deleted", str(report.chunks_deleted))
    t.add_row("time", f"{report.seconds:.1f} s (encoding {report.encode_seconds:.1f} s)")
    t.add_row("chunks/s", f"{report.chunks_per_second:.1f}")
    t.add_row("bytes per stored vector", str(report.bytes_per_vector))
    t.add_row("index", f"{report.index_action} ({report.index_status or '-'})")
    if report.fulltext_index_action != "none":
        t.add_row("full-text index", f"{report.fulltext_index_action} ({report.fulltext_index_status or '-'})")
    return t


@app.command("ingest")
@run_command
@settings_flags(*SERVER, *MODELS, *VECTORS)
def ingest_command(
    paths: list[Path] = typer.Argument(..., help="Files or folders to ingest", show_default=False),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Texts per teacher encode call"),
    include: list[str] = typer.Option([], "--include", help="Glob on relative paths to include (repeatable)"),
    exclude: list[str] = typer.Option([], "--exclude", help="Glob on relative paths to exclude (repeatable)"),
    prune: bool = typer.Option(False, "--prune", help="Remove chunks of files that no longer exist"),
    recreate: bool = typer.Option(False, "--recreate", help="Drop and rebuild when the stored spec differs"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would change; write nothing"),
    window_size: int | None = typer.Option(None, "--window-size", help="Chunks read and encoded together"),
    workers: int | None = typer.Option(None, "--workers", help="CPU encoder processes (multi-process pool)"),
    devices: str | None = typer.Option(None, "--devices", help="Encoder devices, e.g. cuda:0,cuda:1"),
    ray: str | None = typer.Option(
        None,
        "--ray",
        metavar="ADDRESS",
        help="Run on Ray: 'local' starts a local instance, 'auto' or ray://HOST:10001 joins a cluster",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables"),
    fulltext: bool | None = typer.Option(
        None,
        "--fulltext/--no-fulltext",
        help="Also maintain a full-text search index over text, title, headings (env LEAF_MONGO_FULLTEXT; default on)",
    ),
    teacher_backend: str | None = typer.Option(
        None, "--teacher-backend", help="Document encoding: torch, onnx, onnx-int8, openvino, openvino-int8"
    ),
    autoembed: bool = typer.Option(
        False, "--autoembed", help="Write chunks without vectors and let mongot embed them (an autoEmbed index)"
    ),
    autoembed_model: str | None = typer.Option(
        None, "--autoembed-model", help="The autoEmbed model name (env LEAF_MONGO_AUTOEMBED_MODEL; default voyage-4)"
    ),
    debug: bool = DebugOpt,
    *,
    flags: dict[str, Any],
) -> None:
    """Chunk files, embed them with the teacher, and write them to MongoDB with a vectorSearch index
    (and a search index for full-text and hybrid search).

    Exit codes: 0 success, 1 done but some files skipped, 2 bad usage or settings, 3 server or index error.
    """
    settings = settings_from_flags(
        **flags,
        batch_size=batch_size,
        fulltext=fulltext,
        window_size=window_size,
        workers=workers,
        devices=devices,
        ray=ray,
        teacher_backend=teacher_backend,
        autoembed_model=autoembed_model,
    )
    if autoembed and not settings.autoembed_model:
        settings = settings.with_overrides(autoembed_model="voyage-4")
    if not as_json:
        console.print(
            f"ingesting into [bold]{settings.database}.{settings.collection}[/] at {settings.redacted_uri}",
            soft_wrap=True,
        )
    kwargs: dict[str, Any] = dict(include=include, exclude=exclude, prune=prune, recreate=recreate, dry_run=dry_run)
    if as_json:
        report = ingest(paths, settings, **kwargs)
        out.print_json(json.dumps(report.to_json()))
    else:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[amount]}"),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as progress:
            report = ingest(paths, settings, on_event=_ProgressView(progress), **kwargs)
        console.print(_summary(report))
    if report.files_skipped:
        raise typer.Exit(1)
