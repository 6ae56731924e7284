"""``leaf-mongo search "question"``: a rich table of the top chunks, or JSON for scripts."""

from __future__ import annotations

import json
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from leaf_mongo.cli.app import app
from leaf_mongo.cli.common import (
    SERVER,
    DebugOpt,
    out,
    run_command,
    settings_flags,
    settings_from_flags,
)
from leaf_mongo.errors import FilterError
from leaf_mongo.settings import LeafMongoSettings

if TYPE_CHECKING:
    from langchain_core.documents import Document

SNIPPET = 160


class Mode(str, Enum):
    asymmetric = "asymmetric"
    teacher = "teacher"


def parse_filter(text: str | None) -> dict[str, Any] | None:
    """``--filter`` JSON → dict, with one clear line when it is not a JSON object."""
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FilterError(f"--filter is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(value, dict):
        raise FilterError(f'--filter must be a JSON object such as \'{{"source": "a.md"}}\', got {text.strip()!r}')
    return value


def _snippet(text: str, width: int = SNIPPET) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@app.command("search")
@run_command
@settings_flags(*SERVER, "leaf_model")
def search_command(
    question: str = typer.Argument(..., help="What to search for", show_default=False),
    k: int | None = typer.Option(None, "-k", "--k", min=1, max=10_000, help="Results to return (env LEAF_MONGO_K)"),
    filter_json: str | None = typer.Option(
        None, "--filter", help='Pre-filter on declared filter fields, as JSON: \'{"source": "a.md"}\''
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of {id, score, text, metadata}"),
    mode: Mode = typer.Option(Mode.asymmetric, "--mode", help="Query encoder: the leaf model, or the teacher"),
    exact: bool = typer.Option(False, "--exact", help="Exact (ENN) search instead of approximate"),
    num_candidates: int | None = typer.Option(
        None, "--num-candidates", min=1, max=10_000, help="HNSW candidates (default 20 x k)"
    ),
    score_threshold: float | None = typer.Option(None, "--score-threshold", help="Drop results scoring below this"),
    rescore: bool = typer.Option(False, "--rescore", help="Re-rank with stored full-precision vectors"),
    search_mode: str | None = typer.Option(
        None,
        "--search-mode",
        help="vector, fulltext (BM25 $search) or hybrid ($rankFusion of both); env LEAF_MONGO_SEARCH_MODE. "
        "(--mode chooses the query encoder)",
    ),
    vector_weight: float | None = typer.Option(None, "--vector-weight", min=0, help="Hybrid: vector list weight"),
    fulltext_weight: float | None = typer.Option(
        None, "--fulltext-weight", min=0, help="Hybrid: full-text list weight"
    ),
    fusion: str | None = typer.Option(
        None, "--fusion", help="Hybrid: native ($rankFusion, MongoDB 8.1+) or client (two searches, fused here)"
    ),
    leaf_backend: str | None = typer.Option(
        None,
        "--leaf-backend",
        help="Query encoding: auto (onnx if installed, else torch), torch, onnx, onnx-int8, openvino, "
        "openvino-int8 (env LEAF_MONGO_LEAF_BACKEND)",
    ),
    autoembed_query: str = typer.Option(
        "text",
        "--autoembed-query",
        help="autoEmbed collections: text (the server embeds the query) or vector (the leaf, in this process)",
    ),
    debug: bool = DebugOpt,
    *,
    flags: dict[str, Any],
) -> None:
    """Encode the question with the leaf model and run $vectorSearch (or $search, or both fused).

    Exit codes: 0 success (also with no results), 2 bad usage, filter or spec mismatch, 3 server or index error.
    """
    from leaf_mongo.query.retriever import LeafRetriever

    pre_filter = parse_filter(filter_json)
    settings = settings_from_flags(
        **flags,
        k=k,
        search_mode=search_mode,
        vector_weight=vector_weight,
        fulltext_weight=fulltext_weight,
        fusion=fusion,
        leaf_backend=leaf_backend,
    )
    retriever = LeafRetriever.from_settings(
        settings,
        query_mode=mode.value,
        exact=exact,
        pre_filter=pre_filter,
        num_candidates=num_candidates,
        score_threshold=score_threshold,
        rescore=rescore,
        autoembed_query=autoembed_query,
    )
    try:
        docs = retriever.invoke(question)
    finally:
        retriever.close()

    _print_results(docs, question, settings, mode, as_json)


def _print_results(docs: list[Document], question: str, settings: LeafMongoSettings, mode: Mode, as_json: bool) -> None:
    """A JSON list for scripts, else a table; no results is not an error (exit 0)."""
    if as_json:
        rows = [
            {"id": d.id, "score": d.metadata.get("score"), "text": d.page_content, "metadata": d.metadata} for d in docs
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    if not docs:
        out.print("[yellow]no results[/]")
        return
    out.print(_table(docs, question, settings, mode))


def _table(docs: list[Document], question: str, settings: LeafMongoSettings, mode: Mode) -> Table:
    """One row per hit: rank, score, source, chunk number and a one-line snippet of the text."""
    table = Table(
        title=f"{settings.database}.{settings.collection}: top {len(docs)} for {question!r} "
        f"({settings.search_mode}{'' if settings.search_mode == 'fulltext' else ', ' + mode.value})",
        title_justify="left",
    )
    table.add_column("#", justify="right", style="bold")
    table.add_column("score", justify="right")
    table.add_column("source", overflow="fold")
    table.add_column("chunk", justify="right")
    table.add_column("text")
    for rank, doc in enumerate(docs, 1):
        score = doc.metadata.get("score")
        table.add_row(
            str(rank),
            f"{score:.4f}" if isinstance(score, (int, float)) else "-",
            str(doc.metadata.get("source", "")),
            str(doc.metadata.get("chunk", "")),
            _snippet(doc.page_content),
        )
    return table
