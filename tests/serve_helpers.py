"""Shared by the serve tests: a real ``leaf-mongo serve`` process, mongot-shaped bodies, and the oracle.

The oracle is sentence-transformers itself (``encode_document`` / ``encode_query`` on the model folder, a Router
routed by the task), then MRL (keep a prefix, L2-renormalize) and sentence-transformers' ``quantize_embeddings``;
never the service's own code.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
INDEXING_KEY = "indexing-key-0123456789abcdef"
QUERY_KEY = "query-key-fedcba9876543210"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_key(path: Path, key: str) -> Path:
    path.write_text(key + "\n")  # mongot trims the file's content; so does the service
    path.chmod(0o600)
    return path


class ServeProcess:
    """``python -m leaf_mongo serve ...`` on a free loopback port, until :meth:`stop`."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})}
        cmd = [sys.executable, "-m", "leaf_mongo", "serve", "--port", str(self.port), *args]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=str(ROOT))
        self._wait()

    def _wait(self, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"leaf-mongo serve exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"leaf-mongo serve did not become healthy:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> bool:
        """Signal the server; True if it drained and exited cleanly (uvicorn re-raises the signal it caught
        after its graceful shutdown, so the status is -SIGTERM, after "Finished server process")."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode in (0, -sig) and "Finished server process" in self.log.read_text()


def voyage_body(side: str, model: str, texts: list[str], dims: int | None, dtype: str) -> str:
    """A body as mongot's ``EmbedRequest.toBson`` orders it (Community: no service_tier, no metadata)."""
    body: dict[str, Any] = {
        "input_type": side, "model": model, "input": texts, "encoding_format": "base64",
        "truncation": side != "query",
    }  # fmt: skip
    if dims is not None:
        body["output_dimension"] = dims
    body["output_dtype"] = dtype
    return json.dumps(body)


@lru_cache(maxsize=8)
def _st(path: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path)


def st_raw(path: str, side: str, texts: list[str]) -> np.ndarray:
    """What the model card's call computes: ``encode_document`` or ``encode_query``."""
    model = _st(path)
    call = model.encode_query if side == "query" else model.encode_document
    return np.asarray(call(texts, convert_to_numpy=True), dtype=np.float32)


def expected(path: str, side: str, texts: list[str], dims: int, dtype: str, int8_range: tuple[float, float]) -> Any:
    """sentence-transformers, then MRL + renormalization, then the dtype as mongot holds it after decoding."""
    from sentence_transformers.util.quantization import quantize_embeddings

    emb = st_raw(path, side, texts)[:, :dims]
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    if dtype == "float":
        return emb
    if dtype == "int8":
        ranges = np.array([[int8_range[0]] * dims, [int8_range[1]] * dims], dtype=np.float32)
        return np.asarray(quantize_embeddings(emb, precision="int8", ranges=ranges), dtype=np.int64)
    packed = np.asarray(quantize_embeddings(emb, precision="binary"), dtype=np.int64)  # Voyage's offset binary
    return packed + 128  # what mongot holds after adding the offset back


def st_tokens(path: str, side: str, texts: list[str]) -> int:
    """Tokens the model reads (prompt and special tokens included, truncated), by its own tokenizer."""
    model = _st(path)
    prompt = (model.prompts or {}).get("query" if side == "query" else "document", "") or ""
    tok = model.tokenizer
    return sum(len(tok(prompt + t, truncation=True, max_length=model.max_seq_length)["input_ids"]) for t in texts)
