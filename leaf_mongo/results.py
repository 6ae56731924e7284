"""Search results as LangChain ``Document`` objects: stored fields as metadata, never the vectors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from bson import Decimal128, ObjectId
from bson.binary import VECTOR_SUBTYPE, Binary
from langchain_core.documents import Document

from leaf_mongo.spec import VectorSpec


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
