"""Ingest at corpus scale: memory, resumption, worker processes, Ray (called by ``benchmarks/ingest.py``).

    python benchmarks/ingest.py --records 10000 100000     # peak RSS per corpus size (tiny model)
    python benchmarks/ingest.py --kill 20000                # SIGKILL at ~50 %, re-run, compare with a clean run
    python benchmarks/ingest.py --workers 2                 # 1 vs N CPU encoder processes (real model, SciFact)
    python benchmarks/ingest.py --ray                       # the Ray path on a local 2-CPU instance vs local

Every ingest runs in its own process against the emulator in another process (``python -m leaf_mongo.testing``),
so a run's peak RSS (``ru_maxrss``) is ingest's alone: reading, chunking, encoding, writing; not the stored data.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORDS = [
    *"river mountain database vector index protein cell galaxy market poem engine quantum bread forest".split(),
    *"cloud harbor violin theorem glacier lantern maple quartz ember stone signal orbit canyon meadow".split(),
]

DRIVER = """
import json, resource, sys
from leaf_mongo.ingest import ingest
from leaf_mongo.settings import load_settings

def on_event(event, data):
    if event == "chunks_encoded":
        print(json.dumps({"event": event, **data}), flush=True)

report = ingest([sys.argv[1]], load_settings(), on_event=on_event)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"event": "finished", "peak_rss_mb": round(peak, 1), **report.to_json()}), flush=True)
"""


@contextlib.contextmanager
def emulator() -> Iterator[str]:
    with emulator_process() as (uri, _pid):
        yield uri


@contextlib.contextmanager
def emulator_process() -> Iterator[tuple[str, int]]:
    """``python -m leaf_mongo.testing`` in its own process: its URI and pid (to account its CPU)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaf_mongo.testing", "--port", "0", "--index-delay", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    uri = line.rsplit(" ", 1)[-1].strip()
    try:
        yield uri, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def synthetic(path: Path, n: int, seed: int = 0) -> Path:
    """BEIR-shaped records of 15-45 words (about one 64-token chunk each)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for i in range(n):
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(15, 45)))) + "."
            fh.write(json.dumps({"_id": f"d{i}", "title": f"Doc {i % 97}", "text": text}) + "\n")
    return path


def scifact_sample(path: Path, scifact: Path, docs: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(scifact / "corpus.jsonl.gz", "rt", encoding="utf-8") as src:
        path.write_text("".join(itertools.islice(src, docs)), encoding="utf-8")
    return path


def tiny_model(folder: Path) -> str:
    sys.path.insert(0, str(ROOT))
    from tests.tiny_models import make_tiny_model

    return str(make_tiny_model(folder, dimensions=32, hidden=16, seed=0))


def env_for(uri: str, db: str, model: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "LEAF_MONGO_URI": uri,
        "LEAF_MONGO_DATABASE": db,
        "LEAF_MONGO_COLLECTION": "docs",
        "LEAF_MONGO_TEACHER_MODEL": model,
        "LEAF_MONGO_LEAF_MODEL": model,
        "LEAF_MONGO_QUERY_PROMPT": "",
        "LEAF_MONGO_INDEX_WAIT_SECONDS": "600",
        **extra,
    }


def run_ingest(folder: Path, env: dict[str, str], kill_after_chunks: int | None = None) -> dict[str, Any]:
    """One ingest process; returns its final report, or {"killed": True, "encoded": n} when killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    encoded = 0
    for line in proc.stdout:
        ev = json.loads(line)
        if ev["event"] == "finished":
            proc.wait()
            return ev
        encoded += ev["n"]
        if kill_after_chunks is not None and encoded >= kill_after_chunks:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return {"killed": True, "encoded_events": encoded}
    raise RuntimeError(f"ingest exited with {proc.wait()}")


def docs_of(uri: str, db: str) -> dict[str, dict[str, Any]]:
    from pymongo import MongoClient

    with MongoClient(uri) as client:
        return {d["_id"]: d for d in client[db]["docs"].find()}


def memory(sizes: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"benchmark": "ingest peak RSS by corpus size (tiny model, emulator in another process)"}
    runs = []
    with tempfile.TemporaryDirectory() as tmp, emulator() as uri:
        model = tiny_model(Path(tmp) / "tiny")
        for n in sizes:
            folder = Path(tmp) / f"c{n}"
            synthetic(folder / "corpus.jsonl", n)
            env = env_for(uri, f"mem{n}", model, LEAF_MONGO_CHUNK_SIZE="62", LEAF_MONGO_CHUNK_OVERLAP="8")
            rep = run_ingest(folder, env)
            size_mb = (folder / "corpus.jsonl").stat().st_size / 2**20
            runs.append({"records": n, "file_mb": round(size_mb, 1), "chunks": rep["chunks_written"],
                         "seconds": rep["seconds"], "peak_rss_mb": rep["peak_rss_mb"]})  # fmt: skip
            print(json.dumps(runs[-1]), flush=True)
    out["runs"] = runs
    if len(runs) >= 2:
        out["rss_growth_mb"] = round(runs[-1]["peak_rss_mb"] - runs[0]["peak_rss_mb"], 1)
        out["target_growth_mb"] = 150
    return out


def kill_and_resume(n: int) -> dict[str, Any]:
    window, batch = 4096, 64
    with tempfile.TemporaryDirectory() as tmp, emulator() as uri:
        model = tiny_model(Path(tmp) / "tiny")
        folder = Path(tmp) / "c"
        synthetic(folder / "corpus.jsonl", n, seed=1)
        extra = {"LEAF_MONGO_CHUNK_SIZE": "62", "LEAF_MONGO_CHUNK_OVERLAP": "8",
                 "LEAF_MONGO_WINDOW_SIZE": str(window), "LEAF_MONGO_BATCH_SIZE": str(batch)}  # fmt: skip
        clean = run_ingest(folder, env_for(uri, "clean", model, **extra))
        total = clean["chunks_written"]
        env = env_for(uri, "killed", model, **extra)
        killed = run_ingest(folder, env, kill_after_chunks=total // 2)
        durable = len(docs_of(uri, "killed"))
        rerun = run_ingest(folder, env)
        ref, got = docs_of(uri, "clean"), docs_of(uri, "killed")
        from leaf_mongo.spec.vectors import from_binary

        same_ids = set(ref) == set(got)
        same_fields = same_ids and all(
            {k: v for k, v in got[i].items() if k != "embedding"} == {k: v for k, v in d.items() if k != "embedding"}
            for i, d in ref.items()
        )
        max_diff = max(
            float(np.abs(from_binary(got[i]["embedding"]) - from_binary(d["embedding"])).max()) for i, d in ref.items()
        ) if same_ids else None  # fmt: skip
    redone = rerun["chunks_encoded"] - (total - durable)
    return {
        "benchmark": "SIGKILL at ~50 % of a record file, then re-run (tiny model)",
        "records": n,
        "chunks": total,
        "window_size": window,
        "batch_size": batch,
        "encoded_before_kill_events": killed["encoded_events"],
        "chunks_stored_when_killed": durable,
        "rerun_chunks_encoded": rerun["chunks_encoded"],
        "rerun_chunks_written": rerun["chunks_written"],
        "rerun_encoded_again": redone,
        "bound_window_plus_batch": window + batch,
        "within_bound": redone <= window + batch,
        "collection_equals_clean_run": bool(same_fields),
        "max_vector_difference": max_diff,
    }


def workers(n: int, scifact: Path, docs: int, teacher: str) -> dict[str, Any]:
    runs = {}
    with tempfile.TemporaryDirectory() as tmp, emulator() as uri:
        folder = Path(tmp) / "c"
        scifact_sample(folder / "corpus.jsonl", scifact, docs)
        for w in (1, n):
            extra = {"LEAF_MONGO_WORKERS": str(w)} if w > 1 else {}
            rep = run_ingest(folder, env_for(uri, f"w{w}", teacher, **extra))
            runs[w] = rep
            print(json.dumps({"workers": w, "seconds": rep["seconds"], "chunks": rep["chunks_written"]}), flush=True)
        a, b = docs_of(uri, "w1"), docs_of(uri, f"w{n}")
        from leaf_mongo.spec.vectors import from_binary

        diff = max(float(np.abs(from_binary(a[i]["embedding"]) - from_binary(b[i]["embedding"])).max()) for i in a)
    one, many = runs[1], runs[n]
    return {
        "benchmark": f"1 vs {n} CPU encoder processes (SciFact sample, emulator)",
        "teacher": teacher,
        "documents": docs,
        "chunks": one["chunks_written"],
        "cpu_count": os.cpu_count(),
        "one_process_seconds": one["seconds"],
        f"{n}_workers_seconds": many["seconds"],
        "speedup": round(one["seconds"] / many["seconds"], 3),
        "same_ids": set(a) == set(b),
        "max_vector_difference": diff,
        "note": "seconds include starting the worker processes (each loads the model); the machine is shared",
    }


def ray_path(scifact: Path, docs: int, teacher: str) -> dict[str, Any]:
    import ray

    sys.path.insert(0, str(ROOT))
    from leaf_mongo.ingest import ingest
    from leaf_mongo.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp, emulator() as uri:
        folder = Path(tmp) / "c"
        scifact_sample(folder / "corpus.jsonl", scifact, docs)
        settings = load_settings(uri=uri, database="ray", teacher_model=teacher, leaf_model=teacher, query_prompt="")
        local = ingest([folder], settings, collection="local")
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        init_s = time.perf_counter() - t0
        try:
            remote = ingest([folder], settings, collection="ray", ray="local")
            again = ingest([folder], settings, collection="ray", ray="local")
        finally:
            ray.shutdown()
        a, b = docs_of_coll(uri, "ray", "local"), docs_of_coll(uri, "ray", "ray")
        from leaf_mongo.spec.vectors import from_binary

        diff = max(float(np.abs(from_binary(a[i]["embedding"]) - from_binary(b[i]["embedding"])).max()) for i in a)
    return {
        "benchmark": "Ray path on a local 2-CPU Ray instance vs the local path (SciFact sample, emulator)",
        "teacher": teacher,
        "documents": docs,
        "chunks": local.chunks_written,
        "local_seconds": round(local.seconds, 2),
        "ray_init_seconds": round(init_s, 2),
        "ray_seconds": round(remote.seconds, 2),
        "ray_chunks_per_second": round(remote.chunks_per_second, 2),
        "local_chunks_per_second": round(local.chunks_per_second, 2),
        "same_ids": set(a) == set(b),
        "max_vector_difference": diff,
        "rerun_chunks_written": again.chunks_written,
    }


def docs_of_coll(uri: str, db: str, coll: str) -> dict[str, dict[str, Any]]:
    from pymongo import MongoClient

    with MongoClient(uri) as client:
        return {d["_id"]: d for d in client[db][coll].find()}
