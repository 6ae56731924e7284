"""Command execution for the emulator: mongomock storage + hand-written vector search.

The wire layer (:mod:`leaf_mongo.testing.wire`) hands every decoded command
document here. mongomock supplies storage, query matching, update operators and
the pipeline stages after the first; this module adds what mongomock lacks and
what drivers need from a server: real cursors, per-document write errors,
``count``/``distinct`` as pymongo sends them, the search-index commands and
``$vectorSearch``. One re-entrant lock serializes commands because mongomock is
not thread-safe; every command is short, so this costs little in tests.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import bson
import mongomock
from bson import Int64
from mongomock import helpers as mm_helpers
from mongomock.aggregate import process_pipeline
from mongomock.filtering import filter_applies
from pymongo import ReturnDocument

from leaf_mongo.testing import fulltext, fusion
from leaf_mongo.testing.errors import CommandError, bad_value
from leaf_mongo.testing.search_index import SearchIndex, normalize
from leaf_mongo.testing.vectors import (
    PathVectors,
    matrix_for,
    parse_query_vector,
    score_matrix,
    top_k,
)

SERVER_VERSION = "8.2.0"
MAX_WIRE_VERSION = 25  # MongoDB 8.2
MAX_BSON_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE = 48_000_000
MAX_BATCH_BYTES = MAX_BSON_SIZE - 64 * 1024
SCORE_FIELD = fusion.VECTOR_SCORE_FIELD
CURSOR_IDLE_SECONDS = 600.0  # like mongod's cursorTimeoutMillis default

FILTER_OPERATORS = frozenset(
    {"$eq", "$ne", "$gt", "$lt", "$gte", "$lte", "$in", "$nin", "$exists", "$not", "$nor", "$and", "$or"}
)
VECTOR_SEARCH_KEYS = frozenset(
    {"index", "path", "queryVector", "numCandidates", "limit", "filter", "exact", "explainOptions"}
)

Namespace = tuple[str, str]
# mongomock ships pymongo-shaped stubs that do not describe its internals (_store, _iter_documents).
MockCollection = Any


def store_key(_id: Any) -> Any:
    """Key mongomock uses for a document in its store (dicts are not hashable)."""
    return mm_helpers.hashdict(_id) if isinstance(_id, dict) else _id


@dataclass
class _Cursor:
    ns: str
    docs: list[dict[str, Any]]
    pos: int
    last_used: float = field(default_factory=time.monotonic)


class Backend:
    """All emulator state and the command handlers (see module docstring)."""

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
        self._fulltext: dict[Namespace, dict[str, fulltext.FullTextIndex]] = {}
        self._handlers: dict[str, Callable[[str, dict[str, Any], int], dict[str, Any]]] = {
            "hello": self._hello,
            "ismaster": self._hello,
            "ping": lambda db, cmd, conn: {},
            "buildinfo": self._build_info,
            "endsessions": lambda db, cmd, conn: {},
            "killallsessions": lambda db, cmd, conn: {},
            "getparameter": lambda db, cmd, conn: {},
            "serverstatus": self._server_status,
            "connectionstatus": lambda db, cmd, conn: {"authInfo": {"authenticatedUsers": []}},
            "whatsmyuri": lambda db, cmd, conn: {"you": "127.0.0.1:0"},
            "insert": self._insert,
            "update": self._update,
            "delete": self._delete,
            "findandmodify": self._find_and_modify,
            "find": self._find,
            "getmore": self._get_more,
            "killcursors": self._kill_cursors,
            "aggregate": self._aggregate,
            "count": self._count,
            "distinct": self._distinct,
            "create": self._create,
            "drop": self._drop,
            "listcollections": self._list_collections,
            "dropdatabase": self._drop_database,
            "listdatabases": self._list_databases,
            "createindexes": self._create_indexes,
            "listindexes": self._list_indexes,
            "dropindexes": self._drop_indexes,
            "deleteindexes": self._drop_indexes,
            "createsearchindexes": self._create_search_indexes,
            "updatesearchindex": self._update_search_index,
            "dropsearchindex": self._drop_search_index,
        }

    # ------------------------------------------------------------------ plumbing

    def execute(self, db: str, cmd: dict[str, Any], connection_id: int = 0) -> dict[str, Any]:
        """Run one command; always returns a reply document (errors included)."""
        try:
            name = next(iter(cmd))
        except StopIteration:
            return CommandError("no command name", 59).to_reply()
        handler = self._handlers.get(name.lower())
        if handler is None:
            return CommandError(f"no such command: '{name}'", 59).to_reply()
        if "txnNumber" in cmd and name.lower() not in ("hello", "ismaster"):
            return CommandError("Transaction numbers are only allowed on a replica set member or mongos", 20).to_reply()
        try:
            with self._lock:
                reply = handler(db, cmd, connection_id)
        except CommandError as exc:
            return exc.to_reply()
        except mongomock.DuplicateKeyError as exc:
            return CommandError(_dup_msg(exc), 11000).to_reply()
        except mongomock.OperationFailure as exc:
            return CommandError(str(exc), exc.code or 2).to_reply()
        except NotImplementedError as exc:
            return CommandError(f"not supported by the leaf-mongo emulator: {exc}", 238).to_reply()
        except Exception as exc:  # noqa: BLE001 - any bug must still become a reply
            return CommandError(f"{type(exc).__name__}: {exc}", 1).to_reply()
        reply.setdefault("ok", 1.0)
        return reply

    def reset(self) -> None:
        """Forget every database, cursor and search index."""
        with self._lock:
            self._client = mongomock.MongoClient()
            self._cursors.clear()
            self._search_indexes.clear()
            self._vectors.clear()
            self._fulltext.clear()

    def _coll(self, db: str, name: Any) -> MockCollection:
        if not isinstance(name, str) or not name:
            raise CommandError(f"collection name has invalid type {type(name).__name__}", 73)
        return self._client[db][name]

    def _exists(self, db: str, name: str) -> bool:
        return name in self._client[db].list_collection_names()

    # ------------------------------------------------------------------ handshake

    def _hello(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        # No topologyVersion: drivers would switch to streaming (awaitable) hello, which
        # needs exhaust support. No compression: we do not implement OP_COMPRESSED.
        name = next(iter(cmd))
        reply: dict[str, Any] = {
            "helloOk": True,
            "maxBsonObjectSize": MAX_BSON_SIZE,
            "maxMessageSizeBytes": MAX_MESSAGE_SIZE,
            "maxWriteBatchSize": 100_000,
            "localTime": dt.datetime.now(dt.timezone.utc),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": conn,
            "minWireVersion": 0,
            "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False,
        }
        if name == "hello":
            reply["isWritablePrimary"] = True
        else:
            reply["ismaster"] = True
        return reply

    def _build_info(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        return {
            "version": self.server_version,
            "versionArray": [*_version(self.server_version), 0],
            "gitVersion": "leaf-mongo-emulator",
            "modules": ["leaf-mongo-emulator"],
            "bits": 64,
            "maxBsonObjectSize": MAX_BSON_SIZE,
            "storageEngines": ["mongomock"],
        }

    def _server_status(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        return {"version": self.server_version, "process": "leaf-mongo-emulator", "uptime": time.monotonic()}

    # ------------------------------------------------------------------ vector bookkeeping

    def _sync(self, ns: Namespace, keys: Iterable[Any]) -> None:
        """Re-read the given documents into the vector matrices after a write."""
        stores: list[Any] = [*self._vectors.get(ns, {}).values(), *self._fulltext.get(ns, {}).values()]
        if not stores:
            return
        docs = self._coll(*ns)._store._documents
        for key in keys:
            doc = docs.get(key)
            for store in stores:
                if doc is None:
                    store.remove(key)
                else:
                    store.upsert(key, doc)

    def _tracked(self, ns: Namespace) -> bool:
        return bool(self._vectors.get(ns)) or bool(self._fulltext.get(ns))

    def _matching_keys(self, coll: MockCollection, query: dict[str, Any], multi: bool) -> list[Any]:
        """Keys of the documents a write will touch (mongomock picks the first match)."""
        if set(query) == {"_id"} and not isinstance(query["_id"], dict):
            key = store_key(query["_id"])
            return [key] if key in coll._store._documents else []
        spec = mm_helpers.patch_datetime_awareness_in_document(query)
        keys: list[Any] = []
        for doc in coll._iter_documents(spec):
            keys.append(store_key(doc["_id"]))
            if not multi:
                break
        return keys

    def _refresh_vector_stores(self, ns: Namespace) -> None:
        """Create stores for newly indexed paths (scanning once), drop unused ones."""
        wanted: set[str] = set()
        for idx in self._search_indexes.get(ns, {}).values():
            if idx.type == "vectorSearch":
                wanted |= idx.all_vector_paths()
        stores = self._vectors.setdefault(ns, {})
        for path in list(stores):
            if path not in wanted:
                del stores[path]
        new = [p for p in wanted if p not in stores]
        if new:
            docs = self._coll(*ns)._store._documents
            for path in new:
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

    # ------------------------------------------------------------------ writes

    def _insert(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        coll = self._coll(db, cmd["insert"])
        docs = cmd.get("documents") or []
        ordered = cmd.get("ordered", True)
        ns = (db, coll.name)
        tracked = self._tracked(ns)
        written: list[Any] = []
        errors: list[dict[str, Any]] = []
        n = 0
        for i, doc in enumerate(docs):
            try:
                if "_id" in doc and store_key(doc["_id"]) in coll._store._documents:
                    raise CommandError(
                        f"E11000 duplicate key error collection: {db}.{coll.name} index: _id_ dup key: "
                        f"{{ _id: {_fmt(doc['_id'])} }}",
                        11000,
                    )
                coll.insert_one(doc)
                n += 1
                if tracked:
                    written.append(store_key(doc["_id"]))
            except Exception as exc:  # noqa: BLE001 - becomes a per-document writeError
                errors.append({"index": i, **_write_error(exc)})
                if ordered:
                    break
        if tracked:
            self._sync(ns, written)
        reply: dict[str, Any] = {"n": n}
        if errors:
            reply["writeErrors"] = errors
        return reply

    def _update(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        coll = self._coll(db, cmd["update"])
        ordered = cmd.get("ordered", True)
        ns = (db, coll.name)
        n = modified = 0
        upserted: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for i, spec in enumerate(cmd.get("updates") or []):
            try:
                q = spec.get("q") or {}
                u = spec.get("u")
                multi = bool(spec.get("multi", False))
                upsert = bool(spec.get("upsert", False))
                if spec.get("arrayFilters"):
                    raise NotImplementedError("arrayFilters")
                is_replacement = isinstance(u, dict) and not any(k.startswith("$") for k in u)
                if is_replacement and multi:
                    raise CommandError("multi update is not supported for replacement-style update", 9)
                keys = self._matching_keys(coll, q, multi) if self._tracked(ns) else []
                if is_replacement:
                    res = coll.replace_one(q, u, upsert=upsert)
                elif multi:
                    res = coll.update_many(q, u, upsert=upsert)
                else:
                    res = coll.update_one(q, u, upsert=upsert)
                n += res.matched_count
                modified += res.modified_count
                if res.upserted_id is not None:
                    n += 1
                    upserted.append({"index": i, "_id": res.upserted_id})
                    keys.append(store_key(res.upserted_id))
                self._sync(ns, keys)
            except Exception as exc:  # noqa: BLE001
                errors.append({"index": i, **_write_error(exc)})
                if ordered:
                    break
        reply: dict[str, Any] = {"n": n, "nModified": modified}
        if upserted:
            reply["upserted"] = upserted
        if errors:
            reply["writeErrors"] = errors
        return reply

    def _delete(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        coll = self._coll(db, cmd["delete"])
        ordered = cmd.get("ordered", True)
        ns = (db, coll.name)
        n = 0
        errors: list[dict[str, Any]] = []
        for i, spec in enumerate(cmd.get("deletes") or []):
            try:
                q = spec.get("q") or {}
                multi = spec.get("limit", 0) == 0
                keys = self._matching_keys(coll, q, multi) if self._tracked(ns) else []
                res = coll.delete_many(q) if multi else coll.delete_one(q)
                n += res.deleted_count
                self._sync(ns, keys)
            except Exception as exc:  # noqa: BLE001
                errors.append({"index": i, **_write_error(exc)})
                if ordered:
                    break
        reply: dict[str, Any] = {"n": n}
        if errors:
            reply["writeErrors"] = errors
        return reply

    def _find_and_modify(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        coll = self._coll(db, cmd["findAndModify"] if "findAndModify" in cmd else cmd["findandmodify"])
        ns = (db, coll.name)
        query = cmd.get("query") or {}
        sort = list((cmd.get("sort") or {}).items()) or None
        fields = cmd.get("fields") or None
        new = bool(cmd.get("new", False))
        upsert = bool(cmd.get("upsert", False))
        before = self._matching_keys(coll, query, False) if self._tracked(ns) else []
        existed = bool(self._matching_keys(coll, query, False))
        ret = ReturnDocument.AFTER if new else ReturnDocument.BEFORE
        if cmd.get("remove"):
            value = coll.find_one_and_delete(query, projection=fields, sort=sort)
            last: dict[str, Any] = {"n": 1 if value is not None else 0}
        else:
            update = cmd.get("update")
            if isinstance(update, dict) and not any(k.startswith("$") for k in update):
                value = coll.find_one_and_replace(
                    query, update, projection=fields, sort=sort, upsert=upsert, return_document=ret
                )
            else:
                value = coll.find_one_and_update(
                    query, update, projection=fields, sort=sort, upsert=upsert, return_document=ret
                )
            last = {"n": 1 if (existed or upsert) else 0, "updatedExisting": existed}
            if upsert and not existed:
                doc = coll.find_one(query) if value is None or "_id" not in value else value
                if doc is not None:
                    last["upserted"] = doc["_id"]
                    before.append(store_key(doc["_id"]))
        self._sync(ns, before)
        return {"lastErrorObject": last, "value": value}

    # ------------------------------------------------------------------ reads and cursors

    def _reap_cursors(self) -> None:
        now = time.monotonic()
        for cid in [c for c, cur in self._cursors.items() if now - cur.last_used > CURSOR_IDLE_SECONDS]:
            del self._cursors[cid]

    def _cursor_reply(
        self, ns: str, docs: Iterable[Any], batch_size: Any, single_batch: bool = False
    ) -> dict[str, Any]:
        docs = list(docs)
        limit = 101 if batch_size is None else int(batch_size)
        batch, pos = _take(docs, 0, limit)
        cursor_id = 0
        if pos < len(docs) and not single_batch:
            self._reap_cursors()
            cursor_id = next(self._cursor_ids)
            self._cursors[cursor_id] = _Cursor(ns, docs, pos)
        return {"cursor": {"id": Int64(cursor_id), "ns": ns, "firstBatch": batch}}

    def _find(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        coll = self._coll(db, cmd["find"])
        flt = cmd.get("filter") or {}
        projection = cmd.get("projection") or None
        sort = list((cmd.get("sort") or {}).items()) or None
        skip = int(cmd.get("skip") or 0)
        limit = int(cmd.get("limit") or 0)
        single = bool(cmd.get("singleBatch")) or limit < 0
        cursor = coll.find(flt, projection, skip=skip, limit=abs(limit), sort=sort)
        batch_size = cmd.get("batchSize")
        if limit and (batch_size is None or abs(limit) < int(batch_size)):
            batch_size = abs(limit)
        return self._cursor_reply(f"{db}.{coll.name}", list(cursor), batch_size, single)

    def _get_more(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        cid = int(cmd["getMore"] if "getMore" in cmd else cmd["getmore"])
        cur = self._cursors.get(cid)
        if cur is None:
            raise CommandError(f"cursor id {cid} not found", 43)
        cur.last_used = time.monotonic()
        batch_size = cmd.get("batchSize")
        batch, cur.pos = _take(cur.docs, cur.pos, int(batch_size) if batch_size else 0)
        exhausted = cur.pos >= len(cur.docs)
        if exhausted:
            del self._cursors[cid]
        return {"cursor": {"id": Int64(0 if exhausted else cid), "ns": cur.ns, "nextBatch": batch}}

    def _kill_cursors(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        killed, missing = [], []
        for cid in cmd.get("cursors") or []:
            if self._cursors.pop(int(cid), None) is not None:
                killed.append(cid)
            else:
                missing.append(cid)
        return {"cursorsKilled": killed, "cursorsNotFound": missing, "cursorsAlive": [], "cursorsUnknown": []}

    def _count(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        coll = self._coll(db, cmd["count"])
        query = cmd.get("query") or {}
        if query:
            spec = mm_helpers.patch_datetime_awareness_in_document(query)
            n = sum(1 for _ in coll._iter_documents(spec))
        else:
            n = len(coll._store._documents)
        n = max(0, n - int(cmd.get("skip") or 0))
        if cmd.get("limit"):
            n = min(n, abs(int(cmd["limit"])))
        return {"n": n}

    def _distinct(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        coll = self._coll(db, cmd["distinct"])
        return {"values": coll.distinct(cmd["key"], cmd.get("query") or None)}

    # ------------------------------------------------------------------ aggregate

    def _aggregate(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        target = cmd["aggregate"]
        if not isinstance(target, str):
            raise CommandError("collectionless aggregate is not supported by the leaf-mongo emulator", 238)
        if cmd.get("explain"):
            raise CommandError("explain is not supported by the leaf-mongo emulator", 238)
        pipeline = cmd.get("pipeline")
        if not isinstance(pipeline, list):
            raise CommandError("'pipeline' option must be specified as an array", 14)
        coll = self._coll(db, target)
        out = self._run_pipeline(db, coll, pipeline)
        for doc in out:
            if isinstance(doc, dict):
                for hidden in fusion.HIDDEN_FIELDS:
                    doc.pop(hidden, None)
        if any("$out" in s or "$merge" in s for s in pipeline if isinstance(s, dict)):
            for s in pipeline:
                target_name = s.get("$out")
                if isinstance(target_name, str) and self._tracked((db, target_name)):
                    self._vectors.pop((db, target_name), None)
                    self._fulltext.pop((db, target_name), None)
                    self._refresh_vector_stores((db, target_name))
        cursor_opts = cmd.get("cursor") or {}
        return self._cursor_reply(f"{db}.{coll.name}", out, cursor_opts.get("batchSize"))

    def _run_pipeline(
        self, db: str, coll: MockCollection, pipeline: list[Any], copy_docs: bool = True
    ) -> list[dict[str, Any]]:
        """Documents out of ``pipeline`` (hidden meta fields kept, for an enclosing fusion stage).

        ``copy_docs=False`` (fusion input pipelines, whose stages only select and order) hands stored
        documents over without copying; the fusion stage copies the ones it outputs.
        """
        for i, stage in enumerate(pipeline):
            if not isinstance(stage, dict) or len(stage) != 1:
                raise CommandError("A pipeline stage specification object must contain exactly one field.", 40323)
            name = next(iter(stage))
            if name in _MIN_VERSION and _version(self.server_version) < _MIN_VERSION[name]:
                raise CommandError(f"Unrecognized pipeline stage name: '{name}'", 40324)
            if i > 0 and name in ("$vectorSearch", "$listSearchIndexes", "$search", "$searchMeta"):
                # Server message for $vectorSearch/$search outside position 0.
                raise CommandError(f"{name} is only valid as the first stage in a pipeline", 40602)
        first = next(iter(pipeline[0])) if pipeline else None
        rest = pipeline[1:]
        docs: list[dict[str, Any]]
        if first == "$vectorSearch":
            docs = self._vector_search(db, coll, pipeline[0]["$vectorSearch"], copy_docs)
            for d in docs:
                d[fusion.SCORE_FIELD] = d[SCORE_FIELD]
        elif first == "$listSearchIndexes":
            docs = self._list_search_indexes(db, coll, pipeline[0]["$listSearchIndexes"])
        elif first == "$search":
            ahead = pipeline[1].get("$limit") if len(pipeline) > 1 and isinstance(pipeline[1], dict) else None
            limit = int(ahead) if ahead is not None and _is_int(ahead) and ahead > 0 else None  # what $limit keeps
            docs = fulltext.run_search(pipeline[0]["$search"], self._text_index, db, coll, limit, copy_docs)
        elif first == "$searchMeta":
            raise CommandError("$searchMeta is not supported by the leaf-mongo emulator", 238)
        elif first == "$rankFusion":
            ahead = pipeline[1].get("$limit") if len(pipeline) > 1 and isinstance(pipeline[1], dict) else None
            docs = fusion.rank_fusion(
                pipeline[0]["$rankFusion"],
                lambda p: self._run_pipeline(db, coll, p, copy_docs=False),
                int(ahead) if ahead is not None and _is_int(ahead) and ahead > 0 else None,
            )
        elif first == "$scoreFusion":
            docs = fusion.score_fusion(
                pipeline[0]["$scoreFusion"], lambda p: self._run_pipeline(db, coll, p, copy_docs=False)
            )
        elif first == "$match":
            spec = mm_helpers.patch_datetime_awareness_in_document(pipeline[0]["$match"])
            docs = [copy.deepcopy(d) for d in coll._iter_documents(spec)]
        else:
            docs = [copy.deepcopy(d) for d in coll._store._documents.values()]
            rest = pipeline
        rest = [out_stage for s in rest for out_stage in _rewrite_stage(s)]
        return list(process_pipeline(docs, self._client[db], rest, None))

    def _text_index(self, db: str, coll: MockCollection, name: str) -> fulltext.FullTextIndex | None:
        """The full-text store of a queryable ``search`` index (None: no such index), current with its data."""
        idx = self._search_indexes.get((db, coll.name), {}).get(name)
        if idx is None or idx.type != "search":
            return None
        if not idx.queryable:
            raise CommandError(f"cannot query search index {name} while in state {idx.internal_state}", 8)
        stores = self._fulltext.setdefault((db, coll.name), {})
        store = stores.get(name)
        if store is None or store.stale or store.definition != idx.active_normalized:
            assert idx.active_normalized is not None
            store = stores[name] = fulltext.FullTextIndex(idx.active_normalized, coll._store._documents)
        return store

    # ------------------------------------------------------------------ collections / databases

    def _create(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name = cmd["create"]
        if "viewOn" in cmd:
            raise CommandError("views are not supported by the leaf-mongo emulator", 238)
        if self._exists(db, name):
            raise CommandError(f"Collection {db}.{name} already exists.", 48)
        self._client[db].create_collection(name)
        return {}

    def _drop(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name = cmd["drop"]
        self._forget_namespace((db, name))
        if not self._exists(db, name):
            return {}  # MongoDB >= 7.0: dropping a missing collection succeeds
        n_indexes = len(list(self._coll(db, name).list_indexes()))
        self._client[db].drop_collection(name)
        return {"ns": f"{db}.{name}", "nIndexesWas": n_indexes}

    def _list_collections(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        flt = cmd.get("filter") or {}
        name_only = bool(cmd.get("nameOnly"))
        entries = []
        for name in sorted(self._client[db].list_collection_names()):
            doc: dict[str, Any] = {"name": name, "type": "collection"}
            if not name_only:
                doc.update(
                    options={},
                    info={"readOnly": False},
                    idIndex={"v": 2, "key": {"_id": 1}, "name": "_id_"},
                )
            if filter_applies(flt, doc):
                entries.append(doc)
        batch = (cmd.get("cursor") or {}).get("batchSize")
        return self._cursor_reply(f"{db}.$cmd.listCollections", entries, batch)

    def _drop_database(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        for ns in [ns for ns in self._search_indexes if ns[0] == db]:
            self._forget_namespace(ns)
        for ns in [ns for ns in self._vectors if ns[0] == db]:
            self._vectors.pop(ns, None)
        for ns in [ns for ns in self._fulltext if ns[0] == db]:
            self._fulltext.pop(ns, None)
        self._client.drop_database(db)
        return {"dropped": db}

    def _list_databases(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        flt = cmd.get("filter") or {}
        dbs = []
        for name in sorted(self._client.list_database_names()):
            entry: dict[str, Any] = {"name": name}
            if not cmd.get("nameOnly"):
                entry.update(sizeOnDisk=0, empty=False)
            if filter_applies(flt, entry):
                dbs.append(entry)
        reply: dict[str, Any] = {"databases": dbs}
        if not cmd.get("nameOnly"):
            reply["totalSize"] = 0
            reply["totalSizeMb"] = 0
        return reply

    # ------------------------------------------------------------------ regular indexes

    def _create_indexes(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name = cmd["createIndexes"]
        created_auto = not self._exists(db, name)
        coll = self._coll(db, name)
        if created_auto:
            self._client[db].create_collection(name)
        before = len(list(coll.list_indexes()))
        for spec in cmd.get("indexes") or []:
            key = spec.get("key")
            if not isinstance(key, dict) or not key:
                raise CommandError("Index keys cannot be empty.", 67)
            kwargs = {
                k: spec[k] for k in ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression") if k in spec
            }
            try:
                coll.create_index(list(key.items()), name=spec.get("name"), **kwargs)
            except mongomock.DuplicateKeyError as exc:
                raise CommandError(f"Index build failed: {_dup_msg(exc)}", 11000) from exc
            except mongomock.OperationFailure as exc:
                raise CommandError(str(exc), 85) from exc
        after = len(list(coll.list_indexes()))
        return {"createdCollectionAutomatically": created_auto, "numIndexesBefore": before, "numIndexesAfter": after}

    def _list_indexes(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name = cmd["listIndexes"]
        if not self._exists(db, name):
            raise CommandError(f"ns does not exist: {db}.{name}", 26)
        docs = list(self._coll(db, name).list_indexes())
        batch = (cmd.get("cursor") or {}).get("batchSize")
        return self._cursor_reply(f"{db}.{name}", docs, batch)

    def _drop_indexes(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name: str = cmd["dropIndexes"] if "dropIndexes" in cmd else cmd["deleteIndexes"]
        if not self._exists(db, name):
            raise CommandError(f"ns not found {db}.{name}", 26)
        coll = self._coll(db, name)
        n_before = len(list(coll.list_indexes()))
        index = cmd.get("index")
        if index == "*":
            coll.drop_indexes()
        else:
            names = index if isinstance(index, list) else [index]
            for ix in names:
                if isinstance(ix, dict):
                    matches = [i["name"] for i in coll.list_indexes() if i["key"] == dict(ix)]
                    if not matches:
                        raise CommandError(f"can't find index with key: {ix}", 27)
                    ix = matches[0]
                if ix == "_id_":
                    raise CommandError("cannot drop _id index", 72, "InvalidOptions")
                try:
                    coll.drop_index(ix)
                except mongomock.OperationFailure as exc:
                    raise CommandError(f"index not found with name [{ix}]", 27) from exc
        return {"nIndexesWas": n_before}

    # ------------------------------------------------------------------ search indexes

    def _search_index_by(self, db: str, coll: str, cmd: dict[str, Any]) -> SearchIndex:
        indexes = self._search_indexes.get((db, coll), {})
        if "name" in cmd:
            idx = indexes.get(cmd["name"])
            kind, value = "name", cmd["name"]
        elif "id" in cmd:
            idx = next((i for i in indexes.values() if i.id == str(cmd["id"])), None)
            kind, value = "id", cmd["id"]
        else:
            raise CommandError("Expected one of index name or ID", 9)
        if idx is None:
            raise CommandError(f"No index with {kind} {value} exists in namespace {db}.{coll}", 27)
        return idx

    def _create_search_indexes(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name = cmd["createSearchIndexes"]
        specs = cmd.get("indexes")
        if not isinstance(specs, list) or not specs:
            raise CommandError('"indexes" must be a non-empty array', 9)
        parsed = []
        for spec in specs:
            index_name = spec.get("name", "default")
            index_type = spec.get("type", "search")
            definition = spec.get("definition")
            if definition is None:
                raise CommandError('"definition" is required', 9)
            parsed.append((index_name, index_type, definition, normalize(index_type, definition)))
        existing = self._search_indexes.get((db, name), {})
        for index_name, index_type, _, normalized in parsed:
            old = existing.get(index_name)
            if old is not None and (old.type != index_type or old.normalized != normalized):
                raise CommandError(
                    f"Index {index_name} already exists with a different definition. Drop it first if needed.",
                    68,
                )
        if not self._exists(db, name):
            self._client[db].create_collection(name)
        indexes = self._search_indexes.setdefault((db, name), {})
        created = []
        for index_name, index_type, definition, normalized in parsed:
            if index_name not in indexes:
                indexes[index_name] = SearchIndex(
                    name=index_name,
                    type=index_type,
                    definition=copy.deepcopy(definition),
                    normalized=normalized,
                    build_delay=self.index_build_delay,
                )
            created.append({"id": indexes[index_name].id, "name": index_name})
        self._refresh_vector_stores((db, name))
        return {"indexesCreated": created}

    def _update_search_index(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name = cmd["updateSearchIndex"]
        idx = self._search_index_by(db, name, cmd)
        definition = cmd.get("definition")
        if definition is None:
            raise CommandError('"definition" is required', 9)
        index_type = cmd.get("type", idx.type)
        if index_type != idx.type:
            raise CommandError(f"Cannot change the type of index {idx.name} from {idx.type} to {index_type}", 2)
        idx.update(definition, normalize(idx.type, definition))
        self._refresh_vector_stores((db, name))
        return {}

    def _drop_search_index(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name = cmd["dropSearchIndex"]
        if not self._exists(db, name):
            raise CommandError(f"Collection '{db}.{name}' does not exist.", 26)
        idx = self._search_index_by(db, name, cmd)
        del self._search_indexes[(db, name)][idx.name]
        self._refresh_vector_stores((db, name))
        return {}

    def _list_search_indexes(self, db: str, coll: MockCollection, spec: Any) -> list[dict[str, Any]]:
        if not isinstance(spec, dict):
            raise CommandError("$listSearchIndexes requires a document argument", 9)
        indexes = self._search_indexes.get((db, coll.name), {}).values()
        out = []
        for idx in indexes:
            if "name" in spec and spec["name"] != idx.name:
                continue
            if "id" in spec and str(spec["id"]) != idx.id:
                continue
            out.append(idx.to_document())
        return out

    # ------------------------------------------------------------------ $vectorSearch

    def _vector_search(self, db: str, coll: MockCollection, spec: Any, copy_docs: bool = True) -> list[dict[str, Any]]:
        if not isinstance(spec, dict):
            raise CommandError("$vectorSearch must take a nested object", 9)
        for key in spec:
            if key not in VECTOR_SEARCH_KEYS:
                raise CommandError(f"BSON field '$vectorSearch.{key}' is an unknown field.", 40415)
        for key in ("index", "path", "queryVector", "limit"):
            if key not in spec:
                raise CommandError(f'"$vectorSearch.{key}" is required', 9)
        index_name, path = spec["index"], spec["path"]
        if not isinstance(index_name, str):
            raise CommandError('"$vectorSearch.index" must be a string', 14)
        if not isinstance(path, str):
            raise CommandError('"$vectorSearch.path" must be a string', 14)
        limit = spec["limit"]
        if not _is_int(limit) or int(limit) < 1:
            raise bad_value(f'"$vectorSearch.limit" must be a positive integer, got {limit!r}')
        limit = int(limit)
        exact = spec.get("exact", False)
        if not isinstance(exact, bool):
            raise CommandError('"$vectorSearch.exact" must be a boolean', 14)
        if exact:
            if "numCandidates" in spec:
                raise bad_value('"numCandidates" must be omitted when "exact" is set to true')
        else:
            if "numCandidates" not in spec:
                raise bad_value("numCandidates is required for approximate vector search")
            nc = spec["numCandidates"]
            if not _is_int(nc) or not 1 <= int(nc) <= 10_000:
                raise bad_value(f'"$vectorSearch.numCandidates" must be within bounds [1, 10000], got {nc!r}')
            if limit > int(nc):
                raise bad_value("limit should be less than or equal to numCandidates")
        query = parse_query_vector(spec["queryVector"])
        flt = spec.get("filter")
        if flt is not None and not isinstance(flt, dict):
            raise CommandError('"$vectorSearch.filter" must be a document', 14)

        idx = self._search_indexes.get((db, coll.name), {}).get(index_name)
        if idx is None or idx.type != "vectorSearch":
            return []  # "the index does not exist, respond with empty information" (mongot)
        if not idx.queryable:
            raise CommandError(f"cannot query vector index {index_name} while in state {idx.internal_state}", 8)
        vfield = idx.vector_fields().get(path)
        if vfield is None:
            raise CommandError(f"{path} is not indexed as vector", 8)
        if query.kind == "bit" and vfield.similarity != "euclidean":
            raise CommandError(
                "Binary vectors can only be used with fields indexed with Euclidean similarity but indexed "
                f"similarity is {vfield.similarity}",
                8,
            )
        if query.dim != vfield.num_dimensions:
            raise CommandError(
                f"vector field is indexed with {vfield.num_dimensions} dimensions but queried with {query.dim}", 8
            )
        if vfield.similarity == "cosine" and query.kind != "bit" and not query.values.any():
            raise CommandError("Cosine similarity cannot be calculated against a zero vector.", 8)
        if flt:
            _check_filter(flt, idx.filter_paths())

        matrix = matrix_for(vfield, self._vectors.get((db, coll.name), {}).get(path), query)
        if matrix is None or matrix.used == 0:
            return []
        scores = score_matrix(vfield, matrix, query)
        docs = coll._store._documents
        allowed = None
        if flt:
            spec_f = mm_helpers.patch_datetime_awareness_in_document(flt)
            allowed = {key for key, doc in docs.items() if filter_applies(spec_f, doc)}
        out: list[dict[str, Any]] = []
        for key, score in top_k(scores, matrix.keys, limit, allowed):
            doc = fulltext.copy_doc(docs[key]) if copy_docs else dict(docs[key])
            doc[SCORE_FIELD] = score
            out.append(doc)
        return out


# ---------------------------------------------------------------------- helpers


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _take(docs: list[dict[str, Any]], start: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Next batch from ``start`` (``limit`` docs, 0 = unlimited), capped at 16 MiB like the server."""
    end, size, n = start, 0, len(docs)
    while end < n:
        size += len(bson.encode(docs[end]))
        end += 1
        if (limit and end - start >= limit) or size >= MAX_BATCH_BYTES:
            break
    return docs[start:end], end


def _fmt(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else f'"{value}"'


def _dup_msg(exc: Exception) -> str:
    msg = str(exc)
    return msg if "E11000" in msg else f"E11000 duplicate key error: {msg}"


def _write_error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, CommandError):
        return {"code": exc.code, "errmsg": exc.errmsg}
    if isinstance(exc, mongomock.DuplicateKeyError):
        return {"code": 11000, "errmsg": _dup_msg(exc)}
    if isinstance(exc, mongomock.OperationFailure):
        return {"code": exc.code or 2, "errmsg": str(exc)}
    if isinstance(exc, NotImplementedError):
        return {"code": 238, "errmsg": f"not supported by the leaf-mongo emulator: {exc}"}
    return {"code": 2, "errmsg": f"{type(exc).__name__}: {exc}"}


_MIN_VERSION = {"$rankFusion": (8, 1, 0), "$scoreFusion": (8, 2, 0)}


def _version(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.split("-")[0].split(".")[:3] if p.isdigit()]
    return (parts + [0, 0, 0])[0], (parts + [0, 0, 0])[1], (parts + [0, 0, 0])[2]


def _rewrite_meta(value: Any) -> Any:
    """Replace ``{$meta: "<score kind>"}`` by a reference to its hidden field."""
    if isinstance(value, dict):
        if len(value) == 1 and value.get("$meta") in fusion.META_FIELDS:
            return "$" + fusion.META_FIELDS[value["$meta"]]
        return {k: _rewrite_meta(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite_meta(v) for v in value]
    return value


def _is_meta(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "$meta" in value


def _rewrite_stage(stage: dict[str, Any]) -> list[dict[str, Any]]:
    """Map stages mongomock lacks onto ones it has, and resolve ``$meta``."""
    name, arg = next(iter(stage.items()))
    if name == "$unset":
        fields = [arg] if isinstance(arg, str) else list(arg)
        return [{"$project": dict.fromkeys(fields, 0)}]
    if name == "$replaceWith":
        return [{"$replaceRoot": {"newRoot": _rewrite_meta(arg)}}]
    if name == "$project" and isinstance(arg, dict):
        metas = {k: v for k, v in arg.items() if _is_meta(v)}
        others = {k: v for k, v in arg.items() if k not in metas}
        if metas and others and all(v in (0, False) for v in others.values()):
            # $meta is allowed inside an exclusion projection on the server; mongomock
            # does not allow computed fields there, so split it in two stages.
            return [{"$addFields": _rewrite_meta(metas)}, {"$project": others}]
    return [{name: _rewrite_meta(arg)}]


def _check_filter(flt: dict[str, Any], filter_paths: set[str]) -> None:
    """Reject what mongot rejects in a ``$vectorSearch`` pre-filter (reference §4)."""
    for key, value in flt.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, list) or not value:
                raise bad_value(f"{key} must be a nonempty array")
            for sub in value:
                if not isinstance(sub, dict):
                    raise bad_value(f"{key} entries must be documents")
                _check_filter(sub, filter_paths)
        elif key.startswith("$"):
            raise bad_value(f"Operator {key} is not supported in a $vectorSearch filter")
        else:
            if key not in filter_paths:
                raise CommandError(f"Path '{key}' needs to be indexed as {_filter_type(value)}", 8)
            if isinstance(value, dict) and any(k.startswith("$") for k in value):
                _check_operators(key, value)


def _check_operators(path: str, ops: dict[str, Any]) -> None:
    for op, arg in ops.items():
        if op not in FILTER_OPERATORS or op in ("$and", "$or", "$nor"):
            raise bad_value(f"Operator {op} is not supported in a $vectorSearch filter (path '{path}')")
        if op == "$not":
            if not isinstance(arg, dict):
                raise bad_value("$not needs a document of operators")
            _check_operators(path, arg)
        if op in ("$in", "$nin") and not isinstance(arg, list):
            raise bad_value(f"{op} needs an array")


def _filter_type(value: Any) -> str:
    """Name of the index type mongot asks for ("token" for strings, reference §4)."""
    sample = value
    if isinstance(value, dict):
        sample = next(iter(value.values()), None)
    if isinstance(sample, list):
        sample = sample[0] if sample else None
    if isinstance(sample, str):
        return "token"
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, (int, float)):
        return "number"
    if isinstance(sample, dt.datetime):
        return "date"
    if isinstance(sample, bson.ObjectId):
        return "objectId"
    return "filter"
