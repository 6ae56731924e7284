"""The ASGI app: the embeddings routes (Voyage for mongot, OpenAI for everything else), /health and /metrics.

A plain Starlette app: the body is read as bytes and decoded as JSON whatever the Content-Type says (mongot
sends none, which FastAPI >= 0.132 and TEI reject), the wire formats are pure functions (``voyage.py``,
``openai_format.py``), and every refusal is one status with one message:

- 400 (422 for a mongot document batch, see :func:`leaf_mongo.serve.voyage.error_status`) for a bad request;
- 401 / 403 for a missing, unknown or under-privileged key;
- 413 for a body over the limit; 429 + Retry-After when the side's queue is full (mongot retries with backoff);
- 503 + Retry-After when the deadline passes first, 500 when the body arrived incomplete.

When the Voyage and OpenAI paths are the same (the default, ``/v1/embeddings``), the model name tells them
apart: ``leaf-query`` / ``leaf-document`` are OpenAI's, the Voyage names are mongot's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leaf_mongo.serve import openai_format, voyage
from leaf_mongo.serve.auth import AuthError, Keys
from leaf_mongo.serve.batcher import DeadlineExceeded, QueueFull
from leaf_mongo.serve.config import ServeSettings
from leaf_mongo.serve.engine import Engine
from leaf_mongo.serve.metrics import ServeMetrics
from leaf_mongo.serve.wire import EmbedJob, WireError, decode_json, error_body

log = logging.getLogger("leaf_mongo.serve")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes, and exactly as many as Content-Length announced.

    The length check catches a server that hands the app an empty body for the JDK's ``Upgrade: h2c`` POST
    (uvicorn's httptools parser does, reference §8): a 400 would make mongot store documents without vectors.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise WireError(f"the request body ({int(declared)} bytes) is over the {limit}-byte limit", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WireError(f"the request body is over the {limit}-byte limit", 413)
        chunks.append(chunk)
    body = b"".join(chunks)
    if declared is not None and declared.isdigit() and len(body) != int(declared):
        raise WireError(
            f"received {len(body)} of the {declared} body bytes announced; the HTTP server dropped the body "
            "(uvicorn's httptools does on 'Upgrade: h2c' requests: serve with h11, as leaf-mongo serve does)",
            500,
        )
    return body


def claimed_side(body: dict[str, Any]) -> str:
    """The side a body asks for, before it is validated (for the status and the metrics of a refusal)."""
    side = body.get("input_type") or openai_format.OPENAI_MODELS.get(str(body.get("model")))
    return side if side in ("query", "document") else "unknown"


class EmbeddingService:
    """Request handling shared by the routes; one instance per app."""

    def __init__(self, engine: Engine, keys: Keys, settings: ServeSettings, metrics: ServeMetrics) -> None:
        self.engine, self.keys, self.settings, self.metrics = engine, keys, settings, metrics
        self.voyage_models = frozenset(settings.voyage_models)
        self.body_limit = int(settings.max_body_mb * 1024 * 1024)

    def parse(self, body: dict[str, Any], protocols: tuple[str, ...]) -> tuple[str, EmbedJob]:
        """Which protocol the body speaks (by model name when a path serves both), and its job."""
        limits = self.engine.limits
        model = body.get("model")
        if "openai" in protocols and (model in openai_format.OPENAI_MODELS or protocols == ("openai",)):
            return "openai", openai_format.parse_request(body, limits)
        if len(protocols) == 2 and isinstance(model, str) and model.lower() not in self.voyage_models:
            raise WireError(
                f"model {model!r} is not served here; OpenAI clients: 'leaf-query' (queries) or 'leaf-document' "
                f"(documents); Voyage clients (mongot): {', '.join(sorted(self.voyage_models))}"
            )
        return "voyage", voyage.parse_request(body, self.voyage_models, limits)

    async def handle(self, request: Request, protocols: tuple[str, ...]) -> Response:
        loop_time = _loop_time()
        protocol, side, tier = protocols[0], "unknown", request.headers.get("x-voyage-tier")
        headers: dict[str, str] = {}
        try:
            scopes = self.keys.scopes(request.headers.get("authorization"))
            body = decode_json(await read_body(request, self.body_limit))
            side = claimed_side(body)
            protocol, job = self.parse(body, protocols)
            side = job.side
            self.keys.require(scopes, job.side)
            vectors, tokens = await self.engine.embed(job, loop_time)
        except WireError as exc:
            status = voyage.error_status(tier, side, exc.status) if protocol == "voyage" else exc.status
            return self._error(protocol, side, status, exc.message, headers)
        except AuthError as exc:
            return self._error(protocol, side, exc.status, exc.message, headers)
        except QueueFull as exc:
            self.metrics.rejected.labels(side, "queue_full").inc()
            headers["Retry-After"] = "1"
            return self._error(protocol, side, 429, f"the {side} queue is full ({exc}); retry later", headers)
        except DeadlineExceeded as exc:
            self.metrics.rejected.labels(side, "deadline").inc()
            headers["Retry-After"] = "1"
            return self._error(protocol, side, 503, f"{side} embedding: {exc}", headers)
        encoder = openai_format if protocol == "openai" else voyage
        response = JSONResponse(encoder.encode_response(job, vectors, tokens))
        self.metrics.inputs.labels(side).inc(len(job.texts))
        self.metrics.tokens.labels(side).inc(tokens)
        self._done(protocol, side, 200, loop_time)
        return response

    def _error(self, protocol: str, side: str, status: int, message: str, headers: dict[str, str]) -> Response:
        if status != 429:  # a refused document batch makes mongot retry: the operator must see why (429: metrics)
            log.warning("%s %s request: %d %s", protocol, side, status, message)
        self._done(protocol, side, status, None)
        return JSONResponse(error_body(message, status), status_code=status, headers=headers)

    def _done(self, protocol: str, side: str, status: int, started: float | None) -> None:
        self.metrics.requests.labels(protocol, side, str(status)).inc()
        if started is not None:
            self.metrics.latency.labels(side).observe(_loop_time() - started)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def create_app(engine: Engine, keys: Keys, settings: ServeSettings, metrics: ServeMetrics | None = None) -> Starlette:
    """The app for a prepared :class:`Engine` (models loaded, pair checked); batchers start with the app."""
    metrics = metrics or engine.metrics
    service = EmbeddingService(engine, keys, settings, metrics)
    paths: dict[str, tuple[str, ...]] = {}
    for protocol, path in (("voyage", settings.voyage_path), ("openai", settings.openai_path)):
        paths[path] = (*paths.get(path, ()), protocol)

    def route(protocols: tuple[str, ...]) -> Any:
        async def endpoint(request: Request) -> Response:
            return await service.handle(request, protocols)

        return endpoint

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", **engine.describe(), "voyage_models": sorted(service.voyage_models),
                             "openai_models": sorted(openai_format.OPENAI_MODELS)})  # fmt: skip

    async def metrics_endpoint(_: Request) -> Response:
        for task in ("query", "document"):
            metrics.queue_depth.labels(task).set(engine.queue_depth(task))  # type: ignore[arg-type]
        return Response(metrics.exposition(), media_type=metrics.content_type)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:  # runs after the server has drained the requests in flight
            await engine.stop()

    routes = [Route(p, route(protos), methods=["POST"]) for p, protos in paths.items()]
    routes += [Route("/health", health, methods=["GET"]), Route("/metrics", metrics_endpoint, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)
