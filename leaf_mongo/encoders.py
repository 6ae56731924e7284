"""Encoders: documents through the teacher, queries through the leaf model, both into the spec's space."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from bson.binary import Binary

from leaf_mongo.embedding_cache import open_cache
from leaf_mongo.errors import SpecMismatchError
from leaf_mongo.models import aligned_teacher, embedding_dimension, load_model
from leaf_mongo.vectors import quantize, to_binary, to_bson_vectors, truncate_normalize

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from leaf_mongo.spec import VectorSpec

QueryMode = Literal["asymmetric", "teacher"]


class VectorEncoder:
    """Turns texts into vectors comparable with what ``spec`` stores.

    ``query_mode="asymmetric"`` (default) encodes queries with the leaf model, ``"teacher"`` with the
    teacher (to measure what the leaf model costs). For a leaf-only comparison, build the collection with
    the leaf model as its document model (``teacher_model = leaf_model``).
    """

    def __init__(
        self,
        spec: VectorSpec,
        *,
        query_mode: QueryMode = "asymmetric",
        device: str | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.spec = spec
        self.query_mode = query_mode
        self.device = device
        self.cache = open_cache(cache_dir) if cache_dir else None
        self.pool: Any = None
        """A sentence-transformers multi-process pool for the teacher (see :mod:`leaf_mongo.parallel`)."""

    @property
    def document_model_name(self) -> str:
        return self.spec.teacher_model

    @property
    def query_model_name(self) -> str:
        return self.spec.leaf_model if self.query_mode == "asymmetric" else self.spec.teacher_model

    @property
    def teacher(self) -> SentenceTransformer:
        return load_model(self.document_model_name, self.device)

    @property
    def leaf(self) -> SentenceTransformer:
        return load_model(self.query_model_name, self.device)

    def check_query_model(self) -> None:
        """Refuse a query model whose vectors cannot be compared with the stored teacher vectors."""
        name, spec = self.query_model_name, self.spec
        if name != spec.teacher_model and aligned_teacher(name) not in (None, spec.teacher_model):
            raise SpecMismatchError(
                f"query model {name!r} is aligned to {aligned_teacher(name)!r}, but the collection was "
                f"embedded by {spec.teacher_model!r}; its vectors live in another space"
            )
        dim = embedding_dimension(self.leaf)
        if dim is not None and dim != spec.full_dimensions:
            raise SpecMismatchError(
                f"query model {name!r} produces {dim}-d vectors but the collection's teacher "
                f"{spec.teacher_model!r} produces {spec.full_dimensions}-d: they cannot be compared"
            )

    def embed_documents(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Teacher vectors (no prompt), truncated to the spec's dimensions and renormalized."""

        def compute(batch: list[str]) -> np.ndarray:
            pooled: dict[str, Any] = {"pool": self.pool, "chunk_size": batch_size} if self.pool else {}
            return np.asarray(
                self.teacher.encode(
                    batch, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False, **pooled
                )
            )

        texts = list(texts)
        if self.cache is None:
            raw = compute(texts)
        else:
            raw = self.cache.encode(self.document_model_name, "", texts, compute)
        return truncate_normalize(raw, self.spec.dimensions)

    def embed_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Leaf (or teacher) vectors with the query prompt, truncated and renormalized."""
        raw = self.leaf.encode(
            list(texts),
            prompt=self.spec.query_prompt or None,
            batch_size=batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return truncate_normalize(raw, self.spec.dimensions)

    def stored_vectors(self, embeddings: np.ndarray) -> list[Binary]:
        return to_bson_vectors(embeddings, self.spec)

    def query_vector(self, text: str) -> Binary:
        """The BSON query vector, of the same dtype as the stored vectors (else MongoDB finds nothing)."""
        return self.query_vector_from_embedding(self.embed_queries([text])[0])

    def query_vector_from_embedding(self, embedding: np.ndarray) -> Binary:
        return to_binary(quantize(embedding[None, :], self.spec)[0], self.spec.dtype)
