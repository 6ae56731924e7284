"""Catalog commands: collections, databases and regular (B-tree) indexes."""

from __future__ import annotations

from typing import Any

import mongomock
from mongomock.filtering import filter_applies

from leaf_mongo.testing.errors import (
    CANNOT_CREATE_INDEX,
    DUPLICATE_KEY,
    INDEX_KEY_SPECS_CONFLICT,
    INDEX_NOT_FOUND,
    INDEX_OPTIONS_CONFLICT,
    INVALID_OPTIONS,
    NAMESPACE_EXISTS,
    NAMESPACE_NOT_FOUND,
    CommandError,
    not_implemented,
)
from leaf_mongo.testing.state import BackendState, _dup_msg


class CatalogCommands(BackendState):
    def _create(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name = cmd["create"]
        if "viewOn" in cmd:
            raise not_implemented(
                "views are not supported by the leaf-mongo emulator (emulator limitation): no viewOn, no "
                "$vectorSearch or search indexes on views"
            )
        if self._exists(db, name):
            raise CommandError(f"Collection {db}.{name} already exists.", NAMESPACE_EXISTS)
        self._client[db].create_collection(name)
        self._catalog_changed((db, name))
        return {}

    def _drop(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name = cmd["drop"]
        self._forget_namespace((db, name))
        if not self._exists(db, name):
            return {}  # MongoDB >= 7.0: dropping a missing collection succeeds
        n_indexes = len(list(self._coll(db, name).list_indexes()))
        self._client[db].drop_collection(name)
        self._catalog_changed((db, name))
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
        if self._storage is not None:
            self._storage.drop_database(db)
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
                raise CommandError("Index keys cannot be empty.", CANNOT_CREATE_INDEX)
            kwargs = {
                k: spec[k] for k in ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression") if k in spec
            }
            if _existing_index(coll, spec.get("name"), list(key.items()), kwargs):
                continue
            try:
                coll.create_index(list(key.items()), name=spec.get("name"), **kwargs)
            except mongomock.DuplicateKeyError as exc:
                raise CommandError(f"Index build failed: {_dup_msg(exc)}", DUPLICATE_KEY) from exc
            except mongomock.OperationFailure as exc:
                raise CommandError(str(exc), INDEX_OPTIONS_CONFLICT) from exc
        after = len(list(coll.list_indexes()))
        self._catalog_changed((db, name))
        return {"createdCollectionAutomatically": created_auto, "numIndexesBefore": before, "numIndexesAfter": after}

    def _list_indexes(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name = cmd["listIndexes"]
        if not self._exists(db, name):
            raise CommandError(f"ns does not exist: {db}.{name}", NAMESPACE_NOT_FOUND)
        docs = list(self._coll(db, name).list_indexes())
        batch = (cmd.get("cursor") or {}).get("batchSize")
        return self._cursor_reply(f"{db}.{name}", docs, batch)

    def _drop_indexes(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name: str = cmd["dropIndexes"] if "dropIndexes" in cmd else cmd["deleteIndexes"]
        if not self._exists(db, name):
            raise CommandError(f"ns not found {db}.{name}", NAMESPACE_NOT_FOUND)
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
                        raise CommandError(f"can't find index with key: {ix}", INDEX_NOT_FOUND)
                    ix = matches[0]
                if ix == "_id_":
                    raise CommandError("cannot drop _id index", INVALID_OPTIONS)
                try:
                    coll.drop_index(ix)
                except mongomock.OperationFailure as exc:
                    raise CommandError(f"index not found with name [{ix}]", INDEX_NOT_FOUND) from exc
        self._catalog_changed((db, name))
        return {"nIndexesWas": n_before}


def _existing_index(coll: Any, name: str | None, key: list[tuple[str, Any]], options: dict[str, Any]) -> bool:
    """True when this exact index exists (createIndexes is then a no-op); the server's conflict errors otherwise.

    As mongod's IndexCatalog checks a requested spec against existing ones: same key and options under another
    name is IndexOptionsConflict (85), same name with another key is IndexKeySpecsConflict (86), same name and key
    with other options is IndexOptionsConflict (85). https://www.mongodb.com/docs/manual/reference/method/db.collection.createIndex/
    (Recreating an existing index; index options; index names cannot be changed).
    """
    norm = [(f, int(d) if isinstance(d, (int, float)) else d) for f, d in key]
    for existing, info in coll.index_information().items():
        same_key = [(f, int(d) if isinstance(d, (int, float)) else d) for f, d in info["key"]] == norm
        same_options = all(info.get(k) == v for k, v in options.items()) and all(
            k not in info or k in options for k in ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression")
        )
        if existing == name and same_key and same_options:
            return True
        if existing == name and not same_key:
            raise CommandError(
                "An existing index has the same name as the requested index. When index names are not specified, "
                f"they are auto generated and can cause conflicts. Requested index: {dict(key)}, existing index: "
                f"{dict(info['key'])}",
                INDEX_KEY_SPECS_CONFLICT,
            )
        if existing == name:
            raise CommandError(
                f"An equivalent index already exists with the same name but different options. Requested index: "
                f"{options}, existing index: { {k: v for k, v in info.items() if k not in ('key', 'v')} }",
                INDEX_OPTIONS_CONFLICT,
            )
        if same_key and same_options and name is not None and existing != "_id_":
            raise CommandError(f"Index already exists with a different name: {existing}", INDEX_OPTIONS_CONFLICT)
    return False
