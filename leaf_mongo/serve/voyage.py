"""The Voyage AI embeddings protocol, exactly as MongoDB's mongot sends and reads it (pure encode/decode).

mongot (``VoyageClient``, ``VoyageApiSchema``; see ``shared/reference/autoembed.md`` §1) posts
``{input_type, model, input[], encoding_format: "base64", truncation, output_dimension, output_dtype}`` with no
Content-Type, and reads ``{object, data: [{object, embedding: <base64>, index}], usage: {total_tokens}}``,
assigning vectors to inputs by position. ``float`` is little-endian float32, ``int8`` raw signed bytes, ``binary``
packed sign bits minus 128. Unknown request fields (Atlas's ``service_tier``, ``metadata``) are ignored.

Model names: mongot Community only knows Voyage's catalog, so the configured LEAF pair answers under those
names (one table, :data:`VOYAGE_MODELS`); ``input_type`` picks the side: ``document`` -> teacher
(``encode_document``), ``query`` -> leaf (``encode_query``).
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from leaf_mongo.serve.wire import (
    EmbedJob,
    Limits,
    WireError,
    check_dimensions,
    check_texts,
    validation_message,
)

VOYAGE_MODELS: dict[str, str] = {
    "voyage-4": "the configured pair (documents: teacher, queries: leaf)",
    "voyage-4-large": "the configured pair",
    "voyage-4-lite": "the configured pair",
}
"""Names accepted by default: mongot's Community catalog (``embedding-service-configs.yml``) minus voyage-code-3,
a code model a text pair should not silently stand in for (accept it with ``--voyage-models``)."""

DEFAULT_VOYAGE_MODELS: tuple[str, ...] = tuple(VOYAGE_MODELS)


class VoyageRequest(BaseModel):
    """The request body; ``extra="ignore"`` because Atlas's mongot adds ``service_tier`` and ``metadata``."""

    model_config = ConfigDict(extra="ignore")

    input: str | list[str]
    model: str
    input_type: Literal["query", "document"] | None = None
    truncation: bool = True
    output_dimension: int | None = None
    output_dtype: Literal["float", "int8", "binary", "ubinary"] = "float"
    encoding_format: Literal["base64"] | None = None


def parse_request(body: Any, models: Collection[str], limits: Limits) -> EmbedJob:
    """A decoded JSON body -> an :class:`EmbedJob`, or one :class:`WireError`."""
    try:
        req = VoyageRequest.model_validate(body)
    except ValidationError as exc:
        raise WireError(validation_message(exc)) from None
    if req.model.lower() not in models:
        raise WireError(
            f"model {req.model!r} is not served here; served names: {', '.join(sorted(models))} "
            "(all the same LEAF pair)"
        )
    if req.input_type is None:
        raise WireError("input_type is required: 'query' (leaf model, encode_query) or 'document' (teacher)")
    texts = check_texts([req.input] if isinstance(req.input, str) else req.input, limits, "input")
    dims = check_dimensions(req.output_dimension, limits, "output_dimension", req.output_dtype)
    return EmbedJob(
        side=req.input_type, texts=texts, dimensions=dims, dtype=req.output_dtype, truncate=req.truncation,
        model=req.model, base64=req.encoding_format == "base64",
    )  # fmt: skip


def _item(row: np.ndarray, as_base64: bool) -> str | list[Any]:
    return base64.b64encode(row.tobytes()).decode("ascii") if as_base64 else row.tolist()


def encode_response(job: EmbedJob, vectors: np.ndarray, total_tokens: int) -> dict[str, Any]:
    """One item per input, in input order (mongot ignores ``index`` and assigns by position)."""
    data = [{"object": "embedding", "embedding": _item(row, job.base64), "index": i} for i, row in enumerate(vectors)]
    return {"object": "list", "data": data, "model": job.model, "usage": {"total_tokens": int(total_tokens)}}


def error_status(tier_header: str | None, job_side: str | None, status: int) -> int:
    """400 for queries, 422 for documents.

    mongot turns a 400 on a document batch into documents stored *without* vectors (a warning in its log only),
    while 422 is transient: it retries, and the index does not silently miss vectors. A query's 400 fails the
    query with our message, which is what the user should see.
    """
    if status == 400 and "document" in (tier_header, job_side):
        return 422
    return status
