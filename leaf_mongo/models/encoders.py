"""Encoders: documents through the teacher, queries through the leaf model, both into the spec's space.

Every text goes through sentence-transformers' task API, as the model cards call it: ``encode_document`` for
documents and ``encode_query`` for queries, so a Router packaging (``mdbr-leaf-*-asym``) takes the right route
and a model's configured prompt applies exactly once (leaf-mongo resolves the prompt and passes it explicitly,
which is what the spec and the embedding cache record). Each side runs on its own backend (torch, or an exported
ONNX / OpenVINO graph of the same route, see :mod:`leaf_mongo.models.backends`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from bson.binary import Binary

from leaf_mongo.errors import SpecMismatchError
from leaf_mongo.models.backends import OnnxTextEncoder, ensure_exported, resolve_backend
from leaf_mongo.models.cache import open_cache
from leaf_mongo.models.layout import Task
from leaf_mongo.models.loading import aligned_teacher, applied_prompt, embedding_dimension, load_model
from leaf_mongo.models.prompts import configures_prompt
from leaf_mongo.spec import VectorSpec
from leaf_mongo.spec.profiles import known_dimensions, published_space
from leaf_mongo.spec.vectors import quantize, to_binary, to_bson_vectors, truncate_normalize

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


QueryMode = Literal["asymmetric", "teacher"]

# A fast tokenizer cannot be called from two threads at once ("Already borrowed"), and every encoder in the
# process shares the cached model, so calls into one model are serialized (they are CPU-bound anyway).
_ENCODE_LOCKS: dict[str, threading.Lock] = {}


def encode_lock(model: str) -> threading.Lock:
    """The lock serializing encode calls into ``model`` (the retriever and the LangChain embeddings share it)."""
    return _ENCODE_LOCKS.setdefault(model, threading.Lock())


class SideEncoder:
    """One model route (query or document) on one backend; loads nothing until first used."""

    def __init__(
        self, model: str, task: Task, backend: str = "torch", device: str | None = None, threads: int | None = None
    ) -> None:
        self.model_name, self.task, self.device, self.threads = model, task, device, threads
        self.backend = resolve_backend(backend)
        self.pool: Any = None
        """A sentence-transformers multi-process pool for this route (see :mod:`leaf_mongo.ingest.pool`)."""

    @cached_property
    def _onnx(self) -> Any:

        return OnnxTextEncoder(ensure_exported(self.model_name, self.task, self.backend), threads=self.threads)

    @property
    def st_model(self) -> SentenceTransformer:
        """The torch model of this route (a Router packaging loads only this route)."""

        return load_model(self.model_name, self.device, task=self.task)

    @property
    def dimension(self) -> int | None:
        if self.backend != "torch":
            return self._onnx.dimension  # type: ignore[no-any-return]

        return embedding_dimension(self.st_model)

    def tokenizer_and_limit(self) -> tuple[Any, int]:
        """This route's fast tokenizer (a ``tokenizers.Tokenizer``) and its sequence limit in tokens, on either
        backend: what a caller counting or truncating tokens as the model does needs."""
        if self.backend != "torch":
            exported = self._onnx
            return exported.tokenizer, int(exported.manifest["max_seq_length"])
        model = self.st_model
        return model.tokenizer.backend_tokenizer, int(model.max_seq_length or model.tokenizer.model_max_length)

    def default_prompt(self) -> str:
        """The prompt the library applies to this route when given none (the model card's call)."""
        if self.backend != "torch":
            return self._onnx.prompt  # type: ignore[no-any-return]

        return applied_prompt(self.st_model, self.task)

    def encode(self, texts: Sequence[str], prompt: str, batch_size: int = 32) -> np.ndarray:
        """Raw embeddings (before MRL truncation), with ``prompt`` applied exactly once."""
        if self.backend != "torch":
            return self._onnx.encode(texts, prompt=prompt, batch_size=batch_size)  # type: ignore[no-any-return]
        model = self.st_model
        call = model.encode_query if self.task == "query" else model.encode_document
        pooled: dict[str, Any] = {"pool": self.pool, "chunk_size": batch_size} if self.pool else {}
        return np.asarray(
            call(
                list(texts), prompt=prompt, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False,
                **pooled,
            )
        )  # fmt: skip


def vector_space(model: str, task: Task) -> str | None:
    """The teacher whose space ``model``'s ``task`` vectors live in, where that is known.

    Published models (teachers, leaves, ``-asym`` packagings) and ``leaf-mongo distill`` outputs say so; any
    other document model defines its own space; any other query model is unknown (None), and only its
    dimension can be checked.
    """

    space = published_space(model) or aligned_teacher(model)
    if space:
        return space
    return model if task == "document" else None


class VectorEncoder:
    """Turns texts into vectors comparable with what ``spec`` stores.

    ``query_mode="asymmetric"`` (default) encodes queries with the leaf model, ``"teacher"`` with the
    teacher's query route (to measure what the leaf model costs). For a leaf-only comparison, build the
    collection with the leaf model as its document model (``teacher_model = leaf_model``).
    ``query_prompt`` overrides the recorded query prompt (an explicit setting). ``leaf_backend`` runs the query
    side (whichever model it is), ``teacher_backend`` the document side.
    """

    def __init__(
        self,
        spec: VectorSpec,
        *,
        query_mode: QueryMode = "asymmetric",
        device: str | None = None,
        cache_dir: str | Path | None = None,
        leaf_backend: str = "torch",
        teacher_backend: str = "torch",
        query_prompt: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.spec = spec
        self.query_mode = query_mode
        self.device = device
        self.cache = open_cache(cache_dir) if cache_dir else None
        self.explicit_query_prompt = query_prompt
        self.documents = SideEncoder(spec.teacher_model, "document", teacher_backend, device, threads)
        self.queries = SideEncoder(self.query_model_name, "query", leaf_backend, device, threads)

    @property
    def document_model_name(self) -> str:
        return self.spec.teacher_model

    @property
    def query_model_name(self) -> str:
        return self.spec.leaf_model if self.query_mode == "asymmetric" else self.spec.teacher_model

    @property
    def cache_model_key(self) -> str:
        """Embedding-cache model key: the model, plus the backend when it is not torch (int8 outputs differ)."""
        backend = self.documents.backend
        return self.document_model_name if backend == "torch" else f"{self.document_model_name}#{backend}"

    @property
    def teacher(self) -> SentenceTransformer:
        """The document route as a torch model (its tokenizer and sequence limit drive chunking)."""
        return self.documents.st_model

    @cached_property
    def query_prompt(self) -> str:
        """Explicit override, else the recorded prompt; in teacher mode the teacher's own query prompt if it
        configures one (the recorded prompt is the leaf's)."""
        if self.explicit_query_prompt is not None:
            return self.explicit_query_prompt
        if self.query_mode == "teacher" and configures_prompt(self.query_model_name, "query"):
            return self.queries.default_prompt()
        return self.spec.query_prompt

    def check_query_model(self, load: bool = True, prompt: bool = True) -> None:
        """Refuse a query model whose vectors cannot be compared with the stored teacher vectors.

        ``load=False`` checks the dimension only where it is known without loading the query model (a published
        id or a local folder). ``prompt=False`` (at ingest, where the spec records the prompt being chosen now)
        skips the check of the model's configured prompt against the recorded one.
        """
        name, spec = self.query_model_name, self.spec
        doc_space, query_space = vector_space(spec.teacher_model, "document"), vector_space(name, "query")
        if name != spec.teacher_model and query_space is not None and query_space != doc_space:
            raise SpecMismatchError(
                f"query model {name!r} is aligned to {query_space!r}, but the documents are embedded by "
                f"{spec.teacher_model!r} (space of {doc_space!r}); its vectors live in another space"
            )

        known = known_dimensions(name)
        if load or known is not None or Path(name).expanduser().is_dir():
            dim = known if known is not None else self.queries.dimension
        else:
            return
        if dim is not None and dim != spec.full_dimensions:
            raise SpecMismatchError(
                f"query model {name!r} produces {dim}-d vectors but the collection's teacher "
                f"{spec.teacher_model!r} produces {spec.full_dimensions}-d: they cannot be compared"
            )
        if load and prompt:
            self.check_query_prompt()

    def check_query_prompt(self) -> None:
        """A query model configured with another prompt than the recorded one would drift silently: refuse,
        unless the prompt is overridden explicitly."""
        if self.explicit_query_prompt is not None or self.query_mode == "teacher":
            return

        if not configures_prompt(self.query_model_name, "query"):
            return
        own = self.queries.default_prompt()
        if own != self.spec.query_prompt:
            raise SpecMismatchError(
                f"query model {self.query_model_name!r} is configured with the query prompt {own!r}, but the "
                f"collection recorded {self.spec.query_prompt!r}; set LEAF_MONGO_QUERY_PROMPT (query_prompt=) "
                "to choose one explicitly"
            )

    def embed_documents(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Teacher vectors (``encode_document``, the recorded document prompt), truncated and renormalized."""
        prompt = self.spec.document_prompt

        def compute(batch: list[str]) -> np.ndarray:
            return self.documents.encode(batch, prompt, batch_size=batch_size)

        texts = list(texts)
        raw = compute(texts) if self.cache is None else self.cache.encode(self.cache_model_key, prompt, texts, compute)
        return truncate_normalize(raw, self.spec.dimensions)

    def embed_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Leaf (or teacher) vectors (``encode_query``, the query prompt), truncated and renormalized."""
        raw = self.queries.encode(list(texts), self.query_prompt, batch_size=batch_size)
        return truncate_normalize(raw, self.spec.dimensions)

    def stored_vectors(self, embeddings: np.ndarray) -> list[Binary]:
        return to_bson_vectors(embeddings, self.spec)

    def query_vector(self, text: str) -> Binary:
        """The BSON query vector, of the same dtype as the stored vectors (else MongoDB finds nothing)."""
        return self.query_vector_from_embedding(self.embed_queries([text])[0])

    def query_vector_from_embedding(self, embedding: np.ndarray) -> Binary:
        return to_binary(quantize(embedding[None, :], self.spec)[0], self.spec.dtype)
