"""Write commands: insert, update, delete, findAndModify (per-document write errors, upserts)."""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument

from leaf_mongo.testing.docs import store_key, stored_documents
from leaf_mongo.testing.errors import DUPLICATE_KEY, CommandError, failed_to_parse
from leaf_mongo.testing.state import BackendState, _fmt, _write_error


class WriteCommands(BackendState):
    def _insert(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        coll = self._coll(db, cmd["insert"])
        docs = cmd.get("documents") or []
        ordered = cmd.get("ordered", True)
        ns = (db, coll.name)
        tracked = self._watching(ns)
        written: list[Any] = []
        errors: list[dict[str, Any]] = []
        n = 0
        for i, doc in enumerate(docs):
            try:
                if "_id" in doc and store_key(doc["_id"]) in stored_documents(coll):
                    raise CommandError(
                        f"E11000 duplicate key error collection: {db}.{coll.name} index: _id_ dup key: "
                        f"{{ _id: {_fmt(doc['_id'])} }}",
                        DUPLICATE_KEY,
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
            self._written(ns, written)
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
            keys: list[Any] = []
            try:
                q = spec.get("q") or {}
                u = spec.get("u")
                multi = bool(spec.get("multi", False))
                upsert = bool(spec.get("upsert", False))
                if spec.get("arrayFilters"):
                    raise NotImplementedError("arrayFilters")
                is_replacement = isinstance(u, dict) and not any(k.startswith("$") for k in u)
                if is_replacement and multi:
                    raise failed_to_parse("multi update is not supported for replacement-style update")
                keys = self._matching_keys(coll, q, multi) if self._watching(ns) else []
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
                self._written(ns, keys)
            except Exception as exc:  # noqa: BLE001
                self._written(ns, keys)  # a multi-update stopped by a unique index has changed some documents
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
                keys = self._matching_keys(coll, q, multi) if self._watching(ns) else []
                res = coll.delete_many(q) if multi else coll.delete_one(q)
                n += res.deleted_count
                self._written(ns, keys)
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
        # With a sort the document changed need not be the first match: follow every match (unchanged ones cost
        # a rewrite, never a miss).
        before = self._matching_keys(coll, query, sort is not None) if self._watching(ns) else []
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
        self._written(ns, before)
        return {"lastErrorObject": last, "value": value}
