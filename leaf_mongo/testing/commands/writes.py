"""Write commands: insert, update, delete, findAndModify (per-document write errors, upserts)."""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.results import UpdateResult

from leaf_mongo.testing.commands.options import bind_let, check_hint, first_match, refuse_collation
from leaf_mongo.testing.docs import MockCollection, store_key, stored_documents
from leaf_mongo.testing.errors import DUPLICATE_KEY, CommandError, failed_to_parse, not_implemented
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
                _check_field_names(doc)
                if "_id" in doc and store_key(doc["_id"]) in stored_documents(coll):
                    raise CommandError(
                        f"E11000 duplicate key error collection: {db}.{coll.name} index: _id_ dup key: "
                        f"{{ _id: {_fmt(doc['_id'])} }}",
                        DUPLICATE_KEY,
                        extra={"keyPattern": {"_id": 1}, "keyValue": {"_id": doc["_id"]}},
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
                keys, res = self._update_statement(coll, spec, cmd.get("let"))
                n += res.matched_count
                modified += res.modified_count
                if res.upserted_id is not None or res.raw_result.get("upsertedNullId"):
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

    def _update_statement(self, coll: MockCollection, spec: dict[str, Any], let: Any) -> tuple[list[Any], Any]:
        """One statement of an ``update``: the keys it may touch, and mongomock's result."""
        q = bind_let(spec.get("q") or {}, let)
        u = spec.get("u")
        u = bind_let(u, let, "pipeline") if isinstance(u, list) else u
        multi = bool(spec.get("multi", False))
        upsert = bool(spec.get("upsert", False))
        refuse_collation(spec)
        if spec.get("arrayFilters"):
            raise not_implemented("arrayFilters are not supported by the leaf-mongo emulator (emulator limitation)")
        check_hint(coll, self._exists(coll.database.name, coll.name), spec.get("hint"))
        sort = spec.get("sort")
        if sort and multi:
            raise failed_to_parse("Cannot specify sort with multi=true")
        is_replacement = isinstance(u, dict) and not any(k.startswith("$") for k in u)
        if is_replacement and multi:
            raise failed_to_parse("multi update is not supported for replacement-style update")
        if not multi and (is_replacement or sort):  # the document changed is decided here, not by mongomock
            target = first_match(coll, q, sort)
            if target is not None:
                q = {"_id": target["_id"]}
            elif is_replacement and upsert and isinstance(u, dict):
                return [], _upsert_replacement(coll, q, u)
        keys = self._matching_keys(coll, q, multi) if self._watching((coll.database.name, coll.name)) else []
        if is_replacement:
            return keys, coll.replace_one(q, u, upsert=upsert)
        res = coll.update_many(q, u, upsert=upsert) if multi else coll.update_one(q, u, upsert=upsert)
        if res.upserted_id is not None and "_id" in q and q["_id"] is None:
            return keys, _null_id(coll, res.upserted_id)
        return keys, res

    def _delete(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        coll = self._coll(db, cmd["delete"])
        ordered = cmd.get("ordered", True)
        ns = (db, coll.name)
        n = 0
        errors: list[dict[str, Any]] = []
        for i, spec in enumerate(cmd.get("deletes") or []):
            try:
                q = bind_let(spec.get("q") or {}, cmd.get("let"))
                refuse_collation(spec)
                check_hint(coll, self._exists(db, coll.name), spec.get("hint"))
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
        query = bind_let(cmd.get("query") or {}, cmd.get("let"))
        refuse_collation(cmd)
        if cmd.get("arrayFilters"):
            raise not_implemented("arrayFilters are not supported by the leaf-mongo emulator (emulator limitation)")
        check_hint(coll, self._exists(db, coll.name), cmd.get("hint"))
        target = first_match(coll, query, cmd.get("sort"))
        if target is not None:  # mongomock copies a filter's `_id: {$op}` into a replacement: name the document
            query = {"_id": target["_id"]}
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
            update = bind_let(update, cmd.get("let"), "pipeline") if isinstance(update, list) else update
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


def _upsert_replacement(coll: MockCollection, query: dict[str, Any], replacement: dict[str, Any]) -> Any:
    """A replacement upsert that matched nothing: the replacement, with the filter's ``_id`` if it is an equality
    (mongod takes only ``_id`` from the filter of a replacement)."""
    doc = dict(replacement)
    wanted = query.get("_id")
    is_operator = isinstance(wanted, dict) and any(k.startswith("$") for k in wanted)
    if "_id" not in doc and "_id" in query and not is_operator:
        doc["_id"] = wanted
    inserted = coll.insert_one(doc).inserted_id
    return UpdateResult({"n": 1, "nModified": 0, "upserted": inserted}, acknowledged=True)


def _check_field_names(doc: dict[str, Any]) -> None:
    """mongod refuses ``$``-prefixed names inside ``_id``; elsewhere it stores them (5.0+); the emulator does not."""
    if isinstance(doc.get("_id"), dict) and any(str(k).startswith("$") for k in doc["_id"]):
        bad = next(k for k in doc["_id"] if str(k).startswith("$"))
        raise CommandError(f"_id fields may not contain '$'-prefixed fields: {bad} is not valid for storage.", 52)
    if _dollar_key(doc):
        raise not_implemented(
            "field names starting with '$' (stored by MongoDB 5.0+) are not supported by the leaf-mongo emulator"
        )


def _dollar_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(str(k).startswith("$") or _dollar_key(v) for k, v in value.items())
    if isinstance(value, list):
        return any(map(_dollar_key, value))
    return False


def _null_id(coll: MockCollection, upserted: Any) -> Any:
    """An upsert whose filter is ``{_id: null}`` inserts ``_id: null``, as mongod does (mongomock made an ObjectId)."""
    doc = coll.find_one_and_delete({"_id": upserted})
    doc["_id"] = None
    coll.insert_one(doc)
    return UpdateResult({"n": 0, "nModified": 0, "upserted": None, "upsertedNullId": True}, acknowledged=True)
