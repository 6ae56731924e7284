"""Assemble the service from settings and run it on uvicorn with the h11 HTTP implementation.

Why h11: the JDK client mongot uses sends its POST with ``Upgrade: h2c`` on ``http://``; uvicorn's default
httptools parser then hands the app an empty body (reference §8, Kludex/uvicorn#2722), while h11 ignores the
upgrade offer and delivers the request whole (tests/test_serve_jdk.py posts with the JDK's own HttpClient).
Graceful shutdown is uvicorn's: on SIGTERM/SIGINT it stops accepting, waits for the requests in flight (up to
``shutdown_grace_s``), then the app's lifespan stops the batchers.
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from typing import Any

from leaf_mongo.models.encoders import VectorEncoder
from leaf_mongo.models.resolve import spec_from_settings
from leaf_mongo.serve.app import create_app
from leaf_mongo.serve.auth import Keys, read_key_file, require_key_off_loopback
from leaf_mongo.serve.config import ServeSettings
from leaf_mongo.serve.engine import Engine
from leaf_mongo.serve.metrics import ServeMetrics
from leaf_mongo.settings import LeafMongoSettings


def default_leaf_backend() -> str:
    """Queries on ONNX Runtime int8 where it is installed (several times faster than torch for the 23M leaf)."""
    have = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))
    return "onnx-int8" if have else "torch"


def load_keys(serve: ServeSettings) -> Keys:
    return Keys(
        indexing=read_key_file(serve.indexing_key_file, "LEAF_MONGO_SERVE_INDEXING_KEY_FILE")
        if serve.indexing_key_file else None,
        query=read_key_file(serve.query_key_file, "LEAF_MONGO_SERVE_QUERY_KEY_FILE") if serve.query_key_file else None,
    )  # fmt: skip


@dataclass
class Service:
    """A prepared service: models loaded and checked, the app built, not yet listening."""

    app: Any
    engine: Engine
    keys: Keys
    settings: ServeSettings

    def banner(self) -> str:
        d = self.engine.describe()
        s = self.settings
        paths = f"Voyage {s.voyage_path}, OpenAI {s.openai_path}"
        return (
            f"documents: {d['document']['model']} ({d['document']['backend']}); queries: {d['query']['model']} "
            f"({d['query']['backend']}); {d['dimensions']}-d; {paths}; {self.keys.describe()}; "
            f"listening on http://{s.host}:{s.port}"
        )


def build_service(settings: LeafMongoSettings, serve: ServeSettings, leaf_backend: str | None = None) -> Service:
    """Check the keys and the host first (cheap), then load and check the pair; raises LeafMongoError."""
    keys = load_keys(serve)
    require_key_off_loopback(serve.host, keys)
    spec = spec_from_settings(settings)
    encoder = VectorEncoder(
        spec, device=settings.device, leaf_backend=leaf_backend or settings.leaf_backend,
        teacher_backend=settings.teacher_backend, threads=settings.backend_threads,
    )  # fmt: skip
    metrics = ServeMetrics()
    engine = Engine(encoder, serve, metrics)
    engine.prepare()
    return Service(create_app(engine, keys, serve, metrics), engine, keys, serve)


def run_service(service: Service) -> None:
    """Listen until SIGTERM / SIGINT, then drain (blocking)."""
    import uvicorn

    s = service.settings
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)  # our warnings in uvicorn's format, on its handler
    log_config["loggers"]["leaf_mongo.serve"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config = uvicorn.Config(
        service.app, host=s.host, port=s.port, http="h11", lifespan="on", access_log=s.access_log,
        timeout_graceful_shutdown=int(s.shutdown_grace_s), log_level="info", server_header=False,
        log_config=log_config,
    )  # fmt: skip
    uvicorn.Server(config).run()
