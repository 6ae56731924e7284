"""The emulator's embedding provider client: mongot's ``embedding:`` config and its ``VoyageClient``.

Sources (mongot d38b926): ``config/provider/community/embedding/EmbeddingConfig.java`` and
``util/SecretsParser.java`` (key files: regular, owner-only, trimmed), ``embedding/providers/clients/VoyageClient.java``
(the request: POST, four headers and no Content-Type, ``input_type`` document/query, ``truncation`` only for
documents, ``output_dimension``/``output_dtype``; the response decoding), ``EmbeddingProviderManager.java``
(documents retried with exponential backoff, queries never retried). ``http.client`` rather than urllib, because
urllib adds a Content-Type that mongot does not send.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import stat
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leaf_mongo.testing.vector_store import ParsedVector

DOCUMENT_TIMEOUT_S = 310.0  # VOYAGE_DOCUMENT_OR_FLEX_HTTP_TIMEOUT
QUERY_TIMEOUT_S = 30.0  # VOYAGE_QUERY_HTTP_TIMEOUT
BATCH_SIZE = 1000  # batchSize in the Community catalog
REBATCH_PHRASE = "Please lower the number of tokens in the batch"


class TransientEmbeddingError(Exception):
    """What mongot retries: IO errors, timeouts, 429, any status > 400 but 400, unparsable 2xx."""


class EmbeddingRejected(Exception):
    """A 400: mongot gives every input of the batch this error message instead of a vector."""


def read_key_file(path: str | os.PathLike[str]) -> str:
    """SecretsParser.readSecretFile: a regular file granting nothing to group/other; its content trimmed."""
    p = Path(path)
    st = p.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"Failed to read Voyage API credential files: {p} is not a regular file")
    if os.name == "posix" and st.st_mode & 0o077:
        raise ValueError(f"Failed to read Voyage API credential files: {p} must not be readable by group or others")
    return p.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class EmbeddingConfig:
    """mongot's ``embedding:`` section. Both key files are required, as in mongot (without them autoEmbed is off).

    ``max_retries``/``initial_wait_s``/``max_wait_s`` are mongot's retry policy for documents (50, 0.2 s, 10 s);
    the emulator retries synchronously inside the write, so tests usually lower them.
    """

    provider_endpoint: str
    indexing_key_file: str
    query_key_file: str
    max_retries: int = 50
    initial_wait_s: float = 0.2
    max_wait_s: float = 10.0


class EmbeddingClient:
    """Calls the provider as mongot's VoyageClient does, and decodes vectors as mongot does."""

    def __init__(self, config: EmbeddingConfig) -> None:
        self.config = config
        self._indexing_key = read_key_file(config.indexing_key_file)
        self._query_key = read_key_file(config.query_key_file)
        self._url = urllib.parse.urlsplit(config.provider_endpoint)
        if self._url.scheme not in ("http", "https") or not self._url.hostname:
            raise ValueError(f"embedding providerEndpoint must be an http(s) URL, got {config.provider_endpoint!r}")

    def embed_documents(self, texts: list[str], model: str, dims: int, dtype: str) -> list[ParsedVector | None]:
        """Vectors for ``texts`` (None where the provider answered 400), batches of 1000, transient errors retried."""
        out: list[ParsedVector | None] = []
        for start in range(0, len(texts), BATCH_SIZE):
            batch = texts[start : start + BATCH_SIZE]
            try:
                out.extend(self._with_retries(batch, model, dims, dtype))
            except EmbeddingRejected:
                out.extend([None] * len(batch))  # "No embedding for ... due to error": stored without a vector
        return out

    def embed_query(self, text: str, model: str, dims: int, dtype: str) -> ParsedVector:
        """One query vector; no retry (EmbeddingProviderManager.embed: "Synchronous embed call without retries")."""
        return self._call([text], model, "query", dims, dtype)[0]

    def _with_retries(self, batch: list[str], model: str, dims: int, dtype: str) -> list[ParsedVector]:
        wait = self.config.initial_wait_s
        for attempt in range(self.config.max_retries + 1):
            try:
                return self._call(batch, model, "document", dims, dtype)
            except TransientEmbeddingError:
                if attempt == self.config.max_retries:
                    raise
                time.sleep(wait * (1 + random.uniform(-0.1, 0.1)))  # jitter 0.1
                wait = min(wait * 2, self.config.max_wait_s)
        raise AssertionError("unreachable")

    def _call(self, texts: list[str], model: str, input_type: str, dims: int, dtype: str) -> list[ParsedVector]:
        body = {
            "input_type": input_type,
            "model": model,
            "input": texts,
            "encoding_format": "base64",
            "truncation": input_type != "query",
            "output_dimension": dims,
            "output_dtype": dtype,
        }
        key = self._query_key if input_type == "query" else self._indexing_key
        headers = {
            "Authorization": f"Bearer {key}",
            "User-Agent": "mongot/UNKNOWN (UNKNOWN)",
            "X-Voyage-Model": model,
            "X-Voyage-Tier": input_type,
        }
        status, payload = self._post(json.dumps(body).encode(), headers, input_type)
        if status == 400:
            raise EmbeddingRejected(payload.decode("utf-8", "replace"))
        if not 200 <= status < 300:
            raise TransientEmbeddingError(f"HTTP {status}: {payload[:200].decode('utf-8', 'replace')}")
        return decode_response(payload, len(texts), dims, dtype)

    def _post(self, body: bytes, headers: dict[str, str], input_type: str) -> tuple[int, bytes]:
        timeout = QUERY_TIMEOUT_S if input_type == "query" else DOCUMENT_TIMEOUT_S
        u = self._url
        conn_cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(u.hostname or "", u.port, timeout=timeout)
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        try:
            conn.request("POST", target, body=body, headers=headers)  # no Content-Type, as mongot
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise TransientEmbeddingError(f"HTTP_IO_EXCEPTION: {exc}") from exc
        finally:
            conn.close()


def decode_response(payload: bytes, n: int, dims: int, dtype: str) -> list[ParsedVector]:
    """VoyageApiSchema.EmbedResponse + extractVectorsFromResponse; a parse error is transient (RESPONSE_PARSE_ERROR)."""
    try:
        doc: Any = json.loads(payload)
        if not isinstance(doc.get("object"), str) or not isinstance(doc["usage"]["total_tokens"], int):
            raise ValueError("object and usage.total_tokens are required")
        items = doc["data"]
        vectors = [_decode_vector(item["embedding"], dtype) for item in items]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TransientEmbeddingError(f"RESPONSE_PARSE_ERROR: {exc}") from exc
    if len(vectors) != n:
        raise TransientEmbeddingError(f"RESPONSE_PARSE_ERROR: {len(vectors)} embeddings for {n} inputs")
    for v in vectors:
        if v.dim != dims:
            raise TransientEmbeddingError(f"RESPONSE_PARSE_ERROR: {v.dim} dimensions where {dims} were asked")
    return vectors


def _decode_vector(text: Any, dtype: str) -> ParsedVector:
    if not isinstance(text, str):
        raise ValueError("embedding must be a base64 string")
    raw = base64.b64decode(text, validate=True)
    if dtype == "float":
        if len(raw) % 4:
            raise ValueError("float embedding length is not a multiple of 4")
        arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        return ParsedVector("float", arr.size, arr)
    if dtype == "int8":
        arr8 = np.frombuffer(raw, dtype=np.int8)
        return ParsedVector("byte", arr8.size, arr8)
    bits = (np.frombuffer(raw, dtype=np.int8).astype(np.int16) + 128).astype(np.uint8)  # Voyage offset binary
    return ParsedVector("bit", bits.size * 8, bits)
