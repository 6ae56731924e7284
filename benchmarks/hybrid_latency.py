"""Query latency per search mode on SciFact, modes interleaved query by query (fair on a shared machine).

The corpus goes through ingest (cached teacher vectors) into an in-process emulator, or ``--uri``; then every
test query runs once in each mode, in a shuffled order per query, through ``LeafRetriever.invoke`` with the
eval's settings (k = chunks for 100 documents, ids and scores returned). Sequential runs per mode (as in
``quality.py``) see whatever load the machine had at the time; interleaving gives every mode the same load.
Writes benchmarks/results/hybrid_latency.json.

    python benchmarks/hybrid_latency.py --teacher-model MINILM --leaf-model MINILM
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import RESULTS, machine  # noqa: E402
from benchmarks.quality import SCIFACT  # noqa: E402
from leaf_mongo.evaluation import DEFAULT_CACHE, WARMUP_QUERY, load_beir  # noqa: E402
from leaf_mongo.settings import load_settings  # noqa: E402

MODES: dict[str, dict[str, Any]] = {
    "vector": {"search_mode": "vector"},
    "fulltext": {"search_mode": "fulltext"},
    "hybrid": {"search_mode": "hybrid"},
    "hybrid (client fusion)": {"search_mode": "hybrid", "fusion": "client"},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, default=SCIFACT)
    ap.add_argument("--teacher-model", required=True)
    ap.add_argument("--leaf-model", required=True)
    ap.add_argument("--k", type=int, default=256, help="chunks per query (the eval asks ~256 for 100 documents)")
    ap.add_argument("--uri", default=None)
    ap.add_argument("--out", type=Path, default=RESULTS / "hybrid_latency.json")
    args = ap.parse_args()

    from pymongo import MongoClient

    from leaf_mongo import LeafRetriever, ingest
    from leaf_mongo.testing import MongoEmulator

    data = load_beir(args.dataset)
    settings = load_settings(
        uri=args.uri,
        teacher_model=args.teacher_model,
        leaf_model=args.leaf_model,
        query_prompt="",
        collection="scifact_latency",
        database="leaf_mongo_bench",
        embedding_cache=os.environ.get("LEAF_MONGO_EMBEDDING_CACHE") or str(Path(DEFAULT_CACHE).expanduser()),
    )
    emulator = None if args.uri else MongoEmulator(port=0).start()
    uri = emulator.uri if emulator else settings.uri.get_secret_value()
    client: MongoClient[Any] = MongoClient(uri)
    try:
        report = ingest([data.corpus_path], settings, client=client)
        coll = client[settings.database][settings.collection]
        post = [{"$project": {"record_id": 1, "score": 1}}]
        retrievers = {
            name: LeafRetriever(collection=coll, k=args.k, post_filter_pipeline=post, **opts)
            for name, opts in MODES.items()
        }
        for r in retrievers.values():
            r.invoke(WARMUP_QUERY)
        times: dict[str, list[float]] = {name: [] for name in MODES}
        load_start = os.getloadavg()
        for i, query in enumerate(data.queries.values()):
            order = list(MODES)
            random.Random(i).shuffle(order)
            for name in order:
                t0 = time.perf_counter()
                retrievers[name].invoke(query)
                times[name].append(1000.0 * (time.perf_counter() - t0))
        rows = []
        vector_p50 = statistics.median(times["vector"])
        for name, t in times.items():
            p50 = statistics.median(t)
            rows.append(
                {
                    "mode": name,
                    "queries": len(t),
                    "latency_ms_p50": round(p50, 2),
                    "latency_ms_p99": round(sorted(t)[int(0.99 * (len(t) - 1))], 2),
                    "p50_vs_vector": round(p50 / vector_p50, 3),
                }
            )
            print(f"{name}: p50 {p50:.1f} ms ({p50 / vector_p50:.2f}x vector)")
        payload = {
            "machine": {**machine(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
            "benchmark": "SciFact test queries, every mode per query in shuffled order, end to end through invoke",
            "server": "leaf-mongo emulator" if emulator else "MongoDB",
            "settings": {"teacher_model": args.teacher_model, "leaf_model": args.leaf_model, "k": args.k},
            "corpus_chunks": coll.count_documents({}),
            "ingest_seconds": round(report.seconds, 1),
            "results": rows,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.out}")
    finally:
        client.close()
        if emulator:
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
