"""The teacher/leaf pair as a LangChain ``Embeddings``, so it plugs into any LangChain vector store.

Documents go through the teacher (``encode_document``, the spec's document prompt) and queries through the leaf
model (``encode_query``, the spec's query prompt), both truncated to the spec's dimensions and renormalized,
exactly as leaf-mongo's own ingest and retriever do. Vectors are returned as float lists because that is what
vector stores take; quantized BSON storage (int8, packed bits) needs
:class:`leaf_mongo.query.retriever.LeafRetriever` instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.embeddings import Embeddings

from leaf_mongo.errors import SpecMismatchError
from leaf_mongo.models.encoders import QueryMode, VectorEncoder, encode_lock
from leaf_mongo.models.resolve import spec_from_settings
from leaf_mongo.settings import LeafMongoSettings, load_settings
from leaf_mongo.spec import VectorSpec
from leaf_mongo.spec.store import load_spec


class LeafEmbeddings(Embeddings):
    """``embed_documents`` = teacher, ``embed_query`` = leaf (asymmetric); both in the spec's space.

    ``query_mode="teacher"`` embeds queries with the teacher too (a baseline for comparisons). Async
    variants run the CPU-bound encoding in a worker thread (``asyncio.to_thread``): there is no I/O to
    await, and it keeps an event loop responsive.
    """

    def __init__(
        self,
        spec: VectorSpec,
        *,
        query_mode: QueryMode = "asymmetric",
        device: str | None = None,
        batch_size: int = 64,
        leaf_backend: str = "auto",
        teacher_backend: str = "torch",
    ) -> None:
        self.spec = spec
        self.batch_size = batch_size
        self.encoder = VectorEncoder(
            spec, query_mode=query_mode, device=device, leaf_backend=leaf_backend, teacher_backend=teacher_backend
        )

    @classmethod
    def from_settings(cls, settings: LeafMongoSettings | None = None, **kwargs: Any) -> LeafEmbeddings:
        """Resolve the spec from settings (profile, models, dimensions), as ingest would."""

        settings = settings or load_settings()
        kwargs.setdefault("device", settings.device)
        kwargs.setdefault("batch_size", settings.batch_size)
        kwargs.setdefault("leaf_backend", settings.leaf_backend)
        kwargs.setdefault("teacher_backend", settings.teacher_backend)
        return cls(spec_from_settings(settings), **kwargs)

    @classmethod
    def from_collection(cls, collection: Any, **kwargs: Any) -> LeafEmbeddings:
        """The spec stored for an ingested pymongo ``Collection`` (so queries match its documents)."""

        spec = load_spec(collection)
        if spec is None:
            raise SpecMismatchError(f"collection {collection.full_name} has no leaf-mongo spec: ingest first")
        return cls(spec, **kwargs)

    @property
    def dimensions(self) -> int:
        return self.spec.dimensions

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Teacher vectors (the recorded document prompt), truncated and renormalized."""
        if not texts:
            return []
        with encode_lock(self.encoder.document_model_name):
            vectors: list[list[float]] = self.encoder.embed_documents(texts, batch_size=self.batch_size).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Leaf vector of ``text`` with the query prompt, truncated and renormalized."""
        with encode_lock(self.encoder.query_model_name):
            vector: list[float] = self.encoder.embed_queries([text])[0].tolist()
        return vector

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await asyncio.to_thread(self.embed_query, text)
