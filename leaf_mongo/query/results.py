"""Search results as LangChain ``Document`` objects: stored fields as metadata, never the vectors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
from bson import Decimal128, ObjectId
from bson.binary import VECTOR_SUBTYPE, Binary
from langchain_core.documents import Document

from leaf_mongo.errors import SpecMismatchError
from leaf_mongo.spec import VectorSpec
from leaf_mongo.spec.vectors import from_binary, truncate_normalize


def serializable(value: Any) -> Any:
    """Make stored values JSON-friendly the way langchain-mongodb does (ObjectId/dates → str)."""
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal128):
        return str(value)
    if isinstance(value, Mapping):
        return {k: serializable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [serializable(v) for v in value]
    return value


def _is_vector(value: Any) -> bool:
    return isinstance(value, Binary) and value.subtype == VECTOR_SUBTYPE


def to_document(raw: Mapping[str, Any], spec: VectorSpec) -> Document:
    """One result as a LangChain ``Document``; vectors never reach the metadata."""
    hidden = {"_id", spec.text_field, spec.embedding_field, spec.full_precision_field}
    meta = {k: serializable(v) for k, v in raw.items() if k not in hidden and not _is_vector(v)}
    text = raw.get(spec.text_field)
    return Document(
        id=str(raw["_id"]) if "_id" in raw else None,
        page_content=text if isinstance(text, str) else "",
        metadata=meta,
    )


def rescore_field(spec: VectorSpec, where: str) -> str:
    """The field holding float vectors to rescore with."""
    if spec.full_precision_field:
        return spec.full_precision_field
    if spec.dtype == "float32":
        return spec.embedding_field  # float storage, e.g. under automatic quantization
    raise SpecMismatchError(
        f"cannot rescore {where}: its {spec.dtype} vectors were stored without full-precision copies; "
        "re-ingest with LEAF_MONGO_STORE_FULL_PRECISION=true, or query without rescore"
    )


def rescored(
    raw: list[dict[str, Any]], emb: np.ndarray, field: str, k: int, score_threshold: float | None
) -> list[dict[str, Any]]:
    """Re-rank candidates by exact cosine with the float query; candidates lacking a vector go last."""
    with_vec = [d for d in raw if d.get(field) is not None]
    without = [d for d in raw if d.get(field) is None]
    if with_vec:
        matrix = np.stack([from_binary(d[field]).astype(np.float32, copy=False) for d in with_vec])
        if matrix.shape[1] != emb.shape[0]:
            matrix = truncate_normalize(matrix, emb.shape[0])
        sims = matrix @ emb.astype(np.float32)
        for doc, sim in zip(with_vec, sims.tolist(), strict=True):
            doc["search_score"] = doc.get("score")
            doc["score"] = float((1.0 + sim) / 2.0)
        with_vec.sort(key=lambda d: d["score"], reverse=True)
    ranked = with_vec + without
    if score_threshold is not None:
        ranked = [d for d in ranked if (d.get("score") or 0.0) >= score_threshold]
    for doc in ranked:
        doc.pop(field, None)
    return ranked[:k]
