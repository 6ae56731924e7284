"""One evaluated grid point (:class:`EvalResult`), a whole run (:class:`EvalReport`), and their plot."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from leaf_mongo.errors import LeafMongoError
from leaf_mongo.evaluation.modes import MODES, STANDARD_METRICS


@dataclass
class EvalResult:
    """One grid point in one mode: metrics and latency, or why it was skipped."""

    mode: str
    dimensions: int | str | None
    dtype: str
    quantization: str
    status: Literal["ok", "skipped"] = "ok"
    reason: str | None = None
    doc_model: str | None = None
    query_model: str | None = None
    query_backend: str = "torch"
    """Inference backend of the query side (``LEAF_MONGO_LEAF_BACKEND``): compare backends by running again."""
    document_backend: str = "torch"
    """Inference backend that embedded the documents (``LEAF_MONGO_TEACHER_BACKEND``)."""
    similarity: str | None = None
    int8_range: tuple[float, float] | None = None
    bytes_per_vector: int | None = None
    index_bytes_per_vector: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    """Means over the evaluated queries (those with a judged-relevant document)."""
    per_query: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)
    """Every metric per query id, for paired comparisons between modes (not in the JSON)."""
    queries: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    chunks_per_query: int | None = None
    collection: str | None = None
    corpus_docs: int | None = None
    corpus_chunks: int | None = None
    ingest_seconds: float | None = None
    chunks_written: int | None = None
    note: str | None = None
    weights: tuple[float, float] | None = None
    """Hybrid modes: (vector, full-text) weights of the rank fusion."""

    def latency(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        return float(np.percentile(np.asarray(self.latencies_ms), q))

    def to_json(self) -> dict[str, Any]:
        def r(x: float | None, n: int = 4) -> float | None:
            return None if x is None else round(x, n)

        out: dict[str, Any] = {
            "mode": self.mode,
            "weights": list(self.weights) if self.weights else None,
            "dimensions": self.dimensions,
            "dtype": self.dtype,
            "quantization": self.quantization,
            "status": self.status,
            "reason": self.reason,
        }
        out.update({name: None for name in STANDARD_METRICS})  # present (null) on skipped rows too
        out.update({name: r(v) for name, v in self.metrics.items()})
        out.update(
            {
                "queries": self.queries,
                "latency_ms_p50": r(self.latency(50), 2),
                "latency_ms_p99": r(self.latency(99), 2),
                "latency_ms_mean": r(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else None,
                "bytes_per_vector": self.bytes_per_vector,
                "index_bytes_per_vector": self.index_bytes_per_vector,
                "doc_model": self.doc_model,
                "query_model": self.query_model,
                "query_backend": self.query_backend,
                "document_backend": self.document_backend,
                "similarity": self.similarity,
                "int8_range": list(self.int8_range) if self.int8_range else None,
                "chunks_per_query": self.chunks_per_query,
                "collection": self.collection,
                "corpus_docs": self.corpus_docs,
                "corpus_chunks": self.corpus_chunks,
                "ingest_seconds": r(self.ingest_seconds, 2),
                "chunks_written": self.chunks_written,
                "note": self.note,
            }
        )
        return out


@dataclass
class EvalReport:
    dataset: str
    split: str
    server: str
    results: list[EvalResult]
    seconds: float = 0.0

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.results]


def metric_names(k: int) -> list[str]:
    """Reported metrics: nDCG@10, Recall@10, Recall@100, MRR@10 (the BEIR figures), and the same at ``k``."""
    names = [*STANDARD_METRICS, f"ndcg@{k}", f"recall@{k}", f"mrr@{k}"]
    return list(dict.fromkeys(names))


def plot_results(results: Sequence[EvalResult], path: str | Path, title: str = "") -> Path:
    """nDCG@10 against bytes per vector in the index (log scale), one series per mode; PNG via Agg.

    Modes other than the built-in three (e.g. ``"leaf (distilled)"`` when merging runs) get series of their own.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LeafMongoError("--plot needs matplotlib (pip install 'leaf-mongo[notebooks]')") from None
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    markers = {"asymmetric": "o", "leaf": "s", "teacher": "^"}
    extra = ["D", "v", "P", "X", "*"]
    for n, mode in enumerate(dict.fromkeys([*MODES, *(r.mode for r in results)])):
        pts = sorted(
            (r.index_bytes_per_vector, 100 * r.metrics["ndcg@10"], r)
            for r in results
            if r.mode == mode and r.status == "ok" and r.index_bytes_per_vector and "ndcg@10" in r.metrics
        )
        if not pts:
            continue
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            marker=markers.get(mode, extra[n % len(extra)]),
            linestyle="",
            label=mode,
        )
        for x, y, r in pts:
            q = "" if r.quantization == "none" else f"/{r.quantization}"
            ax.annotate(f"{r.dimensions} {r.dtype}{q}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per vector in the index (log scale)")
    ax.set_ylabel("nDCG@10 (x100)")
    ax.set_title(title or "retrieval quality against vector size")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
