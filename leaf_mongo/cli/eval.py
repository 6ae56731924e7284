"""``leaf-mongo eval DATASET_DIR``: quality (nDCG, Recall, MRR) and query latency per mode and grid point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from leaf_mongo.cli.app import app
from leaf_mongo.cli.common import (
    MODELS,
    DebugOpt,
    console,
    out,
    run_command,
    settings_flags,
    settings_from_flags,
)
from leaf_mongo.errors import SettingsError


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _weights(value: str) -> list[tuple[float, float]]:
    """``1:1,2:1`` -> [(1.0, 1.0), (2.0, 1.0)]."""
    out = []
    for item in _split(value):
        try:
            v, t = (float(x) for x in item.split(":"))
        except ValueError:
            raise SettingsError("weights", f"{item!r} is not VECTOR:FULLTEXT (e.g. 1:1)") from None
        if v < 0 or t < 0:
            raise SettingsError("weights", f"{item!r}: weights must be non-negative")
        out.append((v, t))
    return out or [(1.0, 1.0)]


def _int8_range(value: str | None) -> str | tuple[float, float] | None:
    """``profile`` (the settings' range), ``calibrate``, or ``MIN,MAX``."""
    if value is None or value.strip().lower() == "profile":
        return None
    if value.strip().lower() == "calibrate":
        return "calibrate"
    parts = _split(value)
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise SettingsError("--int8-range", f"{value!r}: allowed: profile, calibrate, or MIN,MAX") from None
    return lo, hi


class _ProgressView:
    """Ingest chunk counts and query progress as rich bars; one line per finished grid point."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None

    def _task(self, description: str, total: int | None) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(description, total=total)

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        p = self.progress
        if event == "ingest_start":
            self._task(f"ingest {data['collection']}", None)
        elif event == "ingest_chunks_encoded" and self.task is not None:
            p.advance(self.task, data["n"])
        elif event == "calibrate":
            self._task(f"calibrating int8 range ({data['dimensions']} dims) on corpus embeddings", None)
        elif event == "queries_start":
            self._task(f"queries {data['label']}", data["total"])
        elif event == "query_done" and self.task is not None:
            p.advance(self.task)
        elif event == "result":
            r = data["result"]
            if r.status == "ok":
                p.console.print(
                    f"[green]done[/] {r.mode} {r.dimensions} {r.dtype} {r.quantization}: "
                    f"nDCG@10 {100 * r.metrics['ndcg@10']:.2f}",
                    highlight=False,
                )
            else:
                p.console.print(
                    f"[yellow]skipped[/] {r.mode} {r.dimensions} {r.dtype} {r.quantization}: {r.reason}",
                    highlight=False,
                    soft_wrap=True,
                )


def _table(report: Any, k: int) -> Table:
    t = Table(title=f"{report.dataset} ({report.split}) on {report.server}")
    cols = ["mode", "dims", "dtype", "quant", "B/vec", "nDCG@10", "R@10", "R@100", "MRR@10"]
    if k != 10:
        cols += [f"nDCG@{k}", f"R@{k}", f"MRR@{k}"]
    cols += ["queries", "p50 ms", "p99 ms", "note"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("mode", "dtype", "quant", "note") else "right", no_wrap=c != "note")
    for r in report.results:
        j = r.to_json()
        mode = r.mode + (f" {r.weights[0]:g}:{r.weights[1]:g}" if r.weights else "")
        head = [mode, str(r.dimensions), r.dtype, r.quantization]
        if r.status != "ok":
            t.add_row(*head, *[""] * (len(cols) - 5), f"[yellow]skipped: {r.reason}[/]")
            continue
        metrics = ["ndcg@10", "recall@10", "recall@100", "mrr@10"]
        if k != 10:
            metrics += [f"ndcg@{k}", f"recall@{k}", f"mrr@{k}"]
        t.add_row(
            *head,
            str(r.index_bytes_per_vector),
            *[f"{100 * j[m]:.2f}" for m in metrics],
            str(r.queries),
            f"{j['latency_ms_p50']:.1f}",
            f"{j['latency_ms_p99']:.1f}",
            r.note or "",
        )
    return t


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _print_report(report: Any, k: int, as_json: bool, plot: Path | None) -> None:
    """The report as JSON, or as a table (then a line on stderr for the plot, if one was written)."""
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        # A wide table: keep its columns when stdout is not a terminal (rich would assume 80 there).
        wide = out if out.is_terminal else Console(width=200 if k == 10 else 240)
        wide.print(_table(report, k))
        if plot is not None:
            console.print(f"plot written to {plot}")


@app.command("eval")
@run_command
@settings_flags("uri", *MODELS)
def eval_command(
    dataset_dir: Path = typer.Argument(..., help="BEIR folder: corpus.jsonl[.gz], queries.jsonl, qrels/test.tsv"),
    modes: str = typer.Option(
        "asymmetric,leaf,teacher",
        "--modes",
        help="Comma list of asymmetric, leaf, teacher, fulltext (BM25), hybrid (leaf queries + full text), "
        "hybrid_teacher (teacher queries + full text)",
    ),
    weights: str = typer.Option(
        "1:1", "--weights", help="Hybrid modes: comma list of VECTOR:FULLTEXT rank-fusion weights, e.g. 1:1,2:1"
    ),
    dimensions: str = typer.Option("full", "--dimensions", "-d", help="Comma list: integers, full, half"),
    dtypes: str = typer.Option("float32", "--dtypes", help="Comma list of float32, int8, binary"),
    quantizations: str = typer.Option("none", "--quantizations", help="Comma list of none, scalar, binary"),
    query_prompt: str | None = typer.Option(
        None, "--query-prompt", help="Query prefix (env LEAF_MONGO_QUERY_PROMPT; default: the profile's)"
    ),
    int8_range: str | None = typer.Option(
        None, "--int8-range", help="profile (default) | calibrate (fit on corpus embeddings) | MIN,MAX"
    ),
    k: int = typer.Option(10, "--k", "-k", help="Extra cut-off for nDCG/Recall/MRR (10 is always reported)"),
    max_queries: int | None = typer.Option(None, "--max-queries", help="Seeded sample of the test queries"),
    sample_docs: int | None = typer.Option(
        None, "--sample-docs", help="Corpus of N docs: all judged for the chosen queries + a seeded sample"
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for --max-queries / --sample-docs"),
    split: str = typer.Option("test", "--split", help="qrels split whose queries are run"),
    exact: bool = typer.Option(False, "--exact", help="Exact (ENN) search instead of HNSW"),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the embedding cache"),
    database: str = typer.Option("leaf_mongo_eval", "--database", "--db", help="Database for eval collections"),
    emulator: bool = typer.Option(False, "--emulator", help="Run against an in-process emulator (offline, CI)"),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of results instead of a table"),
    plot: Path | None = typer.Option(None, "--plot", help="Write nDCG@10 against bytes per vector to a PNG"),
    debug: bool = DebugOpt,
    *,
    flags: dict[str, Any],
) -> None:
    """Ingest a BEIR corpus through the normal path, run its test queries through the retriever, and report
    nDCG@10, Recall@10/100, MRR@10 and query latency per mode × dimensions × dtype × quantization.

    Eval collections are named from their configuration and reused; teacher outputs are cached.
    """
    from leaf_mongo.evaluation import load_beir, plot_results, run_eval

    settings = settings_from_flags(**flags, query_prompt=query_prompt)
    data = load_beir(dataset_dir, split=split)
    kwargs: dict[str, Any] = dict(
        settings=settings,
        modes=_split(modes),
        dimensions=_split(dimensions),
        dtypes=_split(dtypes),
        quantizations=_split(quantizations),
        k=k,
        max_queries=max_queries,
        sample_docs=sample_docs,
        seed=seed,
        int8_range=_int8_range(int8_range),
        exact=exact,
        use_cache=not no_cache,
        database=database,
        emulator=emulator,
        weights=_weights(weights),
    )
    if as_json:
        report = run_eval(data, **kwargs)
    else:
        where = "an in-process emulator" if emulator else settings.redacted_uri
        console.print(f"evaluating [bold]{data.name}[/] ({len(data.queries)} {split} queries) on {where}")
        with _progress() as progress:
            report = run_eval(data, on_event=_ProgressView(progress), **kwargs)
    if plot is not None:
        plot_results(report.results, plot, title=f"{report.dataset} ({report.split})")
    _print_report(report, k, as_json, plot)
