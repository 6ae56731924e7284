"""Emulator state shared by every command handler, and the plumbing they all use.

mongomock supplies storage, query matching and update operators; what sits on top
of it lives here: real cursors (batches, ``getMore``), the per-path vector
matrices kept in step with every write, and the mapping of Python failures to
per-document write errors. Command handlers are mixins over :class:`BackendState`
(``leaf_mongo.testing.commands``); the search engines are functions taking it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import bson
import mongomock
from bson import Int64

from leaf_mongo.testing.autoembed_definition import AutoEmbedSpec
from leaf_mongo.testing.autoembed_store import AutoEmbedVectors
from leaf_mongo.testing.docs import MockCollection, matching_documents, store_key, stored_documents
from leaf_mongo.testing.durable import DurableStore, search_index_record
from leaf_mongo.testing.embedding import EmbeddingClient
from leaf_mongo.testing.errors import (
    BAD_VALUE,
    DUPLICATE_KEY,
    INVALID_NAMESPACE,
    CommandError,
    not_implemented,
    unknown_error,
)
from leaf_mongo.testing.fulltext import FullTextIndex
from leaf_mongo.testing.id_lookup import IdIndexedCollection
from leaf_mongo.testing.mongomock_fixes import apply as apply_mongomock_fixes
from leaf_mongo.testing.search_index import SearchIndex
from leaf_mongo.testing.vector_store import PathVectors

SERVER_VERSION = "8.2.0"  # what buildInfo reports unless the emulator is told to be an older server
MAX_BSON_SIZE = 16 * 1024 * 1024
MAX_BATCH_BYTES = MAX_BSON_SIZE - 64 * 1024
CURSOR_IDLE_SECONDS = 600.0  # like mongod's cursorTimeoutMillis default

apply_mongomock_fixes()

Namespace = tuple[str, str]


@dataclass
class _Cursor:
    """An open cursor: the documents still to send, produced on demand so that a batch costs O(batch)."""

    ns: str
    source: Iterator[dict[str, Any]]
    ahead: list[dict[str, Any]]  # the one document read past the last batch (to know whether more remain)
    last_used: float = field(default_factory=time.monotonic)

    def next_batch(self, limit: int) -> list[dict[str, Any]]:
        """The next batch (``limit`` documents, 0 = unlimited, capped at 16 MiB); refills ``ahead``."""
        batch, self.ahead = _take(itertools.chain(self.ahead, self.source), limit)
        return batch

    @property
    def exhausted(self) -> bool:
        return not self.ahead


class BackendState:
    """Databases (mongomock), cursors, search indexes and vector matrices, behind one lock.

    One re-entrant lock serializes commands because mongomock is not thread-safe;
    every command is short, so this costs little in tests.
    """

    def __init__(self, index_build_delay: float = 0.0, server_version: str = SERVER_VERSION) -> None:
        self.index_build_delay = index_build_delay
        # An older version refuses the stages it lacks ($rankFusion < 8.1, $scoreFusion < 8.2), as it would.
        self.server_version = server_version
        self._lock = threading.RLock()
        self._client: Any = mongomock.MongoClient()
        self._cursors: dict[int, _Cursor] = {}
        self._cursor_ids = itertools.count(1_000_001)
        self._search_indexes: dict[Namespace, dict[str, SearchIndex]] = {}
        self._vectors: dict[Namespace, dict[str, PathVectors]] = {}
        self._fulltext: dict[Namespace, dict[str, FullTextIndex]] = {}  # search index name -> tantivy index
        self._storage: DurableStore | None = None  # set by a durable backend (a data folder)
        self.embedding: EmbeddingClient | None = None  # the provider autoEmbed fields use (mongot's embedding:)

    def reset(self) -> None:
        """Forget every database, cursor and search index (and, when durable, empty the store on disk)."""
        with self._lock:
            if self._storage is not None:
                self._storage.clear()
            self._client = mongomock.MongoClient()
            self._cursors.clear()
            self._search_indexes.clear()
            self._vectors.clear()
            self._fulltext.clear()

    def _coll(self, db: str, name: Any) -> MockCollection:
        if not isinstance(name, str) or not name:
            raise CommandError(f"collection name has invalid type {type(name).__name__}", INVALID_NAMESPACE)
        coll = self._client[db][name]
        coll.__class__ = IdIndexedCollection  # O(1) _id lookups (see id_lookup)
        return coll

    def _exists(self, db: str, name: str) -> bool:
        return name in self._client[db].list_collection_names()

    # ------------------------------------------------------------------ vector bookkeeping

    def _sync(self, ns: Namespace, keys: Iterable[Any]) -> None:
        """Re-read the given documents into the vector matrices and full-text indexes after a write."""
        stores: list[Any] = [*self._vectors.get(ns, {}).values(), *self._fulltext.get(ns, {}).values()]
        if not stores:
            return
        docs = stored_documents(self._coll(*ns))
        keys = list(keys)
        for store in stores:
            if isinstance(store, AutoEmbedVectors):  # one provider batch for the whole write
                store.upsert_many((key, docs.get(key)) for key in keys)
        stores = [s for s in stores if not isinstance(s, AutoEmbedVectors)]
        for key in keys:
            doc = docs.get(key)
            for store in stores:
                if doc is None:
                    store.remove(key)
                else:
                    store.upsert(key, doc)

    def _tracked(self, ns: Namespace) -> bool:
        return bool(self._vectors.get(ns)) or bool(self._fulltext.get(ns))

    def _watching(self, ns: Namespace) -> bool:
        """Whether a write must collect the keys it touches: search stores follow them, a durable store saves them."""
        return self._storage is not None or self._tracked(ns)

    def _written(self, ns: Namespace, keys: Iterable[Any]) -> None:
        """After a write: the search stores follow the touched documents, and a durable store stages them."""
        keys = list(keys)
        self._sync(ns, keys)
        if self._storage is not None and keys:
            docs = stored_documents(self._coll(*ns))
            self._storage.save_documents(ns, ((key, docs.get(key)) for key in keys))

    def _catalog_changed(self, ns: Namespace) -> None:
        """After a catalog command: a durable store stages the collection's existence and index definitions."""
        if self._storage is None:
            return
        exists = self._exists(*ns)
        indexes = self._coll(*ns).index_information() if exists else {}
        search = [search_index_record(i) for i in self._search_indexes.get(ns, {}).values()]
        self._storage.save_catalog(ns, exists, {k: v for k, v in indexes.items() if k != "_id_"}, search)

    def _rewritten(self, ns: Namespace) -> None:
        """After ``$out``/``$merge`` replaced a collection: search stores rebuilt, a durable store rewritten."""
        if self._tracked(ns):
            self._vectors.pop(ns, None)
            self._fulltext.pop(ns, None)
            self._refresh_vector_stores(ns)
        if self._storage is not None:
            self._storage.replace_documents(ns, list(stored_documents(self._coll(*ns)).values()))
            self._catalog_changed(ns)

    def _matching_keys(self, coll: MockCollection, query: dict[str, Any], multi: bool) -> list[Any]:
        """Keys of the documents a write will touch (mongomock picks the first match)."""
        if set(query) == {"_id"} and not isinstance(query["_id"], dict):
            key = store_key(query["_id"])
            return [key] if key in stored_documents(coll) else []
        keys: list[Any] = []
        for doc in matching_documents(coll, query):
            keys.append(store_key(doc["_id"]))
            if not multi:
                break
        return keys

    def _refresh_vector_stores(self, ns: Namespace) -> None:
        """Create stores for newly indexed paths (scanning once), drop unused ones."""
        wanted: set[str] = set()
        auto: dict[str, AutoEmbedSpec] = {}
        for idx in self._search_indexes.get(ns, {}).values():
            if idx.type == "vectorSearch":
                wanted |= idx.all_vector_paths()
                auto.update((spec.store_key, spec) for spec in idx.autoembed_specs())
        wanted |= set(auto)
        stores = self._vectors.setdefault(ns, {})
        for path in list(stores):
            if path not in wanted:
                del stores[path]
        new = [p for p in wanted if p not in stores]
        if new:
            docs = stored_documents(self._coll(*ns))
            for path in new:
                if path in auto:  # the initial scan (COLLECTION_SCAN tier)
                    ae = stores[path] = AutoEmbedVectors(auto[path], self.embedding)
                    ae.upsert_many(docs.items())
                    continue
                store = stores[path] = PathVectors(path)
                for key, doc in docs.items():
                    store.upsert(key, doc)
        if not stores:
            self._vectors.pop(ns, None)
        live = self._search_indexes.get(ns, {})
        texts = self._fulltext.get(ns, {})
        for name in [n for n in texts if n not in live]:
            del texts[name]

    def _forget_namespace(self, ns: Namespace) -> None:
        self._search_indexes.pop(ns, None)
        self._vectors.pop(ns, None)
        self._fulltext.pop(ns, None)

    def _text_index(self, db: str, coll: MockCollection, name: str) -> FullTextIndex | None:
        """The full-text store of a queryable ``search`` index (None: no such index), current with its data."""
        idx = self._search_indexes.get((db, coll.name), {}).get(name)
        if idx is None or idx.type != "search":
            return None
        if not idx.queryable:
            raise unknown_error(f"cannot query search index {name} while in state {idx.internal_state}")
        stores = self._fulltext.setdefault((db, coll.name), {})
        store = stores.get(name)
        if store is None or not store.serves(idx.active_normalized):
            assert idx.active_normalized is not None
            store = stores[name] = FullTextIndex(idx.active_normalized, stored_documents(coll))
        return store

    # ------------------------------------------------------------------ cursors

    def _reap_cursors(self) -> None:
        now = time.monotonic()
        for cid in [c for c, cur in self._cursors.items() if now - cur.last_used > CURSOR_IDLE_SECONDS]:
            del self._cursors[cid]

    def _cursor_reply(
        self, ns: str, docs: Iterable[Any], batch_size: Any, single_batch: bool = False
    ) -> dict[str, Any]:
        """The first batch of ``docs`` (a list, or a lazy iterator that later batches keep reading)."""
        cursor = _Cursor(ns, iter(docs), [])
        batch = cursor.next_batch(101 if batch_size is None else int(batch_size))
        cursor_id = 0
        if not cursor.exhausted and not single_batch:
            self._reap_cursors()
            cursor_id = next(self._cursor_ids)
            self._cursors[cursor_id] = cursor
        return {"cursor": {"id": Int64(cursor_id), "ns": ns, "firstBatch": batch}}


# ---------------------------------------------------------------------- helpers


def version_tuple(text: str) -> tuple[int, int, int]:
    """``"8.0.4"`` -> (8, 0, 4)."""
    parts = [int(p) for p in text.split("-")[0].split(".")[:3] if p.isdigit()]
    parts += [0, 0, 0]
    return parts[0], parts[1], parts[2]


def _take(docs: Iterator[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The next batch (``limit`` docs, 0 = unlimited, capped at 16 MiB like the server) and the document after it
    (an empty list when none is left). Reads only what it returns, plus one."""
    batch: list[dict[str, Any]] = []
    size = 0
    for doc in docs:
        if batch and ((limit and len(batch) >= limit) or size >= MAX_BATCH_BYTES):
            return batch, [doc]
        size += len(bson.encode(doc))
        batch.append(doc)
    return batch, []


def _fmt(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else f'"{value}"'


def _dup_msg(exc: Exception) -> str:
    msg = str(exc)
    return msg if "E11000" in msg else f"E11000 duplicate key error: {msg}"


def _write_error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, CommandError):
        return exc.to_write_error()
    if isinstance(exc, mongomock.DuplicateKeyError):
        return {"code": DUPLICATE_KEY, "errmsg": _dup_msg(exc), **(exc.details or {})}
    if isinstance(exc, mongomock.OperationFailure):
        return {"code": exc.code or BAD_VALUE, "errmsg": str(exc)}
    if isinstance(exc, NotImplementedError):
        return not_implemented(f"not supported by the leaf-mongo emulator: {exc}").to_write_error()
    return {"code": BAD_VALUE, "errmsg": f"{type(exc).__name__}: {exc}"}
