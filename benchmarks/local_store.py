"""The local store's limits, measured (issue 22): restart, memory, search latency, read-back, ingest throughput.

    python benchmarks/local_store.py [--scale 10000 100000] [--readback 20000 100000] [--ingest-docs 60]

- scale (768-d random unit vectors, BinData float32, a vectorSearch index with one filter field): load time,
  the server's RSS, ``$vectorSearch`` p50/p99 (limit 10, numCandidates 100, 50 queries), the store's size on disk;
  then a graceful stop and ``ensure_server`` again: **restart time** (process start, SQLite load, vector matrices
  rebuilt, first ``ping``) and RSS after it;
- read-back: ``find({})`` of N small documents with 384-d vectors (the issue's case), local store and in-memory
  emulator, each in its own process;
- ingest throughput with a real teacher (all-mpnet-base-v2) on SciFact documents: local store vs the in-memory
  emulator (each its own process), runs alternating, a fresh collection each; ratio = median store chunks/s /
  median emulator chunks/s (target >= 0.95).
Writes benchmarks/results/local_store.json (and local_store_ingest.json).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bson.binary import Binary, BinaryVectorDtype
from pymongo import MongoClient
from pymongo.operations import SearchIndexModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import write_result  # noqa: E402
from benchmarks.ingest import default_teacher  # noqa: E402
from benchmarks.ingest_scale import emulator_process  # noqa: E402
from leaf_mongo.local import ensure_server, status, stop  # noqa: E402
from leaf_mongo.local.files import read_state  # noqa: E402
from leaf_mongo.testing import wait_for_search_index  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _unit(rng: np.random.Generator, n: int, dims: int) -> np.ndarray:
    vecs = rng.standard_normal((n, dims)).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def _fill(client: MongoClient, n: int, dims: int, rng: np.random.Generator) -> None:
    coll = client.bench.chunks
    for start in range(0, n, 2000):
        vecs = _unit(rng, min(2000, n - start), dims)
        coll.insert_many([
            {"_id": f"c{start + i}", "text": f"chunk {start + i}", "group": (start + i) % 10,
             "embedding": Binary.from_vector(v.tolist(), BinaryVectorDtype.FLOAT32)}
            for i, v in enumerate(vecs)
        ])  # fmt: skip


def _p50(client: MongoClient, dims: int, rng: np.random.Generator, queries: int = 50) -> dict[str, float]:
    coll = client.bench.chunks
    times = []
    for q in _unit(rng, queries, dims):
        vector = Binary.from_vector(q.tolist(), BinaryVectorDtype.FLOAT32)
        stage = {"index": "vi", "path": "embedding", "queryVector": vector, "limit": 10, "numCandidates": 100}
        t0 = time.perf_counter()
        hits = list(coll.aggregate([{"$vectorSearch": stage}, {"$project": {"embedding": 0}}]))
        times.append((time.perf_counter() - t0) * 1000)
        assert len(hits) == 10
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(times[int(0.99 * (len(times) - 1))], 2)}


def scale(n: int, dims: int = 768) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    with tempfile.TemporaryDirectory(prefix="leaf-mongo-bench-") as tmp:
        folder = Path(tmp) / "store"
        client: MongoClient = MongoClient(ensure_server(folder))
        t0 = time.perf_counter()
        _fill(client, n, dims, rng)
        load_seconds = time.perf_counter() - t0
        fields = [{"type": "vector", "path": "embedding", "numDimensions": dims, "similarity": "cosine"},
                  {"type": "filter", "path": "group"}]  # fmt: skip
        client.bench.chunks.create_search_index(SearchIndexModel({"fields": fields}, name="vi", type="vectorSearch"))
        wait_for_search_index(client.bench.chunks, "vi", 600)
        before = {"rss_mb": rss_mb(read_state(folder).pid), **_p50(client, dims, rng)}  # type: ignore[union-attr]
        client.close()
        disk = status(folder)["disk_bytes"]  # type: ignore[index]
        stop(folder, timeout=120)
        t0 = time.perf_counter()
        client = MongoClient(ensure_server(folder, timeout=600))
        restart = time.perf_counter() - t0
        pid = read_state(folder).pid  # type: ignore[union-attr]
        after = {"rss_mb": rss_mb(pid), **_p50(client, dims, rng)}
        assert client.bench.chunks.estimated_document_count() == n
        client.close()
        stop(folder, timeout=120)
    return {"chunks": n, "dimensions": dims, "insert_seconds": round(load_seconds, 2),
            "disk_mb": round(disk / 1e6, 1), "restart_seconds": round(restart, 2),
            "before_restart": before, "after_restart": after}  # fmt: skip


def _readback_once(uri: str, n: int) -> float:
    client: MongoClient = MongoClient(uri)
    coll = client.bench.readback
    coll.drop()
    rng = np.random.default_rng(1)
    for start in range(0, n, 2000):
        vecs = rng.standard_normal((min(2000, n - start), 384)).astype(np.float32)
        coll.insert_many([{"_id": f"d{start + i}", "text": f"text {start + i}",
                           "embedding": Binary.from_vector(v.tolist(), BinaryVectorDtype.FLOAT32)}
                          for i, v in enumerate(vecs)])  # fmt: skip
    t0 = time.perf_counter()
    assert sum(1 for _ in coll.find({})) == n
    seconds = time.perf_counter() - t0
    coll.drop()
    client.close()
    return round(seconds, 2)


def readback(sizes: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"local_store": {}, "emulator": {}}
    with tempfile.TemporaryDirectory(prefix="leaf-mongo-bench-") as tmp:
        folder = Path(tmp) / "store"
        uri = ensure_server(folder)
        for n in sizes:
            out["local_store"][str(n)] = _readback_once(uri, n)
        stop(folder, timeout=120)
    with emulator_process() as (uri, _):
        for n in sizes:
            out["emulator"][str(n)] = _readback_once(uri, n)
    return out


def _ingest_seconds(uri: str, corpus: Path, teacher: str, name: str) -> tuple[float, int]:
    from leaf_mongo.ingest import Ingestor
    from leaf_mongo.settings import load_settings

    settings = load_settings(uri=uri, database="bench", collection=name, teacher_model=teacher, leaf_model=teacher,
                             query_prompt="", embedding_cache=None)  # fmt: skip
    ingestor = Ingestor(settings)
    ingestor.encoder.teacher  # noqa: B018 - load the model outside the timing (it is cached per process)
    t0 = time.perf_counter()
    report = ingestor.run([corpus.parent])
    seconds = time.perf_counter() - t0
    ingestor.close()
    return seconds, report.chunks_written


def ingest(docs: int, repeats: int, scifact: Path, teacher: str) -> dict[str, Any]:
    runs: dict[str, list[float]] = {"local_store": [], "emulator": []}
    with tempfile.TemporaryDirectory(prefix="leaf-mongo-bench-") as tmp:
        corpus = Path(tmp) / "docs" / "corpus.jsonl"
        corpus.parent.mkdir()
        with gzip.open(scifact / "corpus.jsonl.gz", "rt", encoding="utf-8") as src:
            corpus.write_text("".join(itertools.islice(src, docs)), encoding="utf-8")
        store_uri = ensure_server(Path(tmp) / "store")
        chunks = 0
        with emulator_process() as (emu_uri, _):
            for n in range(repeats):
                for kind, uri in (("local_store", store_uri), ("emulator", emu_uri)):
                    seconds, chunks = _ingest_seconds(uri, corpus, teacher, f"{kind}_{n}")
                    runs[kind].append(seconds)
                    print(
                        f"{kind} run {n + 1}: {chunks} chunks in {seconds:.1f} s ({chunks / seconds:.2f}/s)", flush=True
                    )
        stop(Path(tmp) / "store", timeout=120)
    store, emu = statistics.median(runs["local_store"]), statistics.median(runs["emulator"])
    return {"teacher": teacher, "documents": docs, "chunks": chunks, "repeats": repeats,
            "seconds": {k: [round(s, 2) for s in v] for k, v in runs.items()},
            "local_store_chunks_per_second": round(chunks / store, 3),
            "emulator_chunks_per_second": round(chunks / emu, 3),
            "throughput_ratio": round(emu / store, 3)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--readback", type=int, nargs="*", default=[20_000, 100_000])
    ap.add_argument("--ingest-docs", type=int, default=60, help="SciFact documents (0: skip the ingest comparison)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scifact", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/scifact")
    ap.add_argument("--teacher", default=default_teacher())
    args = ap.parse_args()
    result: dict[str, Any] = {"benchmark": "local store (leaf_mongo.local): scale, restart, read-back"}
    result["scale"] = [scale(n) for n in args.scale]
    print(json.dumps(result["scale"], indent=2), flush=True)
    result["readback_seconds"] = readback(args.readback)
    print(json.dumps(result["readback_seconds"], indent=2), flush=True)
    print(f"-> {write_result('local_store', result)}")
    if args.ingest_docs:
        ing = {"benchmark": "ingest throughput: local store vs in-memory emulator", **ingest(
            args.ingest_docs, args.repeats, args.scifact, args.teacher)}  # fmt: skip
        print(json.dumps(ing, indent=2))
        print(f"-> {write_result('local_store_ingest', ing)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
