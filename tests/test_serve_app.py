"""The app in process (real engine, tiny models): back-pressure, deadlines, the lost-body guard, /health,
/metrics, and the start-up refusals of ``leaf-mongo serve``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from leaf_mongo.cli import app as cli_app
from leaf_mongo.serve.config import load_serve_settings
from leaf_mongo.serve.server import Service, build_service
from leaf_mongo.settings import load_settings
from tests.serve_helpers import write_key

pytestmark = pytest.mark.slow
QUERY = {"input_type": "query", "model": "voyage-4", "input": ["q"], "truncation": False}


def service(models: dict[str, str], **serve: Any) -> Service:
    settings = load_settings(teacher_model=models["arctic"], leaf_model=models["leaf-ir"], leaf_backend="torch")
    return build_service(settings, load_serve_settings(**serve))


def slow(side: Any, seconds: float) -> None:
    """A model that takes ``seconds`` per batch, in the worker thread and inline (a lone query on an idle side)."""
    encode, encode_now = side.encode, side.encode_now

    def run(texts: list[str]) -> np.ndarray:
        time.sleep(seconds)
        return encode(texts)  # type: ignore[no-any-return]

    def run_now(texts: list[str]) -> np.ndarray | None:
        time.sleep(seconds)
        return encode_now(texts)  # type: ignore[no-any-return]

    side.encode, side.encode_now = run, run_now


async def post_all(svc: Service, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    svc.engine.start()
    try:
        transport = httpx.ASGITransport(app=svc.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await asyncio.gather(*(client.post("/v1/embeddings", content=json.dumps(b)) for b in bodies))
    finally:
        await svc.engine.stop()


async def test_full_queue_answers_429_with_retry_after(models: dict[str, str]) -> None:
    svc = service(models, query_queue=2, query_batch=1)
    slow(svc.engine.sides["query"], 0.2)
    responses = await post_all(svc, [QUERY] * 8)
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 429 in statuses and set(statuses) <= {200, 429}
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "1" and "queue is full" in refused.json()["detail"]


async def test_deadline_answers_503_not_a_late_vector(models: dict[str, str]) -> None:
    svc = service(models, query_deadline_s=0.1)
    slow(svc.engine.sides["query"], 0.5)
    [response] = await post_all(svc, [QUERY])
    assert response.status_code == 503 and "deadline" in response.json()["detail"]


async def test_a_body_lost_by_the_server_is_a_500_not_a_400(models: dict[str, str]) -> None:
    """uvicorn's httptools hands the app an empty body for the JDK's ``Upgrade: h2c`` POST; a 400 would make
    mongot store documents without vectors, so the length check answers 500 (mongot retries)."""
    svc = service(models)
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http", "method": "POST", "path": "/v1/embeddings", "raw_path": b"/v1/embeddings",
        "query_string": b"", "root_path": "", "scheme": "http", "server": ("t", 80), "http_version": "1.1",
        "headers": [(b"content-length", b"120"), (b"upgrade", b"h2c"), (b"x-voyage-tier", b"document")],
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await svc.app(scope, receive, send)
    assert sent[0]["status"] == 500 and b"dropped the body" in sent[1]["body"]


async def test_health_and_metrics(models: dict[str, str]) -> None:
    svc = service(models)
    svc.engine.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=svc.app), base_url="http://t") as client:
            ok = await client.post("/v1/embeddings", content=json.dumps(QUERY))
            health = (await client.get("/health")).json()
            metrics = (await client.get("/metrics")).text
    finally:
        await svc.engine.stop()
    assert ok.status_code == 200
    assert health["status"] == "ok" and health["dimensions"] == 32 and health["query"]["backend"] == "torch"
    for line in (
        'leaf_serve_requests_total{protocol="voyage",side="query",status="200"} 1.0',
        'leaf_serve_inputs_total{side="query"} 1.0',
        'leaf_serve_queue_depth{side="document"} 0.0',
        'leaf_serve_batch_size_count{side="query"} 1.0',
        'leaf_serve_padded_tokens_total{side="query"}',
    ):
        assert line in metrics


def test_cli_refuses_to_listen_beyond_loopback_without_a_key(models: dict[str, str]) -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--host", "0.0.0.0", "--teacher-model", models["arctic"]])
    assert result.exit_code == 2 and "without an API key" in result.output


def test_cli_refuses_a_pair_of_different_dimensions(models: dict[str, str], tmp_path: Any) -> None:
    key = write_key(tmp_path / "k", "secret-key-value")
    args = ["serve", "--teacher-model", models["arctic"], "--leaf-model", models["leaf-24"], "--leaf-backend", "torch"]
    result = CliRunner().invoke(cli_app, [*args, "--indexing-key-file", str(key)])
    assert result.exit_code == 2 and "24-d" in result.output and "secret-key-value" not in result.output
