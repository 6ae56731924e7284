"""A LangChain retriever that encodes queries with the leaf model and searches teacher-embedded chunks.

Why a retriever of our own rather than langchain-mongodb's: the stored vectors may be int8 or packed-bit
BSON vectors, and MongoDB answers a query vector of another dtype, dimension or embedding space with an
empty result and no error. This retriever reads the vector spec persisted at ingest, builds the query vector
exactly as the documents were built (prompt, MRL truncation, renormalization, the same quantization), and
refuses with one clear message whatever cannot produce comparable vectors.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from bson import Decimal128, ObjectId
from bson.binary import VECTOR_SUBTYPE, Binary
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, PrivateAttr, model_validator
from pymongo.errors import PyMongoError

from leaf_mongo.embeddings import encode_lock
from leaf_mongo.encoders import QueryMode, VectorEncoder
from leaf_mongo.errors import FilterError, LeafMongoError, SearchIndexError, ServerError, SpecMismatchError
from leaf_mongo.settings import Backend, Dtype
from leaf_mongo.spec import VectorSpec
from leaf_mongo.spec_store import aload_spec, load_spec
from leaf_mongo.vectors import from_binary, truncate_normalize

if TYPE_CHECKING:
    from leaf_mongo.settings import LeafMongoSettings

MAX_NUM_CANDIDATES = 10_000  # mongot: numCandidates in [1, 10000]
DEFAULT_INDEX_NAME = "leaf_vector_index"
FIELD_OPERATORS = ("$eq", "$ne", "$gt", "$lt", "$gte", "$lte", "$in", "$nin", "$exists", "$not")
LOGICAL_OPERATORS = ("$and", "$or", "$nor")
ALLOWED_OPERATORS = FIELD_OPERATORS + LOGICAL_OPERATORS  # the whole $vectorSearch filter language (reference §4)
_PER_CALL = ("k", "num_candidates", "exact", "pre_filter", "post_filter_pipeline", "score_threshold")

# ---------------------------------------------------------------------------------------------- pre-filters


def _allowed_list() -> str:
    return " ".join(ALLOWED_OPERATORS)


def check_filter_operators(flt: Any, path: str = "pre_filter") -> None:
    """Reject what ``$vectorSearch`` rejects in a filter, without knowing the declared fields.

    Runs at construction (and per call), so a bad operator never costs a model load or a round trip.
    """
    if not isinstance(flt, Mapping):
        raise FilterError(f"{path} must be a JSON object / dict, got {type(flt).__name__}")
    for key, value in flt.items():
        if not isinstance(key, str):
            raise FilterError(f"{path}: keys must be strings, got {key!r}")
        if key in LOGICAL_OPERATORS:
            if not isinstance(value, (list, tuple)) or not value:
                raise FilterError(f"{path}: {key} needs a non-empty list of filters")
            for i, sub in enumerate(value):
                check_filter_operators(sub, f"{path}.{key}[{i}]")
        elif key.startswith("$"):
            raise FilterError(
                f"{path}: operator {key!r} is not supported by $vectorSearch filters "
                f"(at top level only $and $or $nor); allowed operators: {_allowed_list()}"
            )
        else:
            _check_field_value(key, value, path)


def _check_field_value(field: str, value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        ops = list(value)
        if not ops or not all(isinstance(op, str) and op.startswith("$") for op in ops):
            raise FilterError(
                f"{path}: field {field!r} is compared with an embedded document; $vectorSearch filters take "
                f"a value or operators ({_allowed_list()})"
            )
        for op in ops:
            arg = value[op]
            if op not in FIELD_OPERATORS:
                raise FilterError(
                    f"{path}: operator {op!r} on field {field!r} is not supported by $vectorSearch filters; "
                    f"allowed operators: {_allowed_list()}"
                )
            if op == "$not":
                if not isinstance(arg, Mapping):
                    raise FilterError(f"{path}: $not on field {field!r} needs a document of operators")
                _check_field_value(field, arg, path)
            elif op in ("$in", "$nin") and not isinstance(arg, (list, tuple)):
                raise FilterError(f"{path}: {op} on field {field!r} needs a list")
            elif op == "$exists" and not isinstance(arg, bool):
                raise FilterError(f"{path}: $exists on field {field!r} needs true or false")


def filter_fields_used(flt: Mapping[str, Any]) -> list[str]:
    """The document fields a (structurally valid) filter refers to."""
    out: list[str] = []
    for key, value in flt.items():
        if key in LOGICAL_OPERATORS:
            for sub in value:
                out.extend(filter_fields_used(sub))
        else:
            out.append(key)
    return out


def validate_pre_filter(flt: Mapping[str, Any], filter_fields: Sequence[str], where: str = "the collection") -> None:
    """Operators and fields: only fields declared as ``filter`` in the index can be filtered on."""
    check_filter_operators(flt)
    allowed = ", ".join(filter_fields) or "(none)"
    for field in filter_fields_used(flt):
        if field not in filter_fields:
            raise FilterError(
                f"pre_filter field {field!r} is not a filter field of {where}; allowed: {allowed} "
                "(declare more with LEAF_MONGO_FILTER_FIELDS and re-run ingest)"
            )


def num_candidates_for(k: int, num_candidates: int | None = None, factor: int = 20) -> int:
    """``numCandidates``: given, or ``factor`` × k (MongoDB recommends ≥ 20×), clamped to [k, 10000]."""
    wanted = num_candidates if num_candidates is not None else factor * k
    return max(k, min(wanted, MAX_NUM_CANDIDATES))


# ---------------------------------------------------------------------------------------------- results


def _serializable(value: Any) -> Any:
    """Make stored values JSON-friendly the way langchain-mongodb does (ObjectId/dates → str)."""
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal128):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _serializable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_serializable(v) for v in value]
    return value


def _is_vector(value: Any) -> bool:
    return isinstance(value, Binary) and value.subtype == VECTOR_SUBTYPE


def to_document(raw: Mapping[str, Any], spec: VectorSpec) -> Document:
    """One result as a LangChain ``Document``; vectors never reach the metadata."""
    hidden = {"_id", spec.text_field, spec.embedding_field, spec.full_precision_field}
    meta = {k: _serializable(v) for k, v in raw.items() if k not in hidden and not _is_vector(v)}
    text = raw.get(spec.text_field)
    return Document(
        id=str(raw["_id"]) if "_id" in raw else None,
        page_content=text if isinstance(text, str) else "",
        metadata=meta,
    )


# ---------------------------------------------------------------------------------------------- state


@dataclass
class _QueryState:
    """What one spec read yields; cached for the life of the retriever."""

    spec: VectorSpec
    encoder: VectorEncoder
    where: str

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

    Results: ``Document(id=str(_id), page_content=text, metadata={source, chunk, score, title, ...})`` with
    every stored field except the vectors (ObjectIds and dates as strings). ``k``, ``num_candidates``,
    ``exact``, ``pre_filter``, ``post_filter_pipeline`` and ``score_threshold`` can also be passed per call:
    ``retriever.invoke("question", k=10)``.
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
                entry = None
                if spec is not None:
                    entry = _find_index(coll.list_search_indexes(self.index_name), self.index_name)
            except PyMongoError as exc:
                raise _server_error(exc, f"reading the spec of {coll.full_name}") from None
            self._state = self._prepare(spec, entry, coll.full_name)
        return self._state.spec

    async def aload(self) -> VectorSpec:
        """Async twin of :meth:`load` (pymongo async or Motor)."""
        if self._state is None:
            coll = self._async_collection()
            try:
                spec = await aload_spec(coll)
                entry = None
                if spec is not None:
                    cursor = coll.list_search_indexes(self.index_name)
                    if inspect.isawaitable(cursor):  # pymongo async: coroutine; Motor: latent cursor
                        cursor = await cursor
                    entry = _find_index(await cursor.to_list(None), self.index_name)
            except PyMongoError as exc:
                raise _server_error(exc, f"reading the spec of {coll.full_name}") from None
            # Loading the model and checking it is CPU and disk work: keep it off the event loop.
            self._state = await asyncio.to_thread(self._prepare, spec, entry, coll.full_name)
        return self._state.spec

    def _prepare(self, spec: VectorSpec | None, index: Mapping[str, Any] | None, where: str) -> _QueryState:
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
            _rescore_field(spec, where)
        if self.pre_filter is not None:
            validate_pre_filter(self.pre_filter, spec.filter_fields, where)
        _check_index(index, self.index_name, spec, where)
        return _QueryState(spec=spec, encoder=encoder, where=where)

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
        return _Call(
            k=k,
            num_candidates=num_candidates_for(
                k, overrides.get("num_candidates", self.num_candidates), self.num_candidates_factor
            ),
            exact=bool(overrides.get("exact", self.exact)),
            pre_filter=dict(pre) if pre else None,
            post_filter_pipeline=list(post or []),
            score_threshold=overrides.get("score_threshold", self.score_threshold),
        )

    def pipeline(self, state: _QueryState, query_vector: Any, call: _Call) -> list[dict[str, Any]]:
        """The aggregation pipeline for one query (public so benchmarks can replay it)."""
        spec = state.spec
        rescore_field = _rescore_field(spec, state.where) if self.rescore else None
        limit = call.k
        num_candidates = call.num_candidates
        if rescore_field is not None:
            limit = max(call.k, min(self.rescore_candidates or call.num_candidates, MAX_NUM_CANDIDATES))
            num_candidates = max(num_candidates, limit)
        search: dict[str, Any] = {
            "index": self.index_name,
            "path": spec.embedding_field,
            "queryVector": query_vector,
            "limit": limit,
        }
        if call.exact:
            search["exact"] = True
        else:
            search["numCandidates"] = num_candidates
        if call.pre_filter:
            search["filter"] = call.pre_filter
        hidden = [f for f in (spec.embedding_field, spec.full_precision_field) if f and f != rescore_field]
        stages: list[dict[str, Any]] = [
            {"$vectorSearch": search},
            {"$set": {"score": {"$meta": "vectorSearchScore"}}},
            {"$project": dict.fromkeys(hidden, 0)},
        ]
        if call.score_threshold is not None and rescore_field is None:
            stages.append({"$match": {"score": {"$gte": call.score_threshold}}})
        stages.extend(call.post_filter_pipeline)
        return stages

    def _finish(self, state: _QueryState, raw: list[dict[str, Any]], emb: np.ndarray, call: _Call) -> list[Document]:
        if self.rescore:
            raw = _rescored(raw, emb, _rescore_field(state.spec, state.where), call)
        return [to_document(doc, state.spec) for doc in raw]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        self.load()
        state = self._state
        assert state is not None
        call = self._call(state, kwargs)
        emb, qvec = state.encode(query)
        coll = self._sync_collection()
        try:
            raw = list(coll.aggregate(self.pipeline(state, qvec, call)))
        except PyMongoError as exc:
            raise _server_error(exc, f"searching {state.where}") from None
        return self._finish(state, raw, emb, call)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        await self.aload()
        state = self._state
        assert state is not None
        call = self._call(state, kwargs)
        emb, qvec = await asyncio.to_thread(state.encode, query) if self.encode_in_thread else state.encode(query)
        coll = self._async_collection()
        try:
            cursor = coll.aggregate(self.pipeline(state, qvec, call))
            if inspect.isawaitable(cursor):  # pymongo AsyncCollection; Motor returns a latent cursor
                cursor = await cursor
            raw = await cursor.to_list(None)
        except PyMongoError as exc:
            raise _server_error(exc, f"searching {state.where}") from None
        return self._finish(state, raw, emb, call)


# ---------------------------------------------------------------------------------------------- helpers


def _server_error(exc: PyMongoError, action: str) -> ServerError:
    """One clear line (SearchNotEnabled, an unreachable server and auth failures get their own)."""
    from leaf_mongo.connection import server_error

    return server_error(exc, action)


def _find_index(entries: Any, name: str) -> dict[str, Any] | None:
    for entry in entries:
        if entry.get("name") == name:
            return dict(entry)
    return None


def _check_index(index: Mapping[str, Any] | None, name: str, spec: VectorSpec, where: str) -> None:
    """The named index must exist and index the spec's vector field at the spec's dimensions."""
    if index is None:
        raise SearchIndexError(
            f"collection {where} has no search index named {name!r} (the server would answer every query "
            "with nothing); check LEAF_MONGO_INDEX_NAME or run ingest to create it"
        )
    if index.get("type", "vectorSearch") != "vectorSearch":
        raise SearchIndexError(f"search index {name!r} on {where} is of type {index.get('type')!r}, not vectorSearch")
    definition = index.get("latestDefinition") or index.get("definition") or {}
    vector = next(
        (
            f
            for f in definition.get("fields", [])
            if f.get("type") == "vector" and f.get("path") == spec.embedding_field
        ),
        None,
    )
    if vector is None:
        raise SpecMismatchError(
            f"search index {name!r} on {where} does not index {spec.embedding_field!r} as a vector field"
        )
    if vector.get("numDimensions") not in (None, spec.dimensions):
        raise SpecMismatchError(
            f"search index {name!r} on {where} has numDimensions {vector.get('numDimensions')} but the stored "
            f"spec has {spec.dimensions}: re-run ingest to update the index"
        )


def _rescore_field(spec: VectorSpec, where: str) -> str:
    """The field holding float vectors to rescore with."""
    if spec.full_precision_field:
        return spec.full_precision_field
    if spec.dtype == "float32":
        return spec.embedding_field  # float storage, e.g. under automatic quantization
    raise SpecMismatchError(
        f"cannot rescore {where}: its {spec.dtype} vectors were stored without full-precision copies; "
        "re-ingest with LEAF_MONGO_STORE_FULL_PRECISION=true, or query without rescore"
    )


def _rescored(raw: list[dict[str, Any]], emb: np.ndarray, field: str, call: _Call) -> list[dict[str, Any]]:
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
    if call.score_threshold is not None:
        ranked = [d for d in ranked if (d.get("score") or 0.0) >= call.score_threshold]
    for doc in ranked:
        doc.pop(field, None)
    return ranked[: call.k]
