"""Vector arithmetic shared by documents and queries: MRL truncation, quantization, BSON vectors.

Stored and query vectors must go through exactly the same steps, or MongoDB compares vectors from
different spaces (or, for a different dtype, silently searches nothing). Quantization is done by
sentence-transformers' ``quantize_embeddings`` and the BSON encoding by pymongo's ``Binary.from_vector``.
"""

from __future__ import annotations

from typing import Any

import bson
import numpy as np
from bson.binary import Binary, BinaryVectorDtype

from leaf_mongo.spec.vector_spec import VectorSpec, stored_vector_bytes

BSON_DTYPE = {
    "float32": BinaryVectorDtype.FLOAT32,
    "int8": BinaryVectorDtype.INT8,
    "binary": BinaryVectorDtype.PACKED_BIT,
}


def truncate_normalize(embeddings: Any, dimensions: int) -> np.ndarray:
    """Keep the first ``dimensions`` (MRL) and L2-renormalize, as dotProduct and int8 ranges assume."""
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim == 1:
        emb = emb[None, :]
    if emb.shape[1] < dimensions:
        raise ValueError(f"model produced {emb.shape[1]} dimensions, spec needs {dimensions}")
    emb = emb[:, :dimensions]
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norms == 0, 1.0, norms)


def _quantize_embeddings(embeddings: np.ndarray, precision: str, ranges: np.ndarray | None = None) -> np.ndarray:
    # Imported lazily: sentence-transformers pulls in torch, which a CLI error path should not pay for.
    try:
        from sentence_transformers.util.quantization import quantize_embeddings
    except ImportError:  # pragma: no cover - sentence-transformers < 5.2
        from sentence_transformers.quantization import quantize_embeddings  # type: ignore[no-redef]
    return np.asarray(quantize_embeddings(embeddings, precision=precision, ranges=ranges))  # type: ignore[arg-type]


def quantize(embeddings: np.ndarray, spec: VectorSpec) -> np.ndarray:
    """Convert normalized float vectors to the stored dtype (float32, int8 with the spec's range, packed bits)."""
    if spec.dtype == "float32":
        return np.asarray(embeddings, dtype=np.float32)
    if spec.dtype == "int8":
        d = embeddings.shape[1]
        ranges = np.array([[spec.int8_min] * d, [spec.int8_max] * d], dtype=np.float32)
        return _quantize_embeddings(embeddings, "int8", ranges)
    return _quantize_embeddings(embeddings, "ubinary")


def to_binary(row: np.ndarray, dtype: str) -> Binary:
    """One quantized row as a BSON vector (BinData subtype 9)."""
    if dtype == "binary":
        # pymongo 4.20 rejects numpy uint8 bytes > 127 for PACKED_BIT; a list of ints is accepted.
        return Binary.from_vector(row.tolist(), BinaryVectorDtype.PACKED_BIT)
    return Binary.from_vector(row, BSON_DTYPE[dtype])


def to_bson_vectors(embeddings: np.ndarray, spec: VectorSpec) -> list[Binary]:
    """Normalized, truncated float vectors → stored BSON vectors for ``spec``."""
    q = quantize(embeddings, spec)
    return [to_binary(row, spec.dtype) for row in q]


def from_binary(value: Binary | list[float]) -> np.ndarray:
    """A stored vector back as numpy (float32, int8, or packed uint8 bytes)."""
    if isinstance(value, Binary):
        vec = value.as_vector()
        if vec.dtype == BinaryVectorDtype.PACKED_BIT:
            return np.asarray(vec.data, dtype=np.uint8)
        return np.asarray(vec.data, dtype=np.int8 if vec.dtype == BinaryVectorDtype.INT8 else np.float32)
    return np.asarray(value, dtype=np.float32)


def bson_vector_size(dtype: str, dimensions: int, as_array: bool = False) -> int:
    """Bytes one vector takes inside a BSON document (value only): :func:`stored_vector_bytes`, or with
    ``as_array`` the same values as a BSON array of doubles (what a plain list of floats costs)."""
    if as_array:
        return len(bson.encode({"v": [0.1] * dimensions})) - len(bson.encode({"v": []}))
    return stored_vector_bytes(dtype, dimensions)
