"""Read commands: find, getMore, killCursors, count, distinct (real cursors and batches)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

from bson import Int64
from mongomock import helpers as mm_helpers
from mongomock.filtering import BsonComparable

from leaf_mongo.testing.commands.options import bind_let, check_hint, refuse_collation
from leaf_mongo.testing.docs import MockCollection, copy_doc, matching_documents, stored_documents
from leaf_mongo.testing.errors import CURSOR_NOT_FOUND, CommandError, bad_value
from leaf_mongo.testing.state import BackendState


class ReadCommands(BackendState):
    def _find(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        coll = self._coll(db, cmd["find"])
        self._check_read_options(db, coll, cmd)
        flt = bind_let(cmd.get("filter") or {}, cmd.get("let"))
        projection = cmd.get("projection") or None
        sort = list((cmd.get("sort") or {}).items()) or None
        skip = int(cmd.get("skip") or 0)
        limit = int(cmd.get("limit") or 0)
        single = bool(cmd.get("singleBatch")) or limit < 0
        docs = _found(coll, flt, projection, sort, skip, abs(limit))
        batch_size = cmd.get("batchSize")
        if limit and (batch_size is None or abs(limit) < int(batch_size)):
            batch_size = abs(limit)
        return self._cursor_reply(f"{db}.{coll.name}", docs, batch_size, single)

    def _get_more(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        cid = int(cmd["getMore"] if "getMore" in cmd else cmd["getmore"])
        cur = self._cursors.get(cid)
        if cur is None:
            raise CommandError(f"cursor id {cid} not found", CURSOR_NOT_FOUND)
        cur.last_used = time.monotonic()
        batch_size = cmd.get("batchSize")
        batch = cur.next_batch(int(batch_size) if batch_size else 0)
        exhausted = cur.exhausted
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
        self._check_read_options(db, coll, cmd)
        query = cmd.get("query") or {}
        if query:
            n = sum(1 for _ in matching_documents(coll, query))
        else:
            n = len(stored_documents(coll))
        n = max(0, n - int(cmd.get("skip") or 0))
        if cmd.get("limit"):
            n = min(n, abs(int(cmd["limit"])))
        return {"n": n}

    def _distinct(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        coll = self._coll(db, cmd["distinct"])
        self._check_read_options(db, coll, cmd)
        values = coll.distinct(cmd["key"], cmd.get("query") or None)
        # mongod gathers the values in a BSONElementSet, ordered by BSON comparison: the reply is sorted.
        return {"values": sorted(values, key=BsonComparable)}

    def _check_read_options(self, db: str, coll: MockCollection, cmd: dict[str, Any]) -> None:
        refuse_collation(cmd)
        check_hint(coll, self._exists(db, coll.name), cmd.get("hint"))


def _found(coll: MockCollection, flt: Any, projection: Any, sort: Any, skip: int, limit: int) -> Iterator[Any]:
    """The documents of a ``find``, produced lazily: each batch filters, projects and copies only itself.

    mongomock's own cursor re-slices its whole result list for every document it yields (quadratic: 100k
    documents took 22 s to read back); its dataset generator is lazy, so the cursor keeps that instead.
    A sort still orders every match first, as a server without an index for it does.
    """
    if not isinstance(flt, dict):
        raise bad_value(f"filter must be an object, not {type(flt).__name__}")
    spec = mm_helpers.patch_datetime_awareness_in_document(flt)
    if projection is None and not sort:  # the common read-back: copy_doc is ~10x faster than mongomock's copy
        docs: Iterator[Any] = (copy_doc(doc) for doc in coll._iter_documents(spec))
    else:
        docs = coll._get_dataset(spec, sort, projection, dict)
    return itertools.islice(docs, skip, skip + limit if limit else None)
