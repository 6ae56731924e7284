"""The grid runner: one collection per (document model, dimensions, dtype, quantization), shared by modes."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leaf_mongo.errors import SettingsError, SpecMismatchError
from leaf_mongo.evaluation.beir import BeirDataset, digest, slug
from leaf_mongo.evaluation.calibration import calibrate_int8
from leaf_mongo.evaluation.metrics import per_query as metrics_per_query
from leaf_mongo.evaluation.modes import HYBRID_MODES, MAX_K, MODES, WARMUP_QUERY, Event
from leaf_mongo.evaluation.report import EvalResult, metric_names
from leaf_mongo.ingest import ingest
from leaf_mongo.models.encoders import VectorEncoder
from leaf_mongo.models.resolve import spec_from_settings
from leaf_mongo.settings import LeafMongoSettings
from leaf_mongo.spec import VectorSpec, resolved_teacher
from leaf_mongo.spec.profiles import PROFILES
from leaf_mongo.spec.vector_spec import payload_bytes

if TYPE_CHECKING:
    from pymongo import MongoClient


def index_bytes(spec: VectorSpec) -> int:
    """Bytes per vector in the representation the index searches (automatic quantization shrinks it)."""
    if spec.dtype == "float32" and spec.quantization == "scalar":
        return payload_bytes("int8", spec.dimensions)
    if spec.dtype == "float32" and spec.quantization == "binary":
        return payload_bytes("binary", spec.dimensions)
    return payload_bytes(spec.dtype, spec.dimensions)


def resolve_dimensions(token: int | str, full: int) -> int:
    """``768``, ``"768"``, ``"full"`` or ``"half"`` for a model of ``full`` dimensions."""
    t = str(token).strip().lower()
    if t == "full":
        return full
    if t == "half":
        return full // 2
    try:
        return int(t)
    except ValueError:
        raise SettingsError("dimensions", f"{token!r} is not a number; allowed: integers, full, half") from None


def model_label(name: str) -> str:
    """A readable model name: the folder's name, or its parent's when the folder is generic ("model")."""
    path = Path(name.rstrip("/"))
    if path.name.lower() in ("model", "models", "final", "output", "best") and path.parent.name:
        return path.parent.name
    return path.name


def collection_name(data: BeirDataset, spec: VectorSpec, settings: LeafMongoSettings) -> str:
    """Deterministic per configuration, so a later run reuses the collection (and finds its spec matching)."""
    doc_model = spec.teacher_model
    parts: list[object] = [doc_model, settings.chunk_size, settings.chunk_overlap]
    if spec.dtype == "int8":
        parts += [spec.int8_min, spec.int8_max]
    if settings.teacher_backend != "torch":  # other document vectors: another collection
        parts.append(settings.teacher_backend)
    name = slug(model_label(doc_model), 32) or "model"
    return f"eval_{data.tag}_{name}-{digest(*parts)[:6]}_{spec.dimensions}_{spec.dtype}_{spec.quantization}"


@dataclass
class _Corpus:
    docs: int
    chunks: int


def _corpus_stats(collection: Any) -> _Corpus:
    chunks = collection.count_documents({})
    docs = len(collection.distinct("record_id")) or chunks
    return _Corpus(docs, chunks)


def _run_queries(
    retriever: Any,
    queries: dict[str, str],
    depth: int,
    corpus: _Corpus,
    on_event: Event,
    label: str,
) -> tuple[dict[str, dict[str, float]], list[float], int]:
    """Every query once through the retriever: doc scores (best chunk) and per-query latency in ms.

    Asks for enough chunks to cover ``depth`` documents (chunks per document × depth, with margin); a query
    whose chunks collapse to fewer documents is asked again with twice as many, and its latency includes
    both calls.
    """
    ratio = corpus.chunks / max(corpus.docs, 1)
    limit = min(MAX_K, corpus.chunks)
    k_chunks = min(limit, max(depth, math.ceil(depth * ratio * 1.25) + 10))
    retriever.load()
    retriever.invoke(WARMUP_QUERY, k=k_chunks)  # model load, first-call overheads: not timed
    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    on_event("queries_start", {"label": label, "total": len(queries)})
    for qid, text in queries.items():
        kc = k_chunks
        elapsed = 0.0
        while True:
            t0 = time.perf_counter()
            docs = retriever.invoke(text, k=kc)
            elapsed += time.perf_counter() - t0
            scores: dict[str, float] = {}
            for d in docs:
                rid = d.metadata.get("record_id") or d.id
                s = float(d.metadata.get("score", 0.0))
                if rid is not None and s > scores.get(str(rid), -math.inf):
                    scores[str(rid)] = s
            if len(scores) >= depth or len(docs) < kc or kc >= limit:
                break
            kc = min(limit, kc * 2)
        run[qid] = scores
        latencies.append(elapsed * 1000.0)
        on_event("query_done", {"label": label})
    return run, latencies, k_chunks


class Grid:
    """Runs the grid: one collection per (document model, dimensions, dtype, quantization), shared by modes."""

    def __init__(
        self,
        data: BeirDataset,
        base: LeafMongoSettings,
        client: MongoClient[Any],
        *,
        k: int,
        depth: int,
        int8_range: str | tuple[float, float] | None,
        exact: bool,
        database: str,
        emulated: bool,
        emit: Event,
        weights: Sequence[tuple[float, float]] = ((1.0, 1.0),),
    ) -> None:

        self.data, self.client, self.k, self.depth = data, client, k, depth
        self.int8_range, self.exact, self.database = int8_range, exact, database
        self.emulated, self.emit = emulated, emit
        self.weights = list(weights) or [(1.0, 1.0)]
        self.fulltext_done: set[str] = set()
        self.teacher = resolved_teacher(base)
        self.leaf = base.leaf_model or PROFILES[base.profile].leaf_model
        self.base = base.with_overrides(leaf_model=self.leaf, database=database)
        self.metric_names = metric_names(k)
        self.calibrated: dict[tuple[str, int], tuple[float, float]] = {}
        self.results: list[EvalResult] = []

    def run(self, modes: list[str], grid: list[tuple[int | str, str, str]]) -> list[EvalResult]:
        # Document model -> the modes that query a collection embedded by it (asymmetric and teacher share).
        by_doc_model: dict[str, list[str]] = {}
        for mode in modes:
            by_doc_model.setdefault(self.leaf if mode == "leaf" else self.teacher, []).append(mode)
        for doc_model, doc_modes in by_doc_model.items():
            settings = self.base.with_overrides(teacher_model=doc_model)
            full = spec_from_settings(
                settings.model_copy(update={"dimensions": None, "dtype": "float32", "quantization": "none"})
            ).full_dimensions
            blocked: dict[str, str] | None = None
            for dims_token, dtype, quant in grid:
                points = self._points(doc_modes, dims_token, dtype, quant, doc_model)
                try:
                    dims = resolve_dimensions(dims_token, full)
                    for p in points:
                        p.dimensions = dims
                    s, spec = self._point(settings, full, dims, dtype, quant)
                except SettingsError as exc:
                    self._skip(points, str(exc))
                    continue
                if blocked is None:
                    blocked = self._incompatible_modes(doc_modes, spec, s)
                live = [p for p in points if p.mode not in blocked]
                for p in points:
                    if p.mode in blocked:
                        self._skip([p], blocked[p.mode], spec)
                if live:
                    self._evaluate(live, s, spec)
        self.results.sort(key=lambda r: MODES.index(r.mode))  # stable: grid order within a mode
        return self.results

    def _points(self, modes: list[str], dims: int | str, dtype: str, quant: str, doc_model: str) -> list[EvalResult]:
        """One result per mode, hybrid modes once per weight pair, full text once per document model."""
        out: list[EvalResult] = []
        for m in modes:
            if m == "fulltext":
                if doc_model in self.fulltext_done:
                    continue
                self.fulltext_done.add(doc_model)
            for w in self.weights if m in HYBRID_MODES else [None]:
                out.append(EvalResult(m, dims, dtype, quant, doc_model=doc_model, weights=w))
        return out

    def _point(
        self, settings: LeafMongoSettings, full: int, dims: int, dtype: str, quant: str
    ) -> tuple[LeafMongoSettings, VectorSpec]:
        """Settings and spec of one grid point; SettingsError (with the spec's reason) when it is illegal."""
        s = settings.model_copy(update={"dimensions": dims, "dtype": dtype, "quantization": quant})
        if dtype == "int8" and self.int8_range is not None:
            if self.int8_range == "calibrate":
                key = (s.teacher_model or "", dims)
                if key not in self.calibrated:
                    self.emit("calibrate", {"model": key[0], "dimensions": dims})
                    self.calibrated[key] = calibrate_int8(self.data.corpus_path, s)
                lo, hi = self.calibrated[key]
            else:
                lo, hi = (float(x) for x in self.int8_range)
            s = s.model_copy(update={"int8_min": lo, "int8_max": hi})
        return s, spec_from_settings(s, full)

    def _incompatible_modes(self, modes: list[str], spec: VectorSpec, s: LeafMongoSettings) -> dict[str, str]:
        """Modes whose query model cannot produce vectors comparable with this document model's."""

        out: dict[str, str] = {}
        for mode in ("asymmetric", "hybrid"):
            if mode in modes:
                try:
                    VectorEncoder(spec, query_mode="asymmetric", device=s.device).check_query_model()
                except SpecMismatchError as exc:
                    out[mode] = f"models cannot be compared: {exc}"
        return out

    def _skip(self, points: list[EvalResult], reason: str, spec: VectorSpec | None = None) -> None:
        for p in points:
            p.status, p.reason = "skipped", reason
            if spec is not None:
                p.dimensions = spec.dimensions
            self.results.append(p)
            self.emit("result", {"result": p})

    def _evaluate(self, points: list[EvalResult], s: LeafMongoSettings, spec: VectorSpec) -> None:
        from leaf_mongo.query.retriever import LeafRetriever

        name = collection_name(self.data, spec, s)
        s = s.model_copy(update={"collection": name})
        if all(p.mode != "asymmetric" for p in points):
            # No leaf queries here (the leaf may not even fit this teacher): ingest would refuse a misfit leaf.
            s = s.model_copy(update={"leaf_model": spec.teacher_model})
        self.emit("ingest_start", {"collection": name, "model": spec.teacher_model})
        report = ingest(
            [self.data.corpus_path], s, client=self.client, on_event=lambda e, d: self.emit(f"ingest_{e}", d)
        )
        collection = self.client[self.database][name]
        corpus = _corpus_stats(collection)
        self.emit("ingest_done", {"collection": name, "report": report.to_json()})
        for p in points:
            teacher_queries = p.mode in ("teacher", "hybrid_teacher")
            search_mode = {"fulltext": "fulltext", "hybrid": "hybrid", "hybrid_teacher": "hybrid"}.get(p.mode, "vector")
            vector_weight, fulltext_weight = p.weights or (1.0, 1.0)
            retriever = LeafRetriever(
                collection=collection,
                index_name=s.index_name,
                fulltext_index_name=s.fulltext_index_name,
                search_mode=search_mode,
                vector_weight=vector_weight,
                fulltext_weight=fulltext_weight,
                k=min(MAX_K, self.depth),
                query_mode="teacher" if teacher_queries else "asymmetric",
                exact=self.exact,
                num_candidates_factor=s.num_candidates_factor,
                post_filter_pipeline=[{"$project": {"record_id": 1, "score": 1}}],  # ids and scores suffice
                device=s.device,
                leaf_backend=s.leaf_backend,
                backend_threads=s.backend_threads,
            )
            label = f"{p.mode} {spec.dimensions} {spec.dtype} {spec.quantization}"
            if p.weights:
                label += f" w={p.weights[0]:g}:{p.weights[1]:g}"
            run, latencies, chunks_per_query = _run_queries(
                retriever, self.data.queries, self.depth, corpus, self.emit, label
            )
            p.per_query = metrics_per_query(self.data.qrels, run, self.metric_names)
            p.queries = len(p.per_query)
            p.metrics = {
                m: statistics.fmean(row[m] for row in p.per_query.values()) if p.per_query else 0.0
                for m in self.metric_names
            }
            p.latencies_ms = latencies
            p.chunks_per_query = chunks_per_query
            p.dimensions = spec.dimensions
            p.query_model = {
                "fulltext": "BM25 ($search)",
                "teacher": spec.teacher_model,
                "hybrid_teacher": f"{spec.teacher_model} + BM25",
                "hybrid": f"{spec.leaf_model} + BM25",
            }.get(p.mode, spec.leaf_model)
            p.query_backend, p.document_backend = s.leaf_backend, s.teacher_backend
            p.similarity = spec.similarity
            p.int8_range = (spec.int8_min, spec.int8_max) if spec.dtype == "int8" else None
            p.bytes_per_vector = spec.bytes_per_vector
            p.index_bytes_per_vector = index_bytes(spec)
            p.collection = f"{self.database}.{name}"
            p.corpus_docs, p.corpus_chunks = corpus.docs, corpus.chunks
            p.ingest_seconds, p.chunks_written = report.seconds, report.chunks_written
            if self.emulated and spec.quantization != "none":
                p.note = "the emulator ignores index quantization: figures equal quantization none"
            self.results.append(p)
            self.emit("result", {"result": p})
