"""``leaf-mongo distill``: train a leaf query model for any teacher, with a progress bar and a summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from leaf_mongo.cli.app import app
from leaf_mongo.cli.common import DebugOpt, console, out, run_command, settings_from_flags
from leaf_mongo.settings import LeafMongoSettings
from leaf_mongo.spec.vector_spec import resolved_teacher


class _ProgressView:
    """Teacher pass as a counted bar; training as a bar over steps or over the time budget, with the loss."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.teacher: TaskID | None = None
        self.train: TaskID | None = None

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        p = self.progress
        if event == "stage":
            p.console.print(f"[dim]{data['message']}[/]")
        elif event == "teacher":
            if self.teacher is None:
                self.teacher = p.add_task("teacher vectors", total=data["total"])
            p.update(self.teacher, completed=data["done"])
        elif event == "step":
            budget = data["budget"]
            total = data["steps"] if data["steps"] is not None else budget
            done = data["step"] if data["steps"] is not None else min(data["elapsed"], budget)
            desc = f"training step {data['step']} loss {data['ema']:.4f} lr {data['lr']:.1e}"
            if self.train is None:
                self.train = p.add_task(desc, total=total)
            p.update(self.train, completed=done, description=desc)
        elif event == "checkpoint":
            p.console.print(f"[dim]checkpoint at step {data['step']}[/]")


def _summary(report: Any) -> Table:
    t = Table(title=f"distill -> {report.out}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("teacher / student", f"{report.teacher} / {report.student}")
    t.add_row("dimensions", str(report.dimensions))
    t.add_row("query prompt", repr(report.query_prompt))
    c = report.texts
    kinds = [k for k in ("documents", "titles", "queries") if k in c]
    t.add_row("texts (train / held out)", ", ".join(f"{k} {c[f'train_{k}']} / {c[f'heldout_{k}']}" for k in kinds))
    t.add_row("steps", f"{report.steps} ({report.config['epochs']} epochs)")
    t.add_row("training time", f"{report.seconds / 60:.1f} min (teacher pass {report.teacher_seconds:.0f} s)")
    if report.loss_curve:
        t.add_row("loss", f"{report.loss_curve[0]['loss']:.4f} -> {report.loss_curve[-1]['loss']:.4f}")
    before, after = report.alignment["before"], report.alignment["after"]
    for kind in ("documents", "titles", "queries"):
        b, a = before.get(kind), after.get(kind)
        if a is not None:
            t.add_row(f"cosine to teacher, {kind}", f"{b:.4f} (least squares) -> {a:.4f}" if b else f"{a:.4f}")
    return t


_RENAMED = {"out_dir": "out", "time_budget": "time_budget_minutes"}
"""Options whose DistillConfig field has another name; every other option but ``--json`` and ``--debug`` is
named like its field."""


def _config_fields(settings: LeafMongoSettings, options: dict[str, Any]) -> dict[str, Any]:
    """DistillConfig's fields from the command's options; the settings (env, .env) fill in what a flag left
    unset, so distill chunks, caches and runs like the ingest it is trained for."""
    fields = {_RENAMED.get(k, k): v for k, v in options.items() if k not in ("as_json", "debug")}
    return {
        **fields,
        "teacher": fields["teacher"] or resolved_teacher(settings),
        "chunk_size": fields["chunk_size"] if fields["chunk_size"] is not None else settings.chunk_size,
        "chunk_overlap": fields["chunk_overlap"] if fields["chunk_overlap"] is not None else settings.chunk_overlap,
        "max_file_mb": settings.max_file_mb,
        "cache": fields["cache"] or (Path(settings.embedding_cache) if settings.embedding_cache else None),
        "device": fields["device"] or settings.device,
    }


def _progress(as_json: bool) -> Progress:
    """Bars on stderr; with ``--json`` they vanish when done, and are not drawn at all off a terminal."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=as_json,
        disable=as_json and not console.is_terminal,
    )


@app.command("distill")
@run_command
def distill_command(
    teacher: str | None = typer.Option(
        None, "--teacher", help="Teacher: HF id or folder, spelled as for ingest (default: LEAF_MONGO_TEACHER_MODEL)"
    ),
    student: str = typer.Option(
        "sentence-transformers/all-MiniLM-L6-v2", "--student", help="Student backbone: HF id or folder"
    ),
    out_dir: Path = typer.Option(..., "--out", help="Output model folder (checkpoints go to OUT/checkpoint)"),
    texts: list[Path] = typer.Option([], "--texts", help="Document files or folders, loaded like ingest"),
    include: list[str] = typer.Option([], "--include", help="Glob on relative paths to include (repeatable)"),
    exclude: list[str] = typer.Option([], "--exclude", help="Glob on relative paths to exclude (repeatable)"),
    queries: list[Path] = typer.Option([], "--queries", help="Queries: BEIR queries.jsonl or a .txt log"),
    query_ids: list[Path] = typer.Option(
        [], "--query-ids", help="Keep only these query ids (qrels TSV, e.g. the TRAIN qrels; never test)"
    ),
    query_prompt: str | None = typer.Option(
        None,
        "--query-prompt",
        help="Prompt the teacher puts before queries; the student is trained and saved with it "
        "(default: the teacher's configured 'query' prompt, else none)",
    ),
    steps: int | None = typer.Option(None, "--steps", help="Optimizer steps"),
    time_budget: float | None = typer.Option(None, "--time-budget", help="Minutes of training (instead of --steps)"),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: float = typer.Option(1e-4, "--lr", help="Initial learning rate"),
    final_lr: float = typer.Option(1e-5, "--final-lr", help="Learning rate at the end (linear decay)"),
    chunk_size: int | None = typer.Option(None, "--chunk-size", help="Tokens per chunk (default: as ingest)"),
    chunk_overlap: int | None = typer.Option(None, "--chunk-overlap", help="Overlap tokens (default: as ingest)"),
    holdout_fraction: float = typer.Option(0.02, "--holdout-fraction", help="Texts held out for alignment"),
    query_repeat: int = typer.Option(1, "--query-repeat", help="Times each training query appears per epoch"),
    titles: bool = typer.Option(False, "--titles", help="Also train on record titles (short, query-like text)"),
    cached_only: bool = typer.Option(
        False, "--cached-only", help="Use only document chunks whose teacher vectors are already cached"
    ),
    bf16: bool = typer.Option(False, "--bf16", help="bfloat16 autocast for training (faster on recent CPUs)"),
    fit_samples: int = typer.Option(4096, "--fit-samples", help="Texts for the least-squares projection init"),
    cache: Path | None = typer.Option(
        None,
        "--cache",
        help="Teacher vector cache (default: LEAF_MONGO_EMBEDDING_CACHE, else ~/.cache/leaf-mongo/embeddings)",
    ),
    seed: int = typer.Option(0, "--seed"),
    checkpoint_every: int | None = typer.Option(None, "--checkpoint-every", help="Checkpoint every N steps"),
    checkpoint_minutes: float = typer.Option(5.0, "--checkpoint-minutes", help="Else every this many minutes"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from OUT/checkpoint if present"),
    keep_checkpoint: bool = typer.Option(True, "--keep-checkpoint/--no-keep-checkpoint"),
    device: str | None = typer.Option(None, "--device", help="torch device (default: automatic)"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object"),
    debug: bool = DebugOpt,
) -> None:
    """Distill a small query model aligned to a teacher (LEAF): use it as LEAF_MONGO_LEAF_MODEL.

    Documents are chunked like ingest and their teacher vectors come from (and go to) the embedding cache,
    so a corpus ingested with LEAF_MONGO_EMBEDDING_CACHE set needs no second teacher pass. A killed run
    continues from its last checkpoint when started again with the same arguments.
    """
    options = dict(locals())  # every flag, by parameter name: taken first, before any other local exists
    from leaf_mongo.distill import DistillConfig, distill

    config = DistillConfig(**_config_fields(settings_from_flags(), options))
    with _progress(as_json) as progress:
        report = distill(config, on_event=_ProgressView(progress))
    if as_json:
        out.print_json(json.dumps(report.to_json()))
    else:
        out.print(_summary(report))
        out.print(f"use it: LEAF_MONGO_LEAF_MODEL={report.out} (teacher {report.teacher})")
