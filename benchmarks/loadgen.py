"""A minimal HTTP/1.1 load generator on asyncio streams, for benchmarks/serve.py.

One keep-alive connection per concurrent client, requests written and responses read by hand (Content-Length
bodies only): it costs the two cores the servers share as little as possible, and the same for every server.
``closed_loop`` measures throughput and latency at a concurrency; ``open_loop`` offers a fixed request rate
whatever the answers (back-pressure), sampling a server process's RSS.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np


class Conn:
    """One HTTP/1.1 keep-alive connection; ``post`` returns (status, body)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"  # FastAPI (so the anchor and infinity) 422s without the type
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "throughput_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


async def closed_loop(port: int, path: str, bodies: list[bytes], concurrency: int, seconds: float) -> dict[str, Any]:
    """``concurrency`` connections, each sending its next request on the last answer, for ``seconds``."""
    conns = [Conn(port) for _ in range(concurrency)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    await asyncio.gather(*(c.post(path, bodies[0]) for c in conns))  # connect and warm up
    end = time.perf_counter() + seconds

    async def worker(k: int, conn: Conn) -> None:
        i = k
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            status, _ = await conn.post(path, bodies[i % len(bodies)])
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            i += concurrency

    start = time.perf_counter()
    await asyncio.gather(*(worker(k, c) for k, c in enumerate(conns)))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return {**summary(latencies, elapsed), "statuses": statuses}


async def open_loop(
    port: int, path: str, bodies: list[bytes], rate: float, seconds: float, pool: int, pid: int
) -> dict[str, Any]:
    """Requests arrive at ``rate``/s whatever the answers (up to ``pool`` in flight); RSS sampled twice a second."""
    conns: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(pool):
        conns.put_nowait(Conn(port))
    statuses: dict[str, int] = {}
    ok: list[float] = []
    rss: list[float] = [rss_mb(pid)]
    backlog = 0

    async def one(body: bytes) -> None:
        nonlocal backlog
        backlog += 1
        conn = await conns.get()
        backlog -= 1
        t0 = time.perf_counter()
        try:
            status, _ = await asyncio.wait_for(conn.post(path, body), 30.0)
            key = str(status)
            if status == 200:
                ok.append(time.perf_counter() - t0)
        except asyncio.TimeoutError:
            key, conn = "client_timeout", Conn(port)
        statuses[key] = statuses.get(key, 0) + 1
        conns.put_nowait(conn)

    tasks, start, sent, max_backlog = [], time.perf_counter(), 0, 0
    while (now := time.perf_counter()) - start < seconds:
        due = int((now - start) * rate)
        for _ in range(due - sent):
            tasks.append(asyncio.create_task(one(bodies[sent % len(bodies)])))
            sent += 1
        max_backlog = max(max_backlog, backlog)
        if len(rss) < (now - start) * 2:
            rss.append(rss_mb(pid))
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    rss.append(rss_mb(pid))
    elapsed = time.perf_counter() - start
    result = {"offered_per_s": round(rate, 1), "sent": sent, "statuses": statuses, "client_backlog_max": max_backlog}
    return result | {"answered_200": summary(ok, elapsed) if ok else None, "server_rss_mb": rss_track(rss)}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_track(rss: list[float]) -> dict[str, float]:
    return {"start": round(rss[0], 1), "end": round(rss[-1], 1), "max": round(max(rss), 1), "samples": len(rss)}
