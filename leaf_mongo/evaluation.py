"""``leaf-mongo eval``: retrieval quality and query latency of each mode, dimension and dtype on a BEIR set.

The point is to measure what users will get, so nothing here has its own search path: the corpus goes
through the normal :func:`leaf_mongo.ingest.ingest` (a BEIR ``corpus.jsonl[.gz]`` is a supported format,
so chunking, the teacher, the stored dtype and the index are the production ones), and every test query goes
through :class:`leaf_mongo.retriever.LeafRetriever`. Chunks map back to BEIR documents by ``record_id``; a
document scores its best chunk. Metrics come from :mod:`leaf_mongo.metrics` (trec_eval conventions).

Modes:

- ``asymmetric``: teacher documents, leaf queries (the package's point);
- ``leaf``: the leaf model on both sides (a collection whose document model is the leaf model);
- ``teacher``: teacher documents, teacher queries (the ceiling the leaf model is measured against).

A mode whose models cannot be compared (a 384-d leaf against a 768-d teacher), and a grid point MongoDB
does not accept (int8 vectors with index quantization, ...), is reported as skipped with the reason.

Test hygiene: only query ids of the chosen qrels split are read from ``queries.jsonl``, and their texts
are used for querying and nothing else; the int8 calibration (``int8_range="calibrate"``) is fitted on
corpus document embeddings only.

Cost: collections are named from their configuration and reused (ingest of an unchanged corpus file is a
no-op), and raw teacher outputs are kept in the embedding cache (default ``~/.cache/leaf-mongo/embeddings``,
shared with ``LEAF_MONGO_EMBEDDING_CACHE``), so a grid of dimensions and dtypes costs one teacher pass.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import itertools
import json
import math
import os
import random
import re
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from leaf_mongo.errors import LeafMongoError, SettingsError, SpecMismatchError
from leaf_mongo.metrics import per_query as metrics_per_query
from leaf_mongo.settings import Dtype, LeafMongoSettings, Quantization, load_settings
from leaf_mongo.spec import VectorSpec, spec_from_settings

if TYPE_CHECKING:
    from pymongo import MongoClient

Mode = Literal["asymmetric", "leaf", "teacher"]
MODES: tuple[Mode, ...] = ("asymmetric", "leaf", "teacher")
DTYPES: tuple[str, ...] = get_args(Dtype)
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)
DEFAULT_CACHE = "~/.cache/leaf-mongo/embeddings"
DEFAULT_DATABASE = "leaf_mongo_eval"
DEFAULT_DEPTH = 100  # documents retrieved per query (Recall@100)
WARMUP_QUERY = "warm-up query (not from the dataset)"
MAX_K = 10_000  # $vectorSearch limit
STANDARD_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")

Event = Callable[[str, dict[str, Any]], None]


# ---------------------------------------------------------------------------------------------- dataset


@dataclass
class BeirDataset:
    """A BEIR folder reduced to what an evaluation may use: the corpus file, and one split's queries."""

    name: str
    root: Path
    corpus_path: Path
    queries: dict[str, str]
    """Texts of the split's query ids only (nothing else is read from ``queries.jsonl``)."""
    qrels: dict[str, dict[str, int]]
    split: str = "test"
    sampled: bool = False
    corpus_docs: int | None = None

    @property
    def tag(self) -> str:
        """Short name for collection names: dataset name, plus a fingerprint of a sampled corpus."""
        base = _slug(self.name, 24) or "dataset"
        if not self.sampled:
            return base
        return f"{base}-s{_digest(self.corpus_path.parent.name)[:6]}"


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")


def _digest(*parts: object) -> str:
    return hashlib.sha1("\x00".join(map(str, parts)).encode()).hexdigest()


def find_corpus(root: Path) -> Path:
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (root / name).is_file():
            return root / name
    raise LeafMongoError(f"{root} is not a BEIR folder: no corpus.jsonl or corpus.jsonl.gz")


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``query-id<TAB>corpus-id<TAB>score`` lines; a header line (non-integer score) is skipped."""
    if not path.is_file():
        raise LeafMongoError(f"qrels file {path} does not exist")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split("\t")
            if not line.strip():
                continue
            if len(parts) < 3:
                raise LeafMongoError(f"{path}:{n}: expected query-id, corpus-id and score separated by tabs")
            try:
                score = int(float(parts[2]))
            except ValueError:
                if n == 1:
                    continue  # header
                raise LeafMongoError(f"{path}:{n}: score {parts[2]!r} is not a number") from None
            qrels.setdefault(parts[0], {})[parts[1]] = score
    return qrels


def read_queries(path: Path, wanted: set[str]) -> dict[str, str]:
    """Texts of the ``wanted`` query ids; other lines are skipped unparsed beyond their id."""
    if not path.is_file():
        raise LeafMongoError(f"queries file {path} does not exist")
    out: dict[str, str] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            qid = str(rec.get("_id"))
            if qid in wanted:
                out[qid] = str(rec.get("text") or "")
    missing = wanted - set(out)
    if missing:
        raise LeafMongoError(f"{path} has no text for {len(missing)} judged query id(s), e.g. {sorted(missing)[0]!r}")
    return out


def iter_corpus(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for line in fh:
            if line.strip():
                yield json.loads(line)


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    """Read a BEIR folder: ``corpus.jsonl[.gz]``, ``queries.jsonl``, ``qrels/<split>.tsv``."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise LeafMongoError(f"dataset folder {str(root)!r} does not exist")
    corpus = find_corpus(root)
    qrels = read_qrels(root / "qrels" / f"{split}.tsv")
    queries = read_queries(root / "queries.jsonl", set(qrels))
    return BeirDataset(root.resolve().name, root, corpus, queries, qrels, split)


def subsample(
    data: BeirDataset,
    *,
    max_queries: int | None = None,
    sample_docs: int | None = None,
    seed: int = 0,
    work_dir: str | Path = "~/.cache/leaf-mongo/eval",
) -> BeirDataset:
    """A smaller evaluation for notebooks and tests, reproducible from ``seed``.

    ``max_queries``: a seeded random choice of the split's queries. ``sample_docs``: a corpus of that many
    documents keeping every document judged for the chosen queries (so their relevant documents can still
    be found) plus a seeded random sample of the others, written as ``corpus.jsonl`` under ``work_dir``
    (outside any repository; same records, so cached teacher outputs still apply).
    """
    qids = sorted(data.qrels)
    if max_queries is not None and max_queries < len(qids):
        qids = sorted(random.Random(seed).sample(qids, max_queries))
    qrels = {q: data.qrels[q] for q in qids}
    queries = {q: data.queries[q] for q in qids}
    out = BeirDataset(data.name, data.root, data.corpus_path, queries, qrels, data.split)
    if sample_docs is None:
        return out
    ids = [str(r["_id"]) for r in iter_corpus(data.corpus_path)]
    if sample_docs >= len(ids):
        out.corpus_docs = len(ids)
        return out
    judged = {d for q in qids for d in qrels[q]} & set(ids)
    others = sorted(set(ids) - judged)
    extra = max(0, sample_docs - len(judged))
    keep = judged | set(random.Random(seed).sample(others, min(extra, len(others))))
    st = data.corpus_path.stat()
    fingerprint = _digest(data.corpus_path.resolve(), st.st_size, st.st_mtime_ns, *sorted(keep))[:12]
    folder = Path(work_dir).expanduser() / f"{_slug(data.name, 24) or 'dataset'}-{fingerprint}"
    path = folder / "corpus.jsonl"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".corpus.{os.getpid()}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            for rec in iter_corpus(data.corpus_path):
                if str(rec["_id"]) in keep:
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        tmp.replace(path)
    out.corpus_path = path
    out.sampled = True
    out.corpus_docs = len(keep)
    return out


# ---------------------------------------------------------------------------------------------- results


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

    def latency(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        return float(np.percentile(np.asarray(self.latencies_ms), q))

    def to_json(self) -> dict[str, Any]:
        def r(x: float | None, n: int = 4) -> float | None:
            return None if x is None else round(x, n)

        out: dict[str, Any] = {
            "mode": self.mode,
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


def index_bytes(spec: VectorSpec) -> int:
    """Bytes per vector in the representation the index searches (automatic quantization shrinks it)."""
    if spec.dtype == "float32" and spec.quantization == "scalar":
        return spec.dimensions
    if spec.dtype == "float32" and spec.quantization == "binary":
        return spec.dimensions // 8
    return spec.bytes_per_vector


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


def _model_label(name: str) -> str:
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
    slug = _slug(_model_label(doc_model), 32) or "model"
    return f"eval_{data.tag}_{slug}-{_digest(*parts)[:6]}_{spec.dimensions}_{spec.dtype}_{spec.quantization}"


# ---------------------------------------------------------------------------------------------- calibration


def calibrate_int8(
    corpus_path: Path, settings: LeafMongoSettings, *, sample: int = 4000, seed: int = 0, tail: float = 0.001
) -> tuple[float, float]:
    """An int8 range for ``settings``' document model and dimensions, from corpus chunk embeddings only.

    The profile's fixed range (±0.3) was published for one model; other models spread their components
    differently. Takes the ``tail`` and ``1 - tail`` quantiles of all components of (up to ``sample``) corpus
    chunks, embedded exactly as ingest embeds them (same chunker, truncation and renormalization, and the
    embedding cache, so ingest does not pay twice). Queries are never looked at.
    """
    from leaf_mongo.chunking import Chunker
    from leaf_mongo.encoders import VectorEncoder
    from leaf_mongo.loaders import SourceFile, discover, load

    spec = spec_from_settings(settings.model_copy(update={"dtype": "float32", "quantization": "none"}))
    encoder = VectorEncoder(spec, device=settings.device, cache_dir=settings.embedding_cache)
    teacher = encoder.teacher
    chunker = Chunker.for_model(teacher, settings.chunk_size, settings.chunk_overlap)
    files = [f for f in discover([corpus_path]) if isinstance(f, SourceFile)]
    if not files:
        raise LeafMongoError(f"cannot read corpus {corpus_path} for int8 calibration")
    texts = [c.text for f in files for c in chunker.chunk(load(f), f.format)]
    if len(texts) > sample:
        texts = random.Random(seed).sample(texts, sample)
    emb = encoder.embed_documents(texts, batch_size=settings.batch_size)
    lo, hi = np.quantile(emb, [tail, 1.0 - tail])
    return round(float(lo), 4), round(float(hi), 4)


# ---------------------------------------------------------------------------------------------- running


def _server_kind(client: MongoClient[Any]) -> str:
    try:
        info = client.admin.command("buildInfo")
    except Exception:  # pragma: no cover - buildInfo is always allowed
        return "unknown"
    if info.get("gitVersion") == "leaf-mongo-emulator":
        return "leaf-mongo emulator (exact brute-force search; index quantization not simulated)"
    return f"MongoDB {info.get('version', '?')}"


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


def run_eval(
    dataset: str | Path | BeirDataset,
    *,
    settings: LeafMongoSettings | None = None,
    modes: Sequence[str] = MODES,
    dimensions: Sequence[int | str] = ("full",),
    dtypes: Sequence[str] = ("float32",),
    quantizations: Sequence[str] = ("none",),
    k: int = 10,
    depth: int = DEFAULT_DEPTH,
    max_queries: int | None = None,
    sample_docs: int | None = None,
    seed: int = 0,
    int8_range: str | tuple[float, float] | None = None,
    exact: bool = False,
    use_cache: bool = True,
    database: str = DEFAULT_DATABASE,
    client: MongoClient[Any] | None = None,
    emulator: bool = False,
    on_event: Event | None = None,
) -> EvalReport:
    """Evaluate every mode on every legal (dimensions, dtype, quantization) point; see the module docstring.

    ``settings`` supplies the server, the models (``teacher_model``, ``leaf_model``, ``query_prompt``),
    chunking and the embedding cache folder (default :data:`DEFAULT_CACHE`; ``use_cache=False`` turns it
    off). ``dimensions`` takes integers, ``"full"`` and ``"half"`` (of each document model).
    ``int8_range``: ``None`` for the settings' (or profile's) range, ``(lo, hi)``, or ``"calibrate"``
    (:func:`calibrate_int8`). ``emulator=True`` runs against an in-process :class:`MongoEmulator`.
    """
    start = time.perf_counter()
    emit: Event = on_event or (lambda _e, _d: None)
    bad_modes = [m for m in modes if m not in MODES]
    if bad_modes:
        raise SettingsError("modes", f"{bad_modes[0]!r} is not a mode; allowed: {', '.join(MODES)}")
    for name, values, allowed in (("dtype", dtypes, DTYPES), ("quantization", quantizations, QUANTIZATIONS)):
        for v in values:
            if v not in allowed:
                raise SettingsError(name, f"{v!r} is not allowed; allowed: {', '.join(allowed)}")
    if not 1 <= k <= depth:
        raise SettingsError("k", f"{k} is out of range; allowed: 1..{depth} (the retrieval depth)")
    if isinstance(int8_range, str) and int8_range != "calibrate":
        raise SettingsError("int8_range", f"{int8_range!r}: allowed: calibrate, or a (min, max) pair")

    base = settings or load_settings()
    cache_dir = (base.embedding_cache or DEFAULT_CACHE) if use_cache else None
    base = base.model_copy(update={"embedding_cache": str(Path(cache_dir).expanduser()) if cache_dir else None})

    data = dataset if isinstance(dataset, BeirDataset) else load_beir(dataset)
    if max_queries is not None or sample_docs is not None:
        data = subsample(data, max_queries=max_queries, sample_docs=sample_docs, seed=seed)
    emit("dataset", {"name": data.name, "queries": len(data.queries), "corpus": str(data.corpus_path)})

    with contextlib.ExitStack() as stack:
        if client is None:
            from pymongo import MongoClient

            uri = base.uri.get_secret_value()
            if emulator:
                from leaf_mongo.testing import MongoEmulator

                uri = stack.enter_context(MongoEmulator(port=0, index_build_delay=0.0)).uri
            client = stack.enter_context(MongoClient(uri, serverSelectionTimeoutMS=base.server_timeout_ms))
        from leaf_mongo.connection import check_server

        check_server(client)
        server = _server_kind(client)
        grid = list(
            itertools.product(
                list(dict.fromkeys(dimensions)), list(dict.fromkeys(dtypes)), list(dict.fromkeys(quantizations))
            )
        )
        runner = _Grid(
            data,
            base,
            client,
            k=k,
            depth=depth,
            int8_range=int8_range,
            exact=exact,
            database=database,
            emulated="emulator" in server,
            emit=emit,
        )
        results = runner.run(list(dict.fromkeys(modes)), grid)
    return EvalReport(data.name, data.split, server, results, time.perf_counter() - start)


class _Grid:
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
    ) -> None:
        from leaf_mongo.profiles import PROFILES
        from leaf_mongo.spec import resolved_teacher

        self.data, self.client, self.k, self.depth = data, client, k, depth
        self.int8_range, self.exact, self.database = int8_range, exact, database
        self.emulated, self.emit = emulated, emit
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
                points = [EvalResult(m, dims_token, dtype, quant, doc_model=doc_model) for m in doc_modes]
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
        from leaf_mongo.encoders import VectorEncoder

        out: dict[str, str] = {}
        if "asymmetric" in modes:
            try:
                VectorEncoder(spec, query_mode="asymmetric", device=s.device).check_query_model()
            except SpecMismatchError as exc:
                out["asymmetric"] = f"models cannot be compared: {exc}"
        return out

    def _skip(self, points: list[EvalResult], reason: str, spec: VectorSpec | None = None) -> None:
        for p in points:
            p.status, p.reason = "skipped", reason
            if spec is not None:
                p.dimensions = spec.dimensions
            self.results.append(p)
            self.emit("result", {"result": p})

    def _evaluate(self, points: list[EvalResult], s: LeafMongoSettings, spec: VectorSpec) -> None:
        from leaf_mongo.ingest import ingest
        from leaf_mongo.retriever import LeafRetriever

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
            retriever = LeafRetriever(
                collection=collection,
                index_name=s.index_name,
                k=min(MAX_K, self.depth),
                query_mode="teacher" if p.mode == "teacher" else "asymmetric",
                exact=self.exact,
                num_candidates_factor=s.num_candidates_factor,
                post_filter_pipeline=[{"$project": {"record_id": 1, "score": 1}}],  # ids and scores suffice
                device=s.device,
                leaf_backend=s.leaf_backend,
                backend_threads=s.backend_threads,
            )
            label = f"{p.mode} {spec.dimensions} {spec.dtype} {spec.quantization}"
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
            p.query_model = spec.teacher_model if p.mode == "teacher" else spec.leaf_model
            p.query_backend = s.leaf_backend
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
