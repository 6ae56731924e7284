"""Conformance: basic server behaviour (writes, cursors, counts, catalog, unique indexes, w=0).

Runs on the emulator and, unchanged, on a real server via ``LEAF_MONGO_TEST_URI`` (see helpers.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import DeleteMany, InsertOne, ReplaceOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, CollectionInvalid, DuplicateKeyError, OperationFailure
from pymongo.write_concern import WriteConcern

# --------------------------------------------------------------------------- basic server behaviour


def test_build_info_reports_8_2_or_later(mongo_client: Any) -> None:
    # Source: REF §1.1 (mongod >= 8.2 is what Community vector search needs); buildInfo command
    # https://www.mongodb.com/docs/manual/reference/command/buildInfo/
    version = mongo_client.server_info()["version"]
    assert tuple(int(x) for x in version.split(".")[:2]) >= (8, 2)


def test_duplicate_key_is_a_per_document_write_error(database: Database) -> None:
    # Source: https://www.mongodb.com/docs/manual/reference/command/insert/#output (writeErrors,
    # ordered stops at the first error, unordered continues); E11000 = code 11000.
    coll = database.dup
    coll.insert_one({"_id": 1})
    with pytest.raises(BulkWriteError) as ordered:
        coll.insert_many([{"_id": 2}, {"_id": 1}, {"_id": 3}], ordered=True)
    details = ordered.value.details
    assert details["nInserted"] == 1
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(1, 11000)]
    assert "E11000" in details["writeErrors"][0]["errmsg"]
    with pytest.raises(BulkWriteError) as unordered:
        coll.insert_many([{"_id": 4}, {"_id": 1}, {"_id": 5}, {"_id": 2}], ordered=False)
    assert unordered.value.details["nInserted"] == 2
    assert [e["index"] for e in unordered.value.details["writeErrors"]] == [1, 3]
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 5})
    assert sorted(d["_id"] for d in coll.find()) == [1, 2, 4, 5]  # 3 never ran (ordered)


def test_bulk_write_updates_upserts_and_deletes(database: Database) -> None:
    # Source: https://www.mongodb.com/docs/manual/reference/command/update/#output (n, nModified,
    # upserted[{index,_id}]) and .../command/delete/#output (n).
    coll = database.bulk
    coll.insert_many([{"_id": i, "g": i % 2, "x": 0} for i in range(6)])
    res = coll.bulk_write(
        [
            UpdateOne({"_id": 0}, {"$set": {"x": 1}}),
            UpdateOne({"_id": 100}, {"$set": {"x": 2}}, upsert=True),
            ReplaceOne({"_id": 1}, {"g": 1, "x": 3}),
            ReplaceOne({"_id": 200}, {"x": 4}, upsert=True),
            DeleteMany({"g": 0, "x": 0}),
            InsertOne({"_id": 300}),
        ]
    )
    assert res.matched_count == 2 and res.modified_count == 2
    assert res.upserted_ids == {1: 100, 3: 200}
    assert res.deleted_count == 2 and res.inserted_count == 1
    assert coll.find_one({"_id": 1}) == {"_id": 1, "g": 1, "x": 3}
    assert coll.update_many({"g": 1}, {"$inc": {"x": 10}}).modified_count == 3
    assert coll.find_one_and_update({"_id": 0}, {"$set": {"y": 1}}, return_document=True)["y"] == 1


def test_find_cursor_batches_and_get_more(database: Database) -> None:
    # Source: https://www.mongodb.com/docs/manual/reference/command/find/ and getMore/killCursors:
    # firstBatch/nextBatch with batchSize, cursor id 0 when exhausted.
    coll = database.many
    coll.insert_many([{"_id": i, "k": i % 3} for i in range(250)])
    assert [d["_id"] for d in coll.find().sort("_id", 1).batch_size(7)] == list(range(250))
    assert [d["_id"] for d in coll.find({"k": 1}, {"_id": 1}).sort("_id", -1).skip(2).limit(5)] == [
        241,
        238,
        235,
        232,
        229,
    ]
    cursor = coll.find().batch_size(10)
    next(cursor)
    cursor.close()  # killCursors
    agg = list(coll.aggregate([{"$match": {"k": 0}}, {"$group": {"_id": None, "n": {"$sum": 1}}}], batchSize=1))
    assert agg == [{"_id": None, "n": 84}]


def test_count_estimated_count_and_distinct(database: Database) -> None:
    # Source: pymongo sends countDocuments as an aggregate ($match/$group) and
    # estimatedDocumentCount as the count command (pymongo synchronous/collection.py).
    coll = database.counts
    coll.insert_many([{"_id": i, "c": "ab"[i % 2]} for i in range(10)])
    assert coll.count_documents({}) == 10
    assert coll.count_documents({"c": "a"}, skip=1, limit=3) == 3
    assert coll.estimated_document_count() == 10
    assert sorted(coll.distinct("c")) == ["a", "b"]
    assert coll.distinct("_id", {"c": "b"}) == [1, 3, 5, 7, 9]


def test_collections_and_databases(mongo_client: Any, database: Database) -> None:
    # Source: https://www.mongodb.com/docs/manual/reference/command/create/ (NamespaceExists),
    # drop ("drop on a non-existent collection returns ok" since 7.0), dropDatabase, listDatabases.
    database.create_collection("a")
    with pytest.raises(CollectionInvalid):
        database.create_collection("a")
    database.b.insert_one({})
    assert sorted(database.list_collection_names()) == ["a", "b"]
    assert database.name in mongo_client.list_database_names()
    database.drop_collection("a")
    database.drop_collection("does_not_exist")
    assert database.list_collection_names() == ["b"]
    mongo_client.drop_database(database.name)
    assert database.name not in mongo_client.list_database_names()


def test_unique_index_is_enforced(database: Database) -> None:
    # Source: https://www.mongodb.com/docs/manual/core/index-unique/ (E11000 on duplicates);
    # createIndexes/listIndexes/dropIndexes commands.
    coll = database.uniq
    coll.insert_one({"email": "a@x"})
    assert coll.create_index("email", unique=True) == "email_1"
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"email": "a@x"})
    info = coll.index_information()
    assert info["email_1"]["unique"] is True and "_id_" in info
    coll.drop_index("email_1")
    coll.insert_one({"email": "a@x"})
    assert coll.count_documents({"email": "a@x"}) == 2


def test_create_index_conflicts(database: Database) -> None:
    # Source: https://www.mongodb.com/docs/manual/reference/method/db.collection.createIndex/ (recreating an
    # existing index is a no-op; an index cannot be renamed or re-optioned); mongod IndexCatalog conflict codes
    # IndexOptionsConflict (85), IndexKeySpecsConflict (86).
    coll = database.ix
    coll.insert_one({"a": 1, "b": 1})
    assert coll.create_index([("a", 1), ("b", 1)], name="mine") == "mine"
    assert coll.create_index([("a", 1), ("b", 1)], name="mine") == "mine"  # same spec: no-op
    with pytest.raises(OperationFailure) as same_key:
        coll.create_index([("a", 1), ("b", 1)], name="other")
    assert same_key.value.code == 85
    with pytest.raises(OperationFailure) as same_name:
        coll.create_index([("b", 1)], name="mine")
    assert same_name.value.code == 86
    with pytest.raises(OperationFailure) as options:
        coll.create_index([("a", 1), ("b", 1)], name="mine", unique=True)
    assert options.value.code == 85
    assert sorted(coll.index_information()) == ["_id_", "mine"]


def test_unacknowledged_writes_get_no_reply(database: Database) -> None:
    # Source: OP_MSG spec (moreToCome: the server must not reply to w:0 writes),
    # https://github.com/mongodb/specifications/blob/master/source/message/OP_MSG.md
    coll = database.get_collection("w0", write_concern=WriteConcern(w=0))
    for i in range(20):
        coll.insert_one({"_id": i})
    # The connection is still usable afterwards and every write landed.
    assert database.w0.count_documents({}) == 20
