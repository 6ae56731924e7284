"""What both wire protocols share: the parsed request, request errors, and vectors in the requested dtype.

Pure functions, no I/O: the app reads bytes and writes bytes, everything between is here, in ``voyage.py`` and in
``openai_format.py``. Stored and served vectors go through the same steps as ingest (:mod:`leaf_mongo.spec.vectors`:
MRL truncation, L2 renormalization, sentence-transformers' quantization with the profile's int8 range), so a
vector served to mongot is the vector leaf-mongo itself would have stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from leaf_mongo.models.layout import Task
from leaf_mongo.spec import VectorSpec
from leaf_mongo.spec.vectors import quantize

WireDtype = Literal["float", "int8", "binary", "ubinary"]
"""Output dtypes: float32; int8 with the profile's calibrated range; sign bits packed 8 per byte, with
Voyage's -128 offset (``binary``, as mongot decodes it) or without (``ubinary``)."""


class WireError(Exception):
    """A request the service refuses, with the one message the client gets back."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class Limits:
    """What a request may ask of the loaded pair (every check happens before any model runs)."""

    full_dimensions: int
    default_dimensions: int
    max_inputs: int = 1000


@dataclass(frozen=True)
class EmbedJob:
    """One request, protocol-neutral: which side embeds which texts, and the shape of the answer."""

    side: Task
    texts: list[str]
    dimensions: int
    dtype: WireDtype
    truncate: bool
    model: str
    base64: bool


def error_body(message: str, status: int) -> dict[str, Any]:
    """One body both kinds of client read: Voyage's ``detail`` (mongot quotes a 400's body in the query's error:
    "Got invalid request, fail fast and give up retries. Response body: ...") and OpenAI's ``error.message``
    (what the ``openai`` SDK raises). A refusal before the body is parsed cannot know which client asked."""
    kind = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}.get(
        status, "invalid_request_error" if status < 500 else "server_error"
    )
    return {"detail": message, "error": {"message": message, "type": kind, "param": None, "code": None}}


def decode_json(raw: bytes) -> Any:
    """The body as JSON whatever the Content-Type says (mongot sends none): one clear error if it is not."""
    if not raw.strip():
        raise WireError("the request body is empty: send the JSON embeddings request")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"the request body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise WireError("the request body must be a JSON object")
    return body


def validation_message(exc: ValidationError) -> str:
    """Pydantic's most specific error as one line naming the field (``input[1]: Input should be a valid string``).

    For a union (``input: str | list[str]``) the deepest error is the informative one; the union's member tags
    (``str``, ``list[str]``) are left out of the path."""
    err = max(exc.errors(include_url=False), key=lambda e: len(e["loc"]))
    where = ""
    for part in err["loc"]:
        if isinstance(part, int):
            where += f"[{part}]"
        elif not _is_type_tag(str(part)):
            where += f".{part}" if where else str(part)
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def _is_type_tag(part: str) -> bool:
    return part in ("str", "int", "float", "bool") or part.startswith(("list[", "dict["))


def check_texts(texts: Sequence[str], limits: Limits, field: str) -> list[str]:
    """1..max_inputs non-empty strings (an empty text has no meaningful vector; mongot never sends one)."""
    if not texts:
        raise WireError(f"{field} is empty: send at least one text")
    if len(texts) > limits.max_inputs:
        raise WireError(f"{field} has {len(texts)} texts; at most {limits.max_inputs} per request")
    for i, text in enumerate(texts):
        if not text:
            raise WireError(f"{field}[{i}] is an empty string; every text must be non-empty")
    return list(texts)


def check_dimensions(value: int | None, limits: Limits, field: str, dtype: WireDtype = "float") -> int:
    """The requested MRL prefix: 1..the model's dimensions (more cannot be made up), a multiple of 8 for bits."""
    dims = limits.default_dimensions if value is None else value
    if not 1 <= dims <= limits.full_dimensions:
        raise WireError(
            f"{field}={dims} is not possible: the models produce {limits.full_dimensions}-d vectors, so "
            f"{field} must be 1..{limits.full_dimensions} (MRL keeps a prefix; for a mongot autoEmbed index, "
            f"set numDimensions to {limits.full_dimensions} or less)"
        )
    if dtype in ("binary", "ubinary") and dims % 8:
        raise WireError(f"{field}={dims} is not possible with output_dtype={dtype!r}: bits pack 8 per byte")
    return dims


@lru_cache(maxsize=64)
def _output_spec(base: VectorSpec, dimensions: int, dtype: str) -> VectorSpec:
    """``base`` at another width and stored dtype, validated by the spec's own rules (one source of truth)."""
    stored = {"float": "float32", "int8": "int8"}.get(dtype, "binary")
    data = base.model_dump() | {"dimensions": dimensions, "dtype": stored, "quantization": "none"}
    if stored == "binary":
        data["similarity"] = "euclidean"
    return VectorSpec.model_validate(data)


def output_vectors(embeddings: np.ndarray, dtype: WireDtype, base: VectorSpec) -> np.ndarray:
    """Truncated, renormalized float vectors in the wire dtype: float32, int8, or packed bits (int8 with
    Voyage's offset for ``binary``, uint8 for ``ubinary``)."""
    spec = _output_spec(base, int(embeddings.shape[1]), dtype)
    out = quantize(embeddings, spec)
    if dtype == "float":
        return np.ascontiguousarray(out, dtype="<f4")
    if dtype == "int8":
        return np.ascontiguousarray(out, dtype=np.int8)
    packed = np.asarray(out, dtype=np.uint8)
    return (packed.astype(np.int16) - 128).astype(np.int8) if dtype == "binary" else packed
