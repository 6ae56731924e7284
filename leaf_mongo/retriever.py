"""A LangChain retriever that encodes queries with the leaf model and searches teacher-embedded chunks.

Why a retriever of our own rather than langchain-mongodb's: the stored vectors may be int8 or packed-bit
BSON vectors, and MongoDB answers a query vector of another dtype, dimension or embedding space with an
empty result and no error. This retriever reads the vector spec persisted at ingest, builds the query vector
exactly as the documents were built (prompt, MRL truncation, renormalization, the same quantization), and
refuses with one clear message whatever cannot produce comparable vectors.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from bson.binary import Binary
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, PrivateAttr, model_validator
from pymongo.errors import OperationFailure, PyMongoError

from leaf_mongo import pipelines as pl
from leaf_mongo.embeddings import encode_lock
from leaf_mongo.encoders import QueryMode, VectorEncoder
from leaf_mongo.errors import LeafMongoError, ServerError, SpecMismatchError
from leaf_mongo.filters import (  # noqa: F401 - re-exported: the filter API predates leaf_mongo.filters
    ALLOWED_OPERATORS,
    check_filter_operators,
    filter_fields_used,
    validate_pre_filter,
)
from leaf_mongo.index import check_fulltext_index, check_vector_index
from leaf_mongo.pipelines import MAX_NUM_CANDIDATES, num_candidates_for
from leaf_mongo.results import rescore_field, rescored, to_document
from leaf_mongo.settings import Backend, Dtype, Fusion, SearchMode
from leaf_mongo.spec import VectorSpec
from leaf_mongo.spec_store import aload_spec, load_spec

if TYPE_CHECKING:
    from leaf_mongo.settings import LeafMongoSettings

DEFAULT_INDEX_NAME = "leaf_vector_index"
DEFAULT_FULLTEXT_INDEX_NAME = "leaf_fulltext_index"
UNRECOGNIZED_STAGE = 40324  # server code for a pipeline stage it does not know
_PER_CALL = (
    "k",
    "num_candidates",
    "exact",
    "pre_filter",
    "post_filter_pipeline",
    "score_threshold",
    "search_mode",
    "vector_weight",
    "fulltext_weight",
)

# ---------------------------------------------------------------------------------------------- state


@dataclass
class _QueryState:
    """What one spec read yields; cached for the life of the retriever."""

    spec: VectorSpec
    encoder: VectorEncoder
    where: str
    indexes: dict[str, dict[str, Any]]
    checked: set[str]

    def encode(self, text: str) -> tuple[np.ndarray, Binary]:
        """Normalized float query embedding (for rescoring) and the BSON query vector of the stored dtype."""
        with encode_lock(self.encoder.query_model_name):
            emb = self.encoder.embed_queries([text])[0]
        return emb, self.encoder.query_vector_from_embedding(emb)


@dataclass(frozen=True)
class _Call:
    """The options of one search, after per-call overrides."""

    k: int
    num_candidates: int
    exact: bool
    pre_filter: dict[str, Any] | None
    post_filter_pipeline: list[dict[str, Any]]
    score_threshold: float | None
    search_mode: SearchMode = "vector"
    weights: tuple[tuple[str, float], ...] = ()


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
    serialized per model (:func:`leaf_mongo.embeddings.encode_lock`) because a fast tokenizer cannot be
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
    leaf_backend: Backend = "torch"
    """Query-side inference: ``torch``, ``onnx``, ``onnx-int8``, ``openvino`` or ``openvino-int8``."""
    backend_threads: int | None = None
    encode_in_thread: bool = True
    search_mode: SearchMode = "vector"
    fulltext_index_name: str = DEFAULT_FULLTEXT_INDEX_NAME
    vector_weight: float = Field(1.0, ge=0)
    fulltext_weight: float = Field(1.0, ge=0)
    fusion: Fusion = "native"
    """``native``: one ``$rankFusion`` on the server; ``client``: two searches fused here (same formula)."""
    fusion_depth_factor: int = Field(2, ge=1)
    """``ainvoke`` encodes the query in a worker thread (loop stays free); False encodes inline (no thread
    hop, lower latency for one caller, but the loop is blocked for the few ms of the forward pass)."""

    _state: _QueryState | None = PrivateAttr(None)
    _settings: LeafMongoSettings | None = PrivateAttr(None)
    _sync_client: Any = PrivateAttr(None)
    _async_client: Any = PrivateAttr(None)
    _async_loop: Any = PrivateAttr(None)

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
        from leaf_mongo.settings import load_settings

        settings = settings or load_settings()
        args: dict[str, Any] = {
            "index_name": settings.index_name,
            "k": settings.k,
            "num_candidates_factor": settings.num_candidates_factor,
            "leaf_model": settings.leaf_model,
            "dimensions": settings.dimensions,
            "device": settings.device,
            "search_mode": settings.search_mode,
            "fulltext_index_name": settings.fulltext_index_name,
            "vector_weight": settings.vector_weight,
            "fulltext_weight": settings.fulltext_weight,
            "fusion": settings.fusion,
            "fusion_depth_factor": settings.fusion_depth_factor,
            "query_prompt": settings.query_prompt,
            "leaf_backend": settings.leaf_backend,
            "backend_threads": settings.backend_threads,
        }
        args.update(kwargs)
        retriever = cls(**args)
        retriever._settings = settings
        return retriever

    def _client_kwargs(self) -> dict[str, Any]:
        from leaf_mongo.connection import client_options

        assert self._settings is not None
        return client_options(self._settings)

    def _sync_collection(self) -> Any:
        if self.collection is not None:
            return self.collection
        if self._settings is None:
            raise LeafMongoError(
                "invoke needs collection= (a pymongo Collection); use ainvoke for an async collection, "
                "or LeafRetriever.from_settings"
            )
        if self._sync_client is None:
            from pymongo import MongoClient

            self._sync_client = MongoClient(self._settings.uri.get_secret_value(), **self._client_kwargs())
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
            from pymongo import AsyncMongoClient

            # An AsyncMongoClient belongs to one event loop; one from a finished loop cannot be reused.
            self._async_client = AsyncMongoClient(self._settings.uri.get_secret_value(), **self._client_kwargs())
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

    def load(self) -> VectorSpec:
        """Read and check the stored spec and the index now (sync) instead of on the first query."""
        if self._state is None:
            coll = self._sync_collection()
            try:
                spec = load_spec(coll)
                entries = list(coll.list_search_indexes()) if spec is not None else []
            except PyMongoError as exc:
                raise _server_error(exc, f"reading the spec of {coll.full_name}") from None
            self._state = self._prepare(spec, entries, coll.full_name)
        return self._state.spec

    async def aload(self) -> VectorSpec:
        """Async twin of :meth:`load` (pymongo async or Motor)."""
        if self._state is None:
            coll = self._async_collection()
            try:
                spec = await aload_spec(coll)
                entries: list[Any] = []
                if spec is not None:
                    cursor = coll.list_search_indexes()
                    if inspect.isawaitable(cursor):  # pymongo async: coroutine; Motor: latent cursor
                        cursor = await cursor
                    entries = await cursor.to_list(None)
            except PyMongoError as exc:
                raise _server_error(exc, f"reading the spec of {coll.full_name}") from None
            # Loading the model and checking it is CPU and disk work: keep it off the event loop.
            self._state = await asyncio.to_thread(self._prepare, spec, entries, coll.full_name)
        return self._state.spec

    def _prepare(self, spec: VectorSpec | None, entries: list[Any], where: str) -> _QueryState:
        """Every check that can be made once: spec present, overrides agree, query model fits, index fits."""
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
        try:
            encoder.check_query_model()
        except SpecMismatchError as exc:
            raise SpecMismatchError(f"cannot query {where}: {exc}") from None
        if self.rescore:
            rescore_field(spec, where)
        if self.pre_filter is not None:
            validate_pre_filter(self.pre_filter, spec.filter_fields, where)
        indexes = {str(e.get("name")): dict(e) for e in entries}
        state = _QueryState(spec=spec, encoder=encoder, where=where, indexes=indexes, checked=set())
        self._require(state, self.search_mode)
        return state

    def _require(self, state: _QueryState, mode: SearchMode) -> None:
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

    def _call(self, state: _QueryState, overrides: Mapping[str, Any]) -> _Call:
        unknown = set(overrides) - set(_PER_CALL)
        if unknown:
            raise TypeError(f"unexpected search options {sorted(unknown)}; allowed: {', '.join(_PER_CALL)}")
        k = int(overrides.get("k", self.k))
        if not 1 <= k <= MAX_NUM_CANDIDATES:
            raise LeafMongoError(f"k must be in 1..{MAX_NUM_CANDIDATES}, got {k}")
        pre = overrides.get("pre_filter", self.pre_filter)
        if "pre_filter" in overrides and pre is not None:
            validate_pre_filter(pre, state.spec.filter_fields, state.where)
        post = overrides.get("post_filter_pipeline", self.post_filter_pipeline)
        mode = overrides.get("search_mode", self.search_mode)
        if mode not in ("vector", "fulltext", "hybrid"):
            raise LeafMongoError(f"search_mode must be one of vector, fulltext, hybrid; got {mode!r}")
        weights = []
        for name, attr in ((pl.VECTOR_PIPELINE, "vector_weight"), (pl.FULLTEXT_PIPELINE, "fulltext_weight")):
            w = overrides.get(attr, getattr(self, attr))
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0:
                raise LeafMongoError(f"{attr} must be a non-negative number, got {w!r}")
            weights.append((name, float(w)))
        self._require(state, mode)
        return _Call(
            k=k,
            num_candidates=num_candidates_for(
                k, overrides.get("num_candidates", self.num_candidates), self.num_candidates_factor
            ),
            exact=bool(overrides.get("exact", self.exact)),
            pre_filter=dict(pre) if pre else None,
            post_filter_pipeline=list(post or []),
            score_threshold=overrides.get("score_threshold", self.score_threshold),
            search_mode=mode,
            weights=tuple(weights),
        )

    def pipeline(self, state: _QueryState, query_vector: Any, call: _Call, query: str = "") -> list[dict[str, Any]]:
        """The aggregation pipeline for one query (public so benchmarks can replay it)."""
        spec = state.spec
        if call.search_mode == "fulltext":
            return pl.fulltext_pipeline(
                spec,
                index=self.fulltext_index_name,
                query=query,
                limit=call.k,
                pre_filter=call.pre_filter,
                score_threshold=call.score_threshold,
                post=call.post_filter_pipeline,
            )
        if call.search_mode == "hybrid":
            depth = pl.fusion_depth(call.k, self.fusion_depth_factor)
            return pl.rank_fusion_pipeline(
                spec,
                vector_index=self.index_name,
                fulltext_index=self.fulltext_index_name,
                query=query,
                query_vector=query_vector,
                k=call.k,
                depth=depth,
                num_candidates=max(call.num_candidates, num_candidates_for(depth, None, self.num_candidates_factor)),
                weights=dict(call.weights),
                exact=call.exact,
                pre_filter=call.pre_filter,
                score_threshold=call.score_threshold,
                post=call.post_filter_pipeline,
            )
        keep = rescore_field(spec, state.where) if self.rescore else None
        limit = call.k
        num_candidates = call.num_candidates
        if keep is not None:
            limit = max(call.k, min(self.rescore_candidates or call.num_candidates, MAX_NUM_CANDIDATES))
            num_candidates = max(num_candidates, limit)
        return pl.vector_pipeline(
            spec,
            index=self.index_name,
            query_vector=query_vector,
            limit=limit,
            num_candidates=num_candidates,
            exact=call.exact,
            pre_filter=call.pre_filter,
            score_threshold=call.score_threshold if keep is None else None,
            post=call.post_filter_pipeline,
            keep=keep,
        )

    def side_pipelines(self, state: _QueryState, query_vector: Any, call: _Call, query: str) -> dict[str, Any]:
        """Client-side fusion: the vector and the full-text pipeline, run separately (same depth each)."""
        depth = pl.fusion_depth(call.k, self.fusion_depth_factor)
        side = _Call(
            k=depth,
            num_candidates=num_candidates_for(depth, None, self.num_candidates_factor),
            exact=call.exact,
            pre_filter=call.pre_filter,
            post_filter_pipeline=call.post_filter_pipeline,
            score_threshold=None,
        )
        return {
            pl.VECTOR_PIPELINE: self.pipeline(state, query_vector, side),
            pl.FULLTEXT_PIPELINE: self.pipeline(state, None, _replace_mode(side, "fulltext"), query),
        }

    def _search_error(self, exc: PyMongoError, state: _QueryState, call: _Call) -> ServerError:
        if (
            call.search_mode == "hybrid"
            and isinstance(exc, OperationFailure)
            and (exc.code == UNRECOGNIZED_STAGE or "$rankFusion" in str(exc))
        ):
            return ServerError(
                f"hybrid search of {state.where} needs the $rankFusion stage, which this server does not have "
                "(MongoDB 8.1 or later with mongot has it). Upgrade the server, or fuse on the client "
                "explicitly: fusion='client' (LEAF_MONGO_FUSION=client, leaf-mongo search --fusion client) runs "
                "the vector and full-text searches separately and combines them with the same reciprocal rank "
                "formula"
            )
        return _server_error(exc, f"searching {state.where}")

    def _finish(
        self, state: _QueryState, raw: list[dict[str, Any]], emb: np.ndarray | None, call: _Call
    ) -> list[Document]:
        if self.rescore and emb is not None and call.search_mode == "vector":
            raw = rescored(raw, emb, rescore_field(state.spec, state.where), call)
        return [to_document(doc, state.spec) for doc in raw]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        self.load()
        state = self._state
        assert state is not None
        call = self._call(state, kwargs)
        emb, qvec = state.encode(query) if call.search_mode != "fulltext" else (None, None)
        coll = self._sync_collection()
        try:
            if call.search_mode == "hybrid" and self.fusion == "client":
                sides = self.side_pipelines(state, qvec, call, query)
                lists = {name: list(coll.aggregate(p)) for name, p in sides.items()}
                raw = pl.fuse_rrf(lists, dict(call.weights), call.k, call.score_threshold)
            else:
                raw = list(coll.aggregate(self.pipeline(state, qvec, call, query)))
        except PyMongoError as exc:
            raise self._search_error(exc, state, call) from None
        return self._finish(state, raw, emb, call)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        await self.aload()
        state = self._state
        assert state is not None
        call = self._call(state, kwargs)
        emb: np.ndarray | None = None
        qvec: Any = None
        if call.search_mode != "fulltext":
            emb, qvec = await asyncio.to_thread(state.encode, query) if self.encode_in_thread else state.encode(query)
        coll = self._async_collection()
        try:
            if call.search_mode == "hybrid" and self.fusion == "client":
                sides = self.side_pipelines(state, qvec, call, query)
                results = await asyncio.gather(*(_aaggregate(coll, p) for p in sides.values()))
                lists = dict(zip(sides, results, strict=True))
                raw = pl.fuse_rrf(lists, dict(call.weights), call.k, call.score_threshold)
            else:
                raw = await _aaggregate(coll, self.pipeline(state, qvec, call, query))
        except PyMongoError as exc:
            raise self._search_error(exc, state, call) from None
        return self._finish(state, raw, emb, call)


async def _aaggregate(coll: Any, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cursor = coll.aggregate(pipeline)
    if inspect.isawaitable(cursor):  # pymongo AsyncCollection; Motor returns a latent cursor
        cursor = await cursor
    return list(await cursor.to_list(None))


def _replace_mode(call: _Call, mode: SearchMode) -> _Call:
    from dataclasses import replace

    return replace(call, search_mode=mode)


# ---------------------------------------------------------------------------------------------- helpers


def _server_error(exc: PyMongoError, action: str) -> ServerError:
    """One clear line (SearchNotEnabled, an unreachable server and auth failures get their own)."""
    from leaf_mongo.connection import server_error

    return server_error(exc, action)
