"""Vectors of one ``autoEmbed`` field, made by the embedding provider, kept in step with the collection.

mongot writes them into a materialized view (``_autoEmbed.<path>`` plus a SHA-256 of the text at
``_autoEmbed._hash.<path>``) and reuses a vector when the text hash is unchanged
(``AutoEmbeddingDocumentUtils.compareDocuments``); the emulator keeps the same (hash, vector) pairs beside its
matrices instead of a collection. mongot embeds asynchronously; the emulator embeds inside the write (so a
write is searchable when acknowledged). Documents whose batch still fails after the retries stay *pending* and
are retried on the next write or query, as mongot's replication retries after its transient backoff.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from leaf_mongo.testing.autoembed_definition import AutoEmbedSpec
from leaf_mongo.testing.embedding import EmbeddingClient, TransientEmbeddingError
from leaf_mongo.testing.vector_store import ParsedVector, PathVectors, SlotMatrix, get_path


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AutoEmbedVectors(PathVectors):
    """A :class:`PathVectors` whose vectors come from the provider instead of the documents."""

    def __init__(self, spec: AutoEmbedSpec, client: EmbeddingClient | None) -> None:
        super().__init__(spec.path)
        self.spec = spec
        self.client = client
        self.hashes: dict[Any, str] = {}  # key -> hash of the text its vector (or its 400) was made from
        self.pending: dict[Any, str] = {}  # key -> text still to embed (the provider kept failing)
        self.calls = 0  # provider batches sent (tests check that unchanged text is not re-embedded)

    def upsert(self, key: Any, doc: Mapping[str, Any]) -> None:
        self.upsert_many([(key, doc)])

    def remove(self, key: Any) -> None:
        super().remove(key)
        self.hashes.pop(key, None)
        self.pending.pop(key, None)

    def clear(self) -> None:
        super().clear()
        self.hashes.clear()
        self.pending.clear()

    def upsert_many(self, items: Iterable[tuple[Any, Mapping[str, Any] | None]]) -> None:
        """Follow written documents: deleted or text-less ones lose their vector; changed text is re-embedded."""
        for key, doc in items:
            text = get_path(doc, self.path) if doc is not None else None
            if not isinstance(text, str) or not text:  # mongot embeds strings; empty ones are never sent
                self.remove(key)
                continue
            if self.hashes.get(key) == text_hash(text) and key not in self.pending:
                continue  # unchanged text: the vector is reused
            super().remove(key)
            self.hashes.pop(key, None)
            self.pending[key] = text
        self.catch_up()

    def catch_up(self) -> None:
        """Embed what is pending (deduplicated texts, as mongot's scheduler); on failure it stays pending."""
        if not self.pending or self.client is None:
            return
        texts = sorted(set(self.pending.values()))
        s = self.spec
        try:
            self.calls += 1
            vectors = self.client.embed_documents(texts, s.model, s.num_dimensions, s.output_dtype)
        except TransientEmbeddingError:
            return
        by_text = dict(zip(texts, vectors, strict=True))
        for key, text in list(self.pending.items()):
            self._put(key, by_text[text])
            self.hashes[key] = text_hash(text)
        self.pending.clear()

    def _put(self, key: Any, parsed: ParsedVector | None) -> None:
        if parsed is None:
            return  # the provider refused (400): the document stays without a vector
        slot = (parsed.kind, parsed.dim)
        matrix = self.matrices.get(slot)
        if matrix is None:
            matrix = self.matrices[slot] = SlotMatrix(parsed.kind, parsed.dim)
        self._where[key] = (slot, matrix.add(key, parsed.values))
