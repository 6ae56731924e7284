"""A scripted Voyage-protocol provider for the emulator's autoEmbed tests: records what mongot's client sends and
answers as told (vectors derived from the text, or failures), over real HTTP on a loopback port."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from leaf_mongo.testing import EmbeddingConfig
from tests.serve_helpers import INDEXING_KEY, QUERY_KEY, write_key


def text_vector(text: str, dims: int) -> np.ndarray:
    """A unit vector that depends only on the text (what the scripted provider answers)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    return v / np.linalg.norm(v)


class ScriptedProvider:
    """``status`` None answers vectors; an int answers that status (``fail_times`` times, then vectors)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status: int | None = None
        self.fail_times = 10**9
        self.body = "scripted failure"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = json.loads(raw)
                outer.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                if outer.status is not None and outer.fail_times > 0:
                    outer.fail_times -= 1
                    self._send(outer.status, outer.body.encode())
                    return
                dims, dtype = body["output_dimension"], body["output_dtype"]
                data = [
                    {"object": "embedding", "embedding": encode(text_vector(t, dims), dtype), "index": i}
                    for i, t in enumerate(body["input"])
                ]
                reply = {"object": "list", "data": data, "model": body["model"], "usage": {"total_tokens": 1}}
                self._send(200, json.dumps(reply).encode())

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/embeddings"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def inputs(self, input_type: str) -> list[str]:
        return [t for r in self.requests if r["body"]["input_type"] == input_type for t in r["body"]["input"]]


def encode(v: np.ndarray, dtype: str) -> str:
    """As Voyage encodes: float32 little-endian, int8, or sign bits packed with the -128 offset."""
    if dtype == "int8":
        raw = quantize_int8(v).tobytes()
    elif dtype == "binary":
        raw = (np.packbits(v > 0).astype(np.int16) - 128).astype(np.int8).tobytes()
    else:
        raw = v.astype("<f4").tobytes()
    return base64.b64encode(raw).decode()


def quantize_int8(v: np.ndarray) -> np.ndarray:
    return np.clip(np.round(v * 127), -128, 127).astype(np.int8)


def embedding_config(url: str, folder: Path, **retry: Any) -> EmbeddingConfig:
    """mongot's ``embedding:`` section with owner-only key files in ``folder``."""
    indexing = write_key(folder / "indexing.key", INDEXING_KEY)
    query = write_key(folder / "query.key", QUERY_KEY)
    return EmbeddingConfig(url, str(indexing), str(query), **retry)


@contextmanager
def scripted_provider() -> Iterator[ScriptedProvider]:
    provider = ScriptedProvider()
    try:
        yield provider
    finally:
        provider.close()


def serve_leaf_ir_pair(models: dict[str, str], root: Path) -> Iterator[tuple[Any, Path]]:
    """A running ``leaf-mongo serve`` of the tiny leaf-ir + arctic pair, keyed as mongot's ``embedding:`` config
    in ``root`` expects (for a module fixture: ``yield from serve_leaf_ir_pair(models, tmp_path)``)."""
    from tests.serve_helpers import ServeProcess

    config = embedding_config("http://unused", root)
    args = [
        "--teacher-model", models["arctic"], "--leaf-model", models["leaf-ir"], "--leaf-backend", "torch",
        "--indexing-key-file", config.indexing_key_file, "--query-key-file", config.query_key_file,
    ]  # fmt: skip
    server = ServeProcess(args, root / "serve.log")
    yield server, root
    assert server.stop()
