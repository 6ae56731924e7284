"""mongot's own HTTP client (the JDK's ``java.net.http.HttpClient``, built as ``VoyageClient`` builds it) against
a running ``leaf-mongo serve``: HTTP_2 on ``http://`` (an ``Upgrade: h2c`` offer), no Content-Type, mongot's
four headers and body; responses parsed and decoded by mongot's rules (tests/java/MongotVoyageClient.java).

Vectors must equal sentence-transformers' ``encode_document`` / ``encode_query`` on the same model folder, then
MRL + renormalization, then the dtype: to 1e-5 for float, exactly for int8 and binary. Published layouts: an
mdbr-leaf-ir-like leaf with an arctic-like teacher, and an -asym Router (mdbr-leaf-mt-asym-like, no Normalize
on the teacher route, so renormalization matters).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.serve_helpers import (
    INDEXING_KEY,
    QUERY_KEY,
    ServeProcess,
    expected,
    st_tokens,
    voyage_body,
    write_key,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("java") is None or shutil.which("javac") is None,
        reason="the JDK (java, javac) is not installed: the mongot client test needs java.net.http.HttpClient",
    ),
]

JAVA_SRC = Path(__file__).parent / "java" / "MongotVoyageClient.java"
TEXTS = [
    "Jupiter is the largest planet in the solar system.",
    "volcanoes erupt when magma rises",
    "bees pollinate flowers and make honey " * 4,  # longer than the tiny models' 64 tokens: truncated
]
QUERIES = ["which planet is largest", "how do bees make honey"]
IR_RANGE, MT_RANGE = (-0.3, 0.3), (-1.0, 1.0)


@pytest.fixture(scope="module")
def java_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("java")
    subprocess.run(["javac", "-d", str(out), str(JAVA_SRC)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("keys")
    return [
        "--indexing-key-file", str(write_key(root / "indexing", INDEXING_KEY)),
        "--query-key-file", str(write_key(root / "query", QUERY_KEY)),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def ir_server(models: dict[str, str], keys: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    args = ["--teacher-model", models["arctic"], "--leaf-model", models["leaf-ir"], "--leaf-backend", "torch", *keys]
    server = ServeProcess(args, tmp_path_factory.mktemp("log") / "ir.log")
    yield server
    assert server.stop()


@pytest.fixture(scope="module")
def asym_server(models: dict[str, str], keys: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = models["mt-asym"]
    args = ["--profile", "mt", "--teacher-model", path, "--leaf-model", path, "--leaf-backend", "torch", *keys]
    server = ServeProcess(args, tmp_path_factory.mktemp("log") / "asym.log")
    yield server
    assert server.stop()


def run_jdk(java_client: Path, url: str, requests: list[tuple[str, str, str, str, str]], tmp: Path) -> list[Any]:
    """Send (key, model, tier, dtype, body) requests with the JDK client; its JSON report per request."""
    lines = []
    for n, (key, model, tier, dtype, body) in enumerate(requests):
        body_file = tmp / f"body{n}.json"
        body_file.write_text(body)
        lines.append("\t".join([key, model, tier, dtype, str(body_file)]))
    spec = tmp / "requests.tsv"
    spec.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        ["java", "-cp", str(java_client), "MongotVoyageClient", url + "/v1/embeddings", str(spec)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def error_text(report: dict[str, Any]) -> str:
    return base64.b64decode(report["body_b64"]).decode()


CASES = [  # (tier, dtype, output_dimension)
    ("document", "float", None),
    ("document", "int8", 16),
    ("document", "binary", 16),
    ("query", "float", 24),
    ("query", "int8", None),
    ("query", "binary", 32),
]


def check_cases(reports: list[Any], doc_model: str, query_model: str, int8_range: tuple[float, float]) -> None:
    for report, (tier, dtype, dims) in zip(reports, CASES, strict=True):
        assert report["status"] == 200, report
        assert report["version"] == "HTTP_1_1"  # the h2c upgrade was declined, the body still arrived whole
        texts = TEXTS if tier == "document" else QUERIES
        path = doc_model if tier == "document" else query_model
        want = expected(path, tier, texts, dims or 32, dtype, int8_range)
        got = np.asarray(report["vectors"])
        assert got.shape == want.shape, (tier, dtype, dims)
        if dtype == "float":
            np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        else:
            np.testing.assert_array_equal(got, want)


def test_the_jdk_client_sends_what_mongot_sends(java_client: Path, tmp_path: Path) -> None:
    """The test client really offers h2c and sends no Content-Type (reference §8), so a 200 from leaf-mongo serve
    means the service read a body that uvicorn's default parser would have dropped."""
    import socket

    seen: list[bytes] = []
    reply = (
        b'{"object":"list","data":[{"object":"embedding","embedding":"AACAPw==","index":0}],"usage":{"total_tokens":1}}'
    )

    def serve_once(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(
                next(ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length"))
            )
            while len(body) < length:
                body += conn.recv(65536)
            seen.extend([head, body])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply))

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        server = threading.Thread(target=serve_once, args=(listener,))
        server.start()
        body = voyage_body("query", "voyage-4", ["q"], 1, "float")
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        [report] = run_jdk(java_client, url, [(QUERY_KEY, "voyage-4", "query", "float", body)], tmp_path)
        server.join(30)
    head = seen[0].decode().lower()
    assert "upgrade: h2c" in head and "http2-settings:" in head and "content-type" not in head
    for header in ("authorization: bearer", "user-agent: mongot/unknown (unknown)", "x-voyage-model: voyage-4",
                   "x-voyage-tier: query"):  # fmt: skip
        assert header in head
    assert seen[1].decode() == body and report["vectors"] == [[1.0]]


def test_jdk_client_gets_sentence_transformers_vectors(
    java_client: Path, ir_server: Any, models: dict[str, str], tmp_path: Path
) -> None:
    requests = [
        (INDEXING_KEY if tier == "document" else QUERY_KEY, "voyage-4", tier, dtype,
         voyage_body(tier, "voyage-4", TEXTS if tier == "document" else QUERIES, dims, dtype))
        for tier, dtype, dims in CASES
    ]  # fmt: skip
    reports = run_jdk(java_client, ir_server.url, requests, tmp_path)
    check_cases(reports, models["arctic"], models["leaf-ir"], IR_RANGE)
    assert reports[0]["total_tokens"] == st_tokens(models["arctic"], "document", TEXTS)
    assert reports[3]["total_tokens"] == st_tokens(models["leaf-ir"], "query", QUERIES)


def test_jdk_client_against_asym_router(
    java_client: Path, asym_server: Any, models: dict[str, str], tmp_path: Path
) -> None:
    requests = [
        (INDEXING_KEY, "voyage-4-lite", tier, dtype,
         voyage_body(tier, "voyage-4-lite", TEXTS if tier == "document" else QUERIES, dims, dtype))
        for tier, dtype, dims in CASES
    ]  # fmt: skip
    reports = run_jdk(java_client, asym_server.url, requests, tmp_path)
    check_cases(reports, models["mt-asym"], models["mt-asym"], MT_RANGE)


def test_jdk_client_sees_clear_errors(java_client: Path, ir_server: Any, tmp_path: Path) -> None:
    too_wide = voyage_body("query", "voyage-4", QUERIES, 1024, "float")  # mongot's default numDimensions
    requests = [
        (QUERY_KEY, "voyage-4", "query", "float", too_wide),
        (INDEXING_KEY, "voyage-4", "document", "float", too_wide.replace('"query"', '"document"')),
        (QUERY_KEY, "voyage-4", "document", "float", voyage_body("document", "voyage-4", TEXTS, None, "float")),
        ("", "voyage-4", "query", "float", voyage_body("query", "voyage-4", QUERIES, None, "float")),
        ("wrong-key", "voyage-4", "query", "float", voyage_body("query", "voyage-4", QUERIES, None, "float")),
        (QUERY_KEY, "voyage-code-3", "query", "float", voyage_body("query", "voyage-code-3", QUERIES, None, "float")),
        (QUERY_KEY, "voyage-4", "query", "float", voyage_body("query", "voyage-4", ["x " * 100], None, "float")),
    ]
    reports = run_jdk(java_client, ir_server.url, requests, tmp_path)
    statuses = [r["status"] for r in reports]
    # A query's 400 fails the query with our message; a document batch gets 422, which mongot retries instead of
    # storing documents without vectors.
    assert statuses == [400, 422, 403, 401, 401, 400, 400]
    assert "numDimensions to 32 or less" in error_text(reports[0])
    assert "may not embed documents" in error_text(reports[2])
    assert "voyage-code-3" in error_text(reports[5])
    assert "truncation" in error_text(reports[6])  # mongot sends queries with truncation: false
    for report in reports:
        assert INDEXING_KEY not in error_text(report) and QUERY_KEY not in error_text(report)
    log = ir_server.log.read_text()  # the operator sees why mongot keeps retrying; never a key
    assert "voyage document request: 422 output_dimension=1024 is not possible" in log
    assert "401 invalid API key" in log
    assert INDEXING_KEY not in log and QUERY_KEY not in log


def test_jdk_client_sends_a_full_mongot_batch(
    java_client: Path, ir_server: Any, models: dict[str, str], tmp_path: Path
) -> None:
    """1,000 documents in one body over 4 MB (mongot's batchSize; voyage-4-lite batches reach ~3 MB of text)."""
    texts = [f"document {i} " + "lorem ipsum dolor sit amet " * 160 for i in range(1000)]
    body = voyage_body("document", "voyage-4-lite", texts, 16, "float")
    assert len(body.encode()) > 4 * 1024 * 1024
    [report] = run_jdk(
        java_client, ir_server.url, [(INDEXING_KEY, "voyage-4-lite", "document", "float", body)], tmp_path
    )
    assert report["status"] == 200
    got = np.asarray(report["vectors"])
    assert got.shape == (1000, 16)
    picks = [0, 1, 499, 999]
    want = expected(models["arctic"], "document", [texts[i] for i in picks], 16, "float", IR_RANGE)
    np.testing.assert_allclose(got[picks], want, atol=1e-5, rtol=0)


def test_graceful_shutdown_finishes_the_request_in_flight(
    models: dict[str, str], tmp_path: Path, java_client: Path
) -> None:
    """SIGTERM while a large document batch is being embedded: the batch is answered, then the server exits 0."""
    args = ["--teacher-model", models["arctic"], "--leaf-model", models["leaf-ir"], "--leaf-backend", "torch"]
    server = ServeProcess(args, tmp_path / "serve.log")
    texts = [f"text {i} " + "abc def " * 40 for i in range(1000)]
    body = voyage_body("document", "voyage-4", texts, None, "float")
    reports: list[Any] = []
    client = threading.Thread(
        target=lambda: reports.extend(
            run_jdk(java_client, server.url, [("", "voyage-4", "document", "float", body)], tmp_path)
        )
    )
    client.start()
    deadline = time.monotonic() + 30
    while "leaf_serve_queue_depth" not in _metrics(server.url) or _in_flight(server.url) == 0:
        assert time.monotonic() < deadline, "the request never reached the queue"
        time.sleep(0.01)
    assert server.stop()
    client.join(60)
    assert reports and reports[0]["status"] == 200 and len(reports[0]["vectors"]) == 1000
    assert "Waiting for" in server.log.read_text() or "Shutting down" in server.log.read_text()


def _metrics(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        return r.read().decode()


def _in_flight(url: str) -> float:
    """Documents queued or in a model batch, from /metrics (queue depth)."""
    for line in _metrics(url).splitlines():
        if line.startswith('leaf_serve_queue_depth{side="document"}'):
            return float(line.split()[-1])
    return 0.0
