"""Benchmark the leaf-mongo emulator through pymongo (not a test; run by hand).

Measures, over a real socket, for float32 / int8 / packed-bit BinData storage:
insert throughput of N x D documents (insert_many) and ``$vectorSearch`` latency
(median and p99 over Q queries, ANN syntax, limit 10). Targets from issue 3:
search < 100 ms and 10,000 inserts < 10 s. Writes benchmarks/results/emulator.json.

    .venv/bin/python benchmarks/emulator.py [--docs 10000] [--dims 768] [--queries 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from bson.binary import Binary, BinaryVectorDtype
from pymongo import MongoClient
from pymongo.operations import SearchIndexModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine  # noqa: E402
from leaf_mongo.testing import MongoEmulator, wait_for_search_index  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "emulator.json"


def _encode(kind: str, vec: np.ndarray) -> Binary:
    if kind == "float32":
        return Binary.from_vector(vec.astype(np.float32).tolist(), BinaryVectorDtype.FLOAT32)
    if kind == "int8":
        q = np.clip(np.round(vec * 127), -128, 127).astype(np.int8)
        return Binary.from_vector(q.tolist(), BinaryVectorDtype.INT8)
    packed = np.packbits(vec > 0)
    return Binary.from_vector(packed.tolist(), BinaryVectorDtype.PACKED_BIT)  # list: pymongo numpy bug


def run_case(client: MongoClient, kind: str, vectors: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    n, dims = vectors.shape
    coll = client.bench[kind]
    coll.drop()
    similarity = "euclidean" if kind == "packed_bit" else "cosine"
    coll.create_search_index(
        SearchIndexModel(
            {
                "fields": [
                    {"type": "vector", "path": "embedding", "numDimensions": dims, "similarity": similarity},
                    {"type": "filter", "path": "group"},
                ]
            },
            name="vi",
            type="vectorSearch",
        )
    )
    docs = [{"_id": i, "group": i % 10, "embedding": _encode(kind, vectors[i])} for i in range(n)]
    start = time.perf_counter()
    coll.insert_many(docs, ordered=False)
    insert_s = time.perf_counter() - start
    wait_for_search_index(coll, "vi", 30)

    def search(q: np.ndarray, flt: dict[str, Any] | None = None) -> float:
        stage: dict[str, Any] = {
            "index": "vi",
            "path": "embedding",
            "queryVector": _encode(kind, q),
            "numCandidates": 200,
            "limit": 10,
        }
        if flt:
            stage["filter"] = flt
        t0 = time.perf_counter()
        hits = list(coll.aggregate([{"$vectorSearch": stage}, {"$project": {"embedding": 0}}]))
        elapsed = time.perf_counter() - t0
        assert len(hits) == 10, hits
        return elapsed

    search(queries[0])  # warm-up
    lat = sorted(search(q) for q in queries)
    flat = sorted(search(q, {"group": 3}) for q in queries[:10])
    return {
        "storage": kind,
        "docs": n,
        "dims": dims,
        "insert_seconds": round(insert_s, 3),
        "insert_docs_per_second": round(n / insert_s, 1),
        "search_median_ms": round(statistics.median(lat) * 1000, 2),
        "search_p99_ms": round(lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))] * 1000, 2),
        "search_filtered_median_ms": round(statistics.median(flat) * 1000, 2),
        "queries": len(lat),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--dims", type=int, default=768)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.docs, args.dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((args.queries, args.dims)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    rows = []
    with MongoEmulator(port=0, index_build_delay=0.0) as emu, MongoClient(emu.uri) as client:
        for kind in ("float32", "int8", "packed_bit"):
            rows.append(run_case(client, kind, vectors, queries))

    header = (
        f"{'storage':<11} {'docs':>6} {'dims':>5} {'insert s':>9} {'docs/s':>8} "
        f"{'median ms':>10} {'p99 ms':>8} {'filt. ms':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['storage']:<11} {r['docs']:>6} {r['dims']:>5} {r['insert_seconds']:>9.2f} "
            f"{r['insert_docs_per_second']:>8.0f} {r['search_median_ms']:>10.2f} {r['search_p99_ms']:>8.2f} "
            f"{r['search_filtered_median_ms']:>9.2f}"
        )
    result = {
        "benchmark": "leaf_mongo.testing emulator via pymongo (search: limit 10, numCandidates 200)",
        "machine": machine(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
