"""A LangChain retriever that encodes queries with the leaf model and searches teacher-embedded chunks.

Why a retriever of our own rather than langchain-mongodb's: the stored vectors may be int8 or packed-bit
BSON vectors, and MongoDB answers a query vector of another dtype, dimension or embedding space with an
empty result and no error. This retriever reads the vector spec persisted at ingest, builds the query vector
exactly as the documents were built (prompt, MRL truncation, renormalization, the same quantization), and
refuses with one clear message whatever cannot produce comparable vectors.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal

import numpy as np
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, PrivateAttr, model_validator
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import PyMongoError

from leaf_mongo.connection import make_async_client, make_client
from leaf_mongo.errors import LeafMongoError, SpecMismatchError
from leaf_mongo.models.encoders import QueryMode, VectorEncoder
from leaf_mongo.query import pipelines as pl
from leaf_mongo.query.deadline import DEFAULT_QUERY_TIMEOUT_MS, deadline, query_error, search_error, to_list
from leaf_mongo.query.filters import check_filter_operators, validate_pre_filter
from leaf_mongo.query.pipelines import MAX_NUM_CANDIDATES
from leaf_mongo.query.plan import (
    PER_CALL,
    QueryPlan,
    QueryState,
    SearchOptions,
    build_pipeline,
    resolve_options,
    side_pipelines,
)
from leaf_mongo.query.results import rescore_field, rescored, to_document
from leaf_mongo.settings import Backend, Dtype, Fusion, LeafMongoSettings, SearchMode, load_settings
from leaf_mongo.spec.index import check_fulltext_index, check_vector_index
from leaf_mongo.spec.store import aload_spec, load_spec
from leaf_mongo.spec.vector_spec import VectorSpec

DEFAULT_INDEX_NAME = "leaf_vector_index"
DEFAULT_FULLTEXT_INDEX_NAME = "leaf_fulltext_index"


class LeafRetriever(BaseRetriever):
    """Leaf-encoded queries against a collection embedded by the teacher, with pymongo sync and async.

    Build it from explicit arguments (``collection=`` a pymongo ``Collection`` for ``invoke``;
    ``async_collection=`` a pymongo ``AsyncCollection`` or a Motor collection for ``ainvoke``) or with
    :meth:`from_settings`. The vector spec stored at ingest is read once, on the first query, and
    checked: no stored spec, a query model of another space or dimension, or a ``leaf_model`` /
    ``dimensions`` / ``dtype`` override that disagrees with it raises :class:`SpecMismatchError` instead of
    the empty result a server would give. The ``index_name`` index is checked once too (a misspelt index
    name is also answered with silence by the server).

    ``invoke`` runs on pymongo sync. ``ainvoke`` is natively async: the spec read and the aggregate are
    awaited on the async collection. Query encoding is CPU work (a few ms for a leaf model) and by default
    runs in a worker thread (``asyncio.to_thread``) so the event loop keeps serving other requests
    (``encode_in_thread=False`` runs it inline instead, saving the thread hop); encodes are
    serialized per model (:func:`leaf_mongo.models.encoders.encode_lock`) because a fast tokenizer cannot be
    shared by two threads at once.

    Modes: ``query_mode="asymmetric"`` (default) encodes queries with the leaf model, ``"teacher"`` with the
    teacher that embedded the documents (to measure what the leaf costs). For leaf-only, ingest with the
    leaf model as teacher; asymmetric mode then is leaf-only.

    Rescoring (``rescore=True``, for int8 or binary storage ingested with full-precision vectors): the
    search fetches more candidates (``rescore_candidates``, default ``num_candidates``) with their float32
    vectors, re-ranks them by the exact dot product with the float query embedding, and keeps ``k``. This
    recovers most of the ranking lost to quantization at the price of moving ``rescore_candidates`` ×
    ``4 × dimensions`` bytes over the wire per query (e.g. 80 × 3 KiB at 768-d) and a little CPU. Scores
    are then ``(1 + cosine) / 2`` (the server's float-vector cosine scale); the server's quantized score
    stays in ``metadata["search_score"]``. With rescoring, ``post_filter_pipeline`` runs on the server over
    the candidates before re-ranking and must keep the full-precision field.

    Search modes (``search_mode``): ``"vector"`` (default) is ``$vectorSearch`` alone; ``"fulltext"`` is
    ``$search`` (BM25 over text, title and headings) on the ``search`` index ingest maintains;
    ``"hybrid"`` is one ``$rankFusion`` of both (reciprocal rank fusion, ``weight / (60 + rank)`` summed
    over the lists; ``vector_weight`` and ``fulltext_weight``, default 1 each), each list
    ``fusion_depth_factor`` × k long. The pre-filter restricts both lists (``compound.filter`` on the
    full-text side). ``$rankFusion`` needs MongoDB 8.1+; on an older server a hybrid search fails with
    a message saying so, and ``fusion="client"`` runs the two searches and fuses them here instead
    (explicitly: never as a silent fallback). Hybrid and full-text results carry the fused (or BM25)
    score in ``metadata["score"]``; hybrid adds ``metadata["score_details"]``: per list, its rank, weight
    and score.

    Deadline (``query_timeout_ms``, default 10 s; ``LEAF_MONGO_QUERY_TIMEOUT_MS``): every server round trip of a
    query runs under ``pymongo.timeout`` (CSOT ``timeoutMS``), so a hung or failing server ends the query with a
    :class:`~leaf_mongo.errors.ServerError` that says it timed out, never a wait without end or an empty list.

    Results: ``Document(id=str(_id), page_content=text, metadata={source, chunk, score, title, ...})`` with
    every stored field except the vectors (ObjectIds and dates as strings). ``k``, ``num_candidates``,
    ``exact``, ``pre_filter``, ``post_filter_pipeline``, ``score_threshold``, ``search_mode``,
    ``vector_weight`` and ``fulltext_weight`` can also be passed per call:
    ``retriever.invoke("question", k=10, search_mode="hybrid")``.
    """

    collection: Any = None
    """pymongo ``Collection`` used by ``invoke``."""
    async_collection: Any = None
    """pymongo ``AsyncCollection`` or Motor ``AsyncIOMotorCollection`` used by ``ainvoke``."""
    index_name: str = DEFAULT_INDEX_NAME
    k: int = Field(4, ge=1, le=MAX_NUM_CANDIDATES)
    num_candidates: int | None = Field(None, ge=1, le=MAX_NUM_CANDIDATES)
    """Default ``num_candidates_factor`` × k, clamped to [k, 10000]."""
    num_candidates_factor: int = Field(20, ge=1)
    exact: bool = False
    """Exact (ENN) search: no numCandidates; for small or heavily filtered collections."""
    pre_filter: dict[str, Any] | None = None
    """MQL filter on declared filter fields, applied inside ``$vectorSearch``."""
    post_filter_pipeline: list[dict[str, Any]] | None = None
    """Aggregation stages appended after the search (and the score threshold)."""
    score_threshold: float | None = None
    """Drop results whose score is below this (scores depend on similarity and dtype: calibrate per spec)."""
    query_mode: QueryMode = "asymmetric"
    rescore: bool = False
    rescore_candidates: int | None = Field(None, ge=1, le=MAX_NUM_CANDIDATES)
    leaf_model: str | None = None
    """Query model override (HF id or folder); must map into the stored teacher's space."""
    dimensions: int | None = Field(None, ge=1)
    """Expected stored dimensions; a disagreement with the stored spec is an error."""
    dtype: Dtype | None = None
    """Expected stored dtype; a disagreement with the stored spec is an error."""
    device: str | None = None
    query_prompt: str | None = None
    """Explicit query prompt; default: the one recorded at ingest (a query model configured with another
    prompt is refused unless this is set)."""
    leaf_backend: Backend = "auto"
    """Query-side inference: ``auto`` (``onnx`` where ONNX Runtime is installed, else ``torch``), ``torch``,
    ``onnx``, ``onnx-int8``, ``openvino`` or ``openvino-int8``."""
    backend_threads: int | None = None
    autoembed_query: Literal["text", "vector"] = "text"
    """autoEmbed collections: ``text`` sends ``query: {text}`` (the server embeds it; no model here), ``vector`` a
    leaf ``queryVector``."""
    encode_in_thread: bool = True
    """``ainvoke`` encodes the query in a worker thread (loop stays free); False encodes inline (no thread
    hop, lower latency for one caller, but the loop is blocked for the few ms of the forward pass)."""
    search_mode: SearchMode = "vector"
    fulltext_index_name: str = DEFAULT_FULLTEXT_INDEX_NAME
    vector_weight: float = Field(1.0, ge=0)
    fulltext_weight: float = Field(1.0, ge=0)
    fusion: Fusion = "native"
    """``native``: one ``$rankFusion`` on the server; ``client``: two searches fused here (same formula)."""
    fusion_depth_factor: int = Field(2, ge=1)
    """Each list fused in a hybrid search is ``fusion_depth_factor`` × k long."""
    query_timeout_ms: int | None = Field(DEFAULT_QUERY_TIMEOUT_MS, ge=1)
    """Deadline of a query's server round trips (pymongo CSOT); None: only the client's own ``timeoutMS``."""

    _state: QueryState | None = PrivateAttr(None)
    _settings: LeafMongoSettings | None = PrivateAttr(None)
    _sync_client: MongoClient[Any] | None = PrivateAttr(None)
    _async_client: AsyncMongoClient[Any] | None = PrivateAttr(None)
    _async_loop: asyncio.AbstractEventLoop | None = PrivateAttr(None)
    # Many first queries at once (64 ainvoke tasks on a fresh retriever) must build one encoder, not 64.
    _open_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="after")
    def _check_args(self) -> LeafRetriever:
        if self.pre_filter is not None:
            check_filter_operators(self.pre_filter)
        if self.post_filter_pipeline is not None and not all(
            isinstance(s, dict) and len(s) == 1 for s in self.post_filter_pipeline
        ):
            raise LeafMongoError("post_filter_pipeline must be a list of one-key aggregation stages")
        return self

    # ------------------------------------------------------------------------------------------ construction

    @classmethod
    def from_settings(cls, settings: LeafMongoSettings | None = None, **kwargs: Any) -> LeafRetriever:
        """A retriever on ``settings``' collection, with its own clients (made on first use).

        ``invoke`` uses a ``MongoClient``; ``ainvoke`` an ``AsyncMongoClient`` made in the running event
        loop (a new one if a later call runs in another loop). ``LEAF_MONGO_LEAF_MODEL`` and
        ``LEAF_MONGO_DIMENSIONS``, when set, are checked against the stored spec; the stored dtype is used
        as is (the settings' dtype always has a default, so it cannot tell "unset" from "float32").
        Keyword arguments override the settings.
        """
        settings = settings or load_settings()
        retriever = cls(**{**{name: getattr(settings, name) for name in _FROM_SETTINGS}, **kwargs})
        retriever._settings = settings
        return retriever

    def _sync_collection(self) -> Any:
        if self.collection is not None:
            return self.collection
        if self._settings is None:
            raise LeafMongoError(
                "invoke needs collection= (a pymongo Collection); use ainvoke for an async collection, "
                "or LeafRetriever.from_settings"
            )
        if self._sync_client is None:
            self._sync_client = make_client(self._settings)
        return self._sync_client[self._settings.database][self._settings.collection]

    def _async_collection(self) -> Any:
        if self.async_collection is not None:
            return self.async_collection
        if self._settings is None:
            raise LeafMongoError(
                "ainvoke needs async_collection= (a pymongo AsyncCollection or a Motor collection); "
                "use invoke for a sync Collection, or LeafRetriever.from_settings"
            )
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_loop is not loop:
            # An AsyncMongoClient belongs to one event loop; one from a finished loop cannot be reused.
            self._async_client = make_async_client(self._settings)
            self._async_loop = loop
        return self._async_client[self._settings.database][self._settings.collection]

    def close(self) -> None:
        """Close the sync client made by :meth:`from_settings` (explicit collections are the caller's)."""
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None

    async def aclose(self) -> None:
        """Close both clients made by :meth:`from_settings`."""
        self.close()
        if self._async_client is not None:
            client, self._async_client = self._async_client, None
            if self._async_loop is asyncio.get_running_loop():
                await client.close()

    # ------------------------------------------------------------------------------------------ spec

    @property
    def spec(self) -> VectorSpec | None:
        """The stored spec, once a query (or :meth:`load`) has read it."""
        return self._state.spec if self._state else None

    @property
    def plan(self) -> QueryPlan:
        """What the stages need from this retriever (see :func:`leaf_mongo.query.plan.build_pipeline`)."""
        return QueryPlan(
            index_name=self.index_name,
            fulltext_index_name=self.fulltext_index_name,
            num_candidates_factor=self.num_candidates_factor,
            fusion_depth_factor=self.fusion_depth_factor,
            rescore=self.rescore,
            rescore_candidates=self.rescore_candidates,
        )

    def load(self) -> QueryState:
        """Read and check the stored spec and the index now (sync) instead of on the first query."""
        if self._state is None:
            coll = self._sync_collection()
            try:
                with deadline(self.query_timeout_ms):
                    spec = load_spec(coll)
                    entries = list(coll.list_search_indexes()) if spec is not None else []
            except PyMongoError as exc:
                raise query_error(exc, f"reading the spec of {coll.full_name}", self.query_timeout_ms) from exc
            self._state = self._open_once(spec, entries, coll.full_name)
        return self._state

    async def aload(self) -> QueryState:
        """Async twin of :meth:`load` (pymongo async or Motor)."""
        if self._state is None:
            coll = self._async_collection()
            try:
                with deadline(self.query_timeout_ms):
                    spec = await aload_spec(coll)
                    entries = await to_list(coll.list_search_indexes()) if spec is not None else []
            except PyMongoError as exc:
                raise query_error(exc, f"reading the spec of {coll.full_name}", self.query_timeout_ms) from exc
            # Loading the model and checking it is CPU and disk work: keep it off the event loop.
            self._state = await asyncio.to_thread(self._open_once, spec, entries, coll.full_name)
        return self._state

    def _open_once(self, spec: VectorSpec | None, entries: list[Any], where: str) -> QueryState:
        """:meth:`_open` by the first caller; concurrent first callers wait for it and share its state."""
        with self._open_lock:
            if self._state is None:
                self._state = self._open(spec, entries, where)
            return self._state

    def _open(self, spec: VectorSpec | None, entries: list[Any], where: str) -> QueryState:
        """Check the stored spec and build the query encoder: every check that can be made once (spec present,
        overrides agree, query model fits, indexes fit)."""
        if spec is None:
            raise SpecMismatchError(
                f"collection {where} has no leaf-mongo spec: ingest first (leaf-mongo ingest), "
                "or point LEAF_MONGO_DATABASE / LEAF_MONGO_COLLECTION at an ingested collection"
            )
        conflicts = []
        if self.dimensions is not None and self.dimensions != spec.dimensions:
            conflicts.append(f"dimensions: stored {spec.dimensions}, requested {self.dimensions}")
        if self.dtype is not None and self.dtype != spec.dtype:
            conflicts.append(f"dtype: stored {spec.dtype!r}, requested {self.dtype!r}")
        if conflicts:
            raise SpecMismatchError(
                f"cannot query {where}: {'; '.join(conflicts)}. Query with the stored settings "
                "(or re-ingest with the new ones); the server would silently return nothing."
            )
        encoder = self._query_encoder(spec, where)
        if self.rescore:
            rescore_field(spec, where)
        if self.pre_filter is not None:
            validate_pre_filter(self.pre_filter, spec.filter_fields, where)
        indexes = {str(e.get("name")): dict(e) for e in entries}
        state = QueryState(spec=spec, encoder=encoder, where=where, indexes=indexes)
        state.server_embeds = bool(spec.autoembed_model) and self.autoembed_query == "text"
        self._require(state, self.search_mode)
        return state

    def _query_encoder(self, spec: VectorSpec, where: str) -> VectorEncoder:
        query_spec = spec
        if self.leaf_model and self.leaf_model != spec.leaf_model:
            query_spec = spec.model_copy(update={"leaf_model": self.leaf_model})
        encoder = VectorEncoder(
            query_spec,
            query_mode=self.query_mode,
            device=self.device,
            leaf_backend=self.leaf_backend,
            query_prompt=self.query_prompt,
            threads=self.backend_threads,
        )
        if spec.autoembed_model and self.autoembed_query == "text":
            return encoder  # unused (the server embeds queries); built lazily, it loaded nothing
        try:
            encoder.check_query_model()
        except SpecMismatchError as exc:
            raise SpecMismatchError(f"cannot query {where}: {exc}") from exc
        return encoder

    def _require(self, state: QueryState, mode: SearchMode) -> None:
        """The indexes ``mode`` queries exist and fit the spec (checked once per mode)."""
        if mode in state.checked:
            return
        if mode in ("vector", "hybrid"):
            check_vector_index(state.indexes.get(self.index_name), self.index_name, state.spec, state.where)
        if mode in ("fulltext", "hybrid"):
            name = self.fulltext_index_name
            check_fulltext_index(state.indexes.get(name), name, state.spec, state.where)
        if self.rescore and mode != "vector":
            raise LeafMongoError(f"rescore applies to vector search only, not to search_mode={mode!r}")
        state.checked.add(mode)

    # ------------------------------------------------------------------------------------------ search

    def options(self, state: QueryState, **overrides: Any) -> SearchOptions:
        """This retriever's search options with per-call ``overrides`` (the ``invoke`` keyword arguments)."""
        defaults = {name: getattr(self, name) for name in PER_CALL}
        options = resolve_options(defaults, overrides, self.plan, state.spec, state.where)
        self._require(state, options.search_mode)
        return options

    def _finish(
        self, state: QueryState, raw: list[dict[str, Any]], emb: np.ndarray | None, options: SearchOptions
    ) -> list[Document]:
        if self.rescore and emb is not None and options.search_mode == "vector":
            field = rescore_field(state.spec, state.where)
            raw = rescored(raw, emb, field, options.k, options.score_threshold)
        return [to_document(doc, state.spec) for doc in raw]

    def _pipelines(
        self, state: QueryState, qvec: Any, options: SearchOptions, query: str
    ) -> dict[str, list[dict[str, Any]]]:
        """One pipeline (keyed ``""``), or the two of client-side fusion keyed by their fusion names."""
        if options.search_mode == "hybrid" and self.fusion == "client":
            return side_pipelines(state.spec, self.plan, options, qvec, query, state.where)
        return {"": build_pipeline(state.spec, self.plan, options, qvec, query, state.where)}

    def _combine(self, lists: dict[str, list[dict[str, Any]]], options: SearchOptions) -> list[dict[str, Any]]:
        if "" in lists:
            return lists[""]
        return pl.fuse_rrf(lists, dict(options.weights), options.k, options.score_threshold)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        state = self.load()
        options = self.options(state, **kwargs)
        emb, qvec = state.encode(query) if options.search_mode != "fulltext" else (None, None)
        coll = self._sync_collection()
        try:
            pipelines = self._pipelines(state, qvec, options, query)
            with deadline(self.query_timeout_ms):
                raw = self._combine({name: list(coll.aggregate(p)) for name, p in pipelines.items()}, options)
        except PyMongoError as exc:
            raise search_error(exc, state.where, options.search_mode, self.query_timeout_ms) from exc
        return self._finish(state, raw, emb, options)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        state = await self.aload()
        options = self.options(state, **kwargs)
        emb: np.ndarray | None = None
        qvec: Any = None
        if options.search_mode != "fulltext":
            if self.encode_in_thread and not state.server_embeds:
                emb, qvec = await asyncio.to_thread(state.encode, query)
            else:
                emb, qvec = state.encode(query)
        coll = self._async_collection()
        try:
            pipelines = self._pipelines(state, qvec, options, query)
            with deadline(self.query_timeout_ms):  # the gathered tasks copy the context: they share the deadline
                results = await asyncio.gather(*(to_list(coll.aggregate(p)) for p in pipelines.values()))
            raw = self._combine(dict(zip(pipelines, results, strict=True)), options)
        except PyMongoError as exc:
            raise search_error(exc, state.where, options.search_mode, self.query_timeout_ms) from exc
        return self._finish(state, raw, emb, options)


_FROM_SETTINGS = (
    "index_name k num_candidates_factor leaf_model dimensions device search_mode fulltext_index_name vector_weight "
    "fulltext_weight fusion fusion_depth_factor query_prompt leaf_backend backend_threads query_timeout_ms"
).split()
"""Retriever fields :meth:`LeafRetriever.from_settings` takes from the settings attribute of the same name."""
