"""The OpenAI embeddings protocol (pure encode/decode), so OpenAI-style clients use the LEAF pair too.

The model name says the side, since OpenAI's API has no ``input_type``: ``leaf-query`` embeds with the leaf
model (``encode_query``, the query prompt), ``leaf-document`` with the teacher (``encode_document``). The
``openai`` SDK asks for ``encoding_format="base64"`` unless told otherwise and decodes little-endian float32;
``dimensions`` is MRL truncation plus renormalization. Inputs longer than the model's limit are truncated (as
TEI and Infinity do by default). Token-id inputs are refused: they are ids of OpenAI's tokenizer, not ours.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from leaf_mongo.models.layout import Task
from leaf_mongo.serve.wire import EmbedJob, Limits, WireError, check_dimensions, check_texts, validation_message

OPENAI_MODELS: dict[str, Task] = {"leaf-query": "query", "leaf-document": "document"}


class OpenAIRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: str | list[str] | list[int] | list[list[int]]
    model: str
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


def parse_request(body: Any, limits: Limits) -> EmbedJob:
    """A decoded JSON body -> an :class:`EmbedJob`, or one :class:`WireError`."""
    try:
        req = OpenAIRequest.model_validate(body)
    except ValidationError as exc:
        raise WireError(validation_message(exc)) from None
    side = OPENAI_MODELS.get(req.model)
    if side is None:
        raise WireError(f"model {req.model!r} is not served here; use 'leaf-query' for queries or 'leaf-document'")
    raw = [req.input] if isinstance(req.input, str) else req.input
    if any(not isinstance(t, str) for t in raw):
        raise WireError(
            "input holds token ids; send strings (LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))"
        )
    texts = check_texts(raw, limits, "input")  # type: ignore[arg-type]
    dims = check_dimensions(req.dimensions, limits, "dimensions")
    return EmbedJob(
        side=side, texts=texts, dimensions=dims, dtype="float", truncate=True, model=req.model,
        base64=req.encoding_format == "base64",
    )  # fmt: skip


def encode_response(job: EmbedJob, vectors: np.ndarray, total_tokens: int) -> dict[str, Any]:
    def item(row: np.ndarray) -> str | list[float]:
        return base64.b64encode(np.asarray(row, dtype="<f4").tobytes()).decode("ascii") if job.base64 else row.tolist()

    data = [{"object": "embedding", "index": i, "embedding": item(row)} for i, row in enumerate(vectors)]
    usage = {"prompt_tokens": int(total_tokens), "total_tokens": int(total_tokens)}
    return {"object": "list", "data": data, "model": job.model, "usage": usage}
