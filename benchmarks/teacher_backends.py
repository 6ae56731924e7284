"""Teacher (document-side) throughput per backend on the same SciFact chunks, and each backend's cosine to torch.

Chunks are cut exactly as ingest cuts them (the teacher's tokenizer, 256-token chunks) from the first ``--docs``
SciFact documents; every backend encodes the same chunks through ``VectorEncoder.embed_documents`` (no cache),
side by side in one run. The export of each backend happens before its timing starts.

    .venv/bin/python benchmarks/teacher_backends.py [--docs 100] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


from benchmarks.common import RESULTS, machine  # noqa: E402
from leaf_mongo.ingest.chunking import Chunker  # noqa: E402
from leaf_mongo.ingest.discovery import discover  # noqa: E402
from leaf_mongo.ingest.loaders import load  # noqa: E402
from leaf_mongo.ingest.sources import SourceFile  # noqa: E402
from leaf_mongo.models.encoders import VectorEncoder  # noqa: E402
from leaf_mongo.spec import VectorSpec  # noqa: E402

SCIFACT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "scifact" / "corpus.jsonl.gz"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(Path.home() / ".cache" / "leaf-mongo-models" / "all-mpnet-base-v2"))
    ap.add_argument("--docs", type=int, default=100, help="SciFact documents to chunk")
    ap.add_argument("--backends", default="torch,onnx,onnx-int8,openvino,openvino-int8")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=RESULTS / "teacher_backends.json")
    args = ap.parse_args()

    import gzip
    import tempfile

    load_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample.jsonl"
        with gzip.open(SCIFACT, "rt", encoding="utf-8") as fh:
            sample.write_text("".join(line for _, line in zip(range(args.docs), fh, strict=False)))
        spec = VectorSpec(teacher_model=args.model, leaf_model=args.model, full_dimensions=768, dimensions=768)
        chunker = Chunker.for_model(VectorEncoder(spec).teacher, 256, 32)
        files = [f for f in discover([sample]) if isinstance(f, SourceFile)]
        texts = [c.text for f in files for c in chunker.chunk(load(f), f.format)]
    rows, reference = [], None
    for backend in args.backends.split(","):
        encoder = VectorEncoder(spec, teacher_backend=backend)
        encoder.embed_documents(texts[:2], batch_size=args.batch_size)  # export (once) and warm up, untimed
        t0 = time.perf_counter()
        emb = encoder.embed_documents(texts, batch_size=args.batch_size)
        seconds = time.perf_counter() - t0
        if reference is None:
            reference = emb
        cos = (emb * reference).sum(1)
        rows.append(
            {
                "backend": backend,
                "chunks": len(texts),
                "seconds": round(seconds, 2),
                "chunks_per_s": round(len(texts) / seconds, 2),
                "cosine_to_torch": {"mean": round(float(cos.mean()), 6), "min": round(float(cos.min()), 6)},
            }
        )
        print(f"{backend:14} {rows[-1]['chunks_per_s']:7.2f} chunks/s  cos min {cos.min():.5f}", flush=True)
    base = rows[0]["chunks_per_s"]
    for r in rows:
        r["speedup_vs_torch"] = round(r["chunks_per_s"] / base, 2)
    result = {
        "command": " ".join(["benchmarks/teacher_backends.py", *sys.argv[1:]]),
        "model": args.model,
        "machine": {**machine(), "load_average_at_start": load_start},
        "results": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
