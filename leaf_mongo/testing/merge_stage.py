"""The ``$merge`` stage, as mongod runs it (mongomock has none): the pipeline's documents written into a collection.

``{$merge: "coll" | {into: "coll" | {db, coll}, on, whenMatched, whenNotMatched}}``, the final stage:

* ``on`` (default ``_id``): other fields need a unique index on exactly them (mongod: 51183);
* ``whenMatched``: ``merge`` (default; the source's fields ``$set`` on the match), ``replace``, ``keepExisting``,
  ``fail`` (E11000); an update pipeline is refused (emulator limitation);
* ``whenNotMatched``: ``insert`` (default), ``discard``, ``fail`` (13113).

It returns no documents. mongod's messages are used where they are known.
"""

from __future__ import annotations

from typing import Any

from leaf_mongo.testing.docs import MockCollection
from leaf_mongo.testing.errors import BAD_VALUE, DUPLICATE_KEY, FAILED_TO_PARSE, CommandError, not_implemented
from leaf_mongo.testing.state import BackendState

Doc = dict[str, Any]
WHEN_MATCHED = ("merge", "replace", "keepExisting", "fail")
WHEN_NOT_MATCHED = ("insert", "discard", "fail")


def merge(state: BackendState, db: str, docs: list[Doc], arg: Any) -> list[Doc]:
    """Write ``docs`` into the ``$merge`` target; nothing flows out of the stage."""
    spec = {"into": arg} if isinstance(arg, str) else arg
    if not isinstance(spec, dict) or "into" not in spec:
        raise CommandError("$merge requires an 'into' field", FAILED_TO_PARSE)
    into = spec["into"]
    target_db, target = (db, into) if isinstance(into, str) else (into.get("db", db), into.get("coll"))
    coll = state._coll(target_db, target)
    on = spec.get("on", "_id")
    on_fields = [on] if isinstance(on, str) else list(on)
    matched, not_matched = spec.get("whenMatched", "merge"), spec.get("whenNotMatched", "insert")
    if not isinstance(matched, str):
        raise not_implemented("$merge with a whenMatched pipeline is not supported by the leaf-mongo emulator")
    if matched not in WHEN_MATCHED or not_matched not in WHEN_NOT_MATCHED:
        raise CommandError(f"Enumeration value for $merge modes is not valid: {matched}/{not_matched}", BAD_VALUE)
    if spec.get("let") is not None:
        raise not_implemented("$merge's let is not supported by the leaf-mongo emulator")
    if on_fields != ["_id"]:
        _require_unique_index(coll, on_fields)
    for doc in docs:
        _merge_one(coll, doc, on_fields, matched, not_matched)
    return []


def _merge_one(coll: MockCollection, doc: Doc, on: list[str], matched: str, not_matched: str) -> None:
    key = {field: doc.get(field) for field in on}
    existing = coll.find_one(key)
    if existing is None:
        if not_matched == "fail":
            raise CommandError(
                "$merge could not find a matching document in the target collection for at least one document "
                "in the source collection",
                13113,
            )
        if not_matched == "insert":
            coll.insert_one(dict(doc))
        return
    if matched == "keepExisting":
        return
    if matched == "fail":
        raise CommandError(
            f"E11000 duplicate key error collection: {coll.full_name} index: _id_ dup key: {key}",
            DUPLICATE_KEY,
            extra={"keyPattern": dict.fromkeys(on, 1), "keyValue": key},
        )
    if "_id" in doc and doc["_id"] != existing["_id"]:
        raise CommandError(
            "$merge failed to update the matching document, did you attempt to modify the _id or the shard key?",
            66,
        )
    if matched == "replace":
        coll.replace_one({"_id": existing["_id"]}, {k: v for k, v in doc.items() if k != "_id"})
    else:
        fields = {k: v for k, v in doc.items() if k != "_id"}
        if fields:
            coll.update_one({"_id": existing["_id"]}, {"$set": fields})


def _require_unique_index(coll: MockCollection, on: list[str]) -> None:
    for info in coll.index_information().values():
        if info.get("unique") and {k for k, _ in info["key"]} == set(on):
            return
    raise CommandError("Cannot find index to verify that join fields will be unique", 51183)
