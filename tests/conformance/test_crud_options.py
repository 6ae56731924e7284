"""Conformance: CRUD options the driver specification tests found accepted-and-ignored or wrong (issue 21).

Each case is done as mongod 8.2 does it, or refused by the emulator with NotImplemented (238) and a message
containing "emulator limitation"; never accepted and ignored. Runs on the emulator and, unchanged, on a real
server via ``LEAF_MONGO_TEST_URI`` (where the refused features must simply work). Sources: the MongoDB manual's
command pages, and MongoDB's unified CRUD specification tests (github.com/mongodb/specifications,
``source/crud/tests/unified``), which ``scripts/driver_spec_suite.py`` runs in full.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo import DeleteMany, InsertOne, ReturnDocument, UpdateOne
from pymongo.collation import Collation
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ClientBulkWriteException,
    DuplicateKeyError,
    OperationFailure,
    WriteError,
)
from pymongo.operations import SearchIndexModel

from leaf_mongo.testing import MongoEmulator, wait_for_search_index
from tests.conformance.helpers import TIMEOUT


def works_or_is_a_limitation(emulator: Any, run: Callable[[], Any]) -> Any:
    """``run()``'s result on a real server; on the emulator, the NotImplemented refusal (None)."""
    try:
        result = run()
    except OperationFailure as exc:
        assert isinstance(emulator, MongoEmulator), f"a real server refused it: {exc}"
        assert exc.code == 238 and "emulator limitation" in str(exc), str(exc)
        return None
    assert not isinstance(emulator, MongoEmulator), "the emulator accepted what it cannot do"
    return result


# --------------------------------------------------------------------------- collation


def test_collation_works_or_is_refused(database: Database, mongo_emulator: Any) -> None:
    # https://www.mongodb.com/docs/manual/reference/collation/ ; spec tests find-collation.json and friends
    coll = database.coll_collation
    coll.insert_many([{"_id": 1, "x": "ping"}, {"_id": 2, "x": "PING"}])
    strength2 = Collation(locale="en_US", strength=2)  # case-insensitive
    found = works_or_is_a_limitation(mongo_emulator, lambda: list(coll.find({"x": "PING"}, collation=strength2)))
    assert found is None or sorted(d["_id"] for d in found) == [1, 2]
    deleted = works_or_is_a_limitation(mongo_emulator, lambda: coll.delete_many({"x": "ping"}, collation=strength2))
    assert deleted is None or deleted.deleted_count == 2
    assert coll.count_documents({}) == (2 if deleted is None else 0)  # a refused delete deleted nothing
    if deleted is not None:
        coll.insert_many([{"_id": 3, "x": "ping"}, {"_id": 4, "x": "PING"}])
    distinct = works_or_is_a_limitation(mongo_emulator, lambda: coll.distinct("x", collation=strength2))
    assert distinct is None or len(distinct) == 1
    # the simple collation is binary comparison: accepted everywhere, and case-sensitive
    assert [d["x"] for d in coll.find({"x": "PING"}, collation=Collation(locale="simple"))] == ["PING"]


# --------------------------------------------------------------------------- hint


def test_hint_must_name_an_existing_index(database: Database) -> None:
    # mongod's planner: "hint provided does not correspond to an existing index" (BadValue, 2); a hint of an
    # existing (non-sparse, non-partial) index changes the plan, never the result.
    coll = database.coll_hint
    coll.insert_many([{"_id": i, "x": i % 3} for i in range(6)])
    coll.create_index("x")
    assert sorted(d["_id"] for d in coll.find({"x": 1}, hint="x_1")) == [1, 4]
    assert sorted(d["_id"] for d in coll.find({"x": 1}, hint=[("x", 1)])) == [1, 4]
    assert coll.count_documents({"x": 2}, hint="_id_") == 2
    with pytest.raises(OperationFailure) as find_error:
        list(coll.find({"x": 1}, hint="nope_1"))
    assert find_error.value.code == 2
    assert "hint provided does not correspond to an existing index" in str(find_error.value)
    with pytest.raises(WriteError) as update_error:
        coll.update_one({"x": 1}, {"$set": {"y": 1}}, hint={"nope": 1})
    assert update_error.value.code == 2
    assert coll.count_documents({"y": 1}) == 0
    with pytest.raises(WriteError):
        coll.delete_many({}, hint="nope_1")
    assert coll.count_documents({}) == 6


def test_hint_of_a_sparse_index_works_or_is_refused(database: Database, mongo_emulator: Any) -> None:
    # A sparse index has no entry for documents without the field: hinting it changes the result.
    coll = database.coll_sparse_hint
    coll.insert_many([{"_id": 1, "y": 1}, {"_id": 2}])
    coll.create_index("y", sparse=True)
    found = works_or_is_a_limitation(mongo_emulator, lambda: list(coll.find({}, hint="y_1")))
    assert found is None or [d["_id"] for d in found] == [1]


# --------------------------------------------------------------------------- sort of updateOne / replaceOne


def test_update_one_and_replace_one_change_the_first_document_in_sort_order(database: Database) -> None:
    # MongoDB 8.0+: the update statement's `sort` picks which matching document changes
    # (spec tests updateOne-sort.json, replaceOne-sort.json).
    coll = database.coll_sort
    coll.insert_many([{"_id": 1, "x": 11}, {"_id": 2, "x": 22}, {"_id": 3, "x": 33}])
    result = coll.update_one({"_id": {"$gt": 1}}, {"$inc": {"x": 1}}, sort={"_id": -1})
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert list(coll.find({}, sort=[("_id", 1)])) == [{"_id": 1, "x": 11}, {"_id": 2, "x": 22}, {"_id": 3, "x": 34}]
    coll.replace_one({"_id": {"$gt": 1}}, {"x": 1}, sort={"x": 1})
    assert list(coll.find({}, sort=[("_id", 1)])) == [{"_id": 1, "x": 11}, {"_id": 2, "x": 1}, {"_id": 3, "x": 34}]
    coll.bulk_write([UpdateOne({}, {"$set": {"x": 0}}, sort={"x": -1})])
    assert coll.find_one({"_id": 3}) == {"_id": 3, "x": 0}


def test_replace_with_an_operator_on_id_replaces_the_first_match(database: Database) -> None:
    # The replacement keeps the matched document's _id; only an equality on _id may seed an upsert's _id
    # (spec tests replaceOne.json, findOneAndReplace.json "when many documents match").
    coll = database.coll_replace_id
    coll.insert_many([{"_id": 1, "x": 11}, {"_id": 2, "x": 22}, {"_id": 3, "x": 33}])
    result = coll.replace_one({"_id": {"$gt": 1}}, {"x": 111})
    assert (result.matched_count, result.modified_count) == (1, 1)
    before = coll.find_one_and_replace({"_id": {"$gt": 1}}, {"x": 5}, sort=[("_id", -1)])
    assert before == {"_id": 3, "x": 33}
    assert sorted(d["x"] for d in coll.find()) == [5, 11, 111]
    upserted = coll.replace_one({"_id": {"$gt": 10}}, {"x": 7}, upsert=True)
    assert upserted.upserted_id is not None and upserted.upserted_id != 10
    assert coll.count_documents({"x": 7}) == 1


# --------------------------------------------------------------------------- arrayFilters


def test_array_filters_work_or_are_refused(database: Database, mongo_emulator: Any) -> None:
    # https://www.mongodb.com/docs/manual/reference/operator/update/positional-filtered/ ; never a Python error
    coll = database.coll_array_filters
    coll.insert_one({"_id": 1, "y": [{"b": 3}, {"b": 1}]})
    after = works_or_is_a_limitation(
        mongo_emulator,
        lambda: coll.find_one_and_update(
            {"_id": 1},
            {"$set": {"y.$[i].b": 2}},
            array_filters=[{"i.b": 3}],
            return_document=ReturnDocument.AFTER,
        ),
    )
    assert after is None or after == {"_id": 1, "y": [{"b": 2}, {"b": 1}]}
    updated = works_or_is_a_limitation(
        mongo_emulator, lambda: coll.update_one({"_id": 1}, {"$set": {"y.$[i].b": 0}}, array_filters=[{"i.b": 1}])
    )
    assert updated is None or updated.modified_count == 1
    if after is None:
        assert coll.find_one({"_id": 1}) == {"_id": 1, "y": [{"b": 3}, {"b": 1}]}  # refused: nothing changed


# --------------------------------------------------------------------------- distinct


def test_distinct_returns_values_in_bson_order(database: Database) -> None:
    # mongod gathers distinct values in a BSONElementSet (ordered by BSON comparison): numbers, then strings
    # (spec test distinct.json expects [11, 22, 33]; arrays are unwound, equal numbers of different types merge).
    coll = database.coll_distinct
    coll.insert_many([{"x": 33}, {"x": "b"}, {"x": 11}, {"x": [22, "a"]}, {"x": 11.0}, {"y": 1}])
    assert coll.distinct("x") == [11, 22, 33, "a", "b"]
    # a matching document contributes all its values: [22, "a"] matches {$type: "number"} through 22
    assert coll.distinct("x", {"x": {"$type": "number"}}) == [11, 22, 33, "a"]
    assert coll.distinct("x", {"x": {"$type": "string"}}) == [22, "a", "b"]


# --------------------------------------------------------------------------- duplicate keys


def test_duplicate_key_errors_carry_key_pattern_and_key_value(database: Database) -> None:
    # mongod's E11000 write error (and findAndModify reply) has keyPattern and keyValue
    # (spec tests findOneAndUpdate-errorResponse.json, aggregate-merge-errorResponse.json).
    coll = database.coll_dup_details
    coll.create_index("x", unique=True)
    coll.insert_one({"_id": 1, "x": "foo"})
    with pytest.raises(DuplicateKeyError) as on_insert:
        coll.insert_one({"_id": 2, "x": "foo"})
    assert on_insert.value.details["keyPattern"] == {"x": 1}
    assert on_insert.value.details["keyValue"] == {"x": "foo"}
    assert "index: x_1 dup key" in str(on_insert.value)
    with pytest.raises(BulkWriteError) as on_id:
        coll.insert_many([{"_id": 1}])
    error = on_id.value.details["writeErrors"][0]
    assert (error["keyPattern"], error["keyValue"]) == ({"_id": 1}, {"_id": 1})
    with pytest.raises(DuplicateKeyError) as on_upsert:
        coll.find_one_and_update({"_id": 2}, {"$set": {"x": "foo"}}, upsert=True)
    assert on_upsert.value.details["keyPattern"] == {"x": 1}
    assert on_upsert.value.details["keyValue"] == {"x": "foo"}


# --------------------------------------------------------------------------- let, $merge, null _id


def test_let_variables_are_bound(database: Database) -> None:
    # `let` on find/update/delete/aggregate (5.0+): constants, or expressions evaluated once (spec *-let.json)
    coll = database.coll_let
    coll.insert_many([{"_id": 1}, {"_id": 2, "name": "a"}, {"_id": 3, "name": "a"}])
    assert [d["_id"] for d in coll.find({"$expr": {"$eq": ["$_id", "$$id"]}}, let={"id": 2})] == [2]
    result = coll.update_many(
        {"$expr": {"$eq": ["$name", "$$name"]}}, [{"$set": {"y": "$$y"}}], let={"name": "a", "y": {"$literal": "$b"}}
    )
    assert result.modified_count == 2
    assert coll.count_documents({"y": "$b"}) == 2
    out = list(coll.aggregate([{"$match": {"_id": 1}}, {"$project": {"_id": 0, "v": "$$v"}}], let={"v": 5}))
    assert out == [{"v": 5}]
    assert coll.delete_many({"$expr": {"$eq": ["$name", "$$name"]}}, let={"name": "a"}).deleted_count == 2


def test_merge_writes_into_the_target_collection(database: Database) -> None:
    # https://www.mongodb.com/docs/manual/reference/operator/aggregation/merge/
    src, target = database.coll_merge_src, database.coll_merge_target
    src.insert_many([{"_id": 1, "x": 1}, {"_id": 2, "x": 2}])
    target.insert_one({"_id": 2, "y": 9})
    assert list(src.aggregate([{"$merge": {"into": target.name}}])) == []
    assert list(target.find({}, sort=[("_id", 1)])) == [{"_id": 1, "x": 1}, {"_id": 2, "y": 9, "x": 2}]
    with pytest.raises(OperationFailure) as failed:
        database.aggregate([{"$documents": [{"_id": 2}]}, {"$merge": {"into": target.name, "whenMatched": "fail"}}])
    assert failed.value.code == 11000
    assert failed.value.details["keyPattern"] == {"_id": 1}


def test_upsert_of_a_null_id_stores_null(database: Database) -> None:
    # spec test create-null-ids.json: `{_id: null}` is a value, `{$type: "null"}` finds it
    coll = database.coll_null_id
    result = coll.update_one({"_id": None}, {"$unset": {"a": ""}}, upsert=True)
    assert result.upserted_id is None and result.did_upsert
    assert coll.count_documents({"_id": {"$type": "null"}}) == 1


# --------------------------------------------------------------------------- search index definitions


def test_search_index_with_dynamic_false_and_no_fields_is_accepted(database: Database) -> None:
    # mongot's DocumentFieldDefinition defaults `fields` to {} and checks no count (MT
    # index/definition/DocumentFieldDefinition.java, its test's valid "explicit dynamic" spec); the drivers' prose
    # tests create exactly this index.
    coll = database.coll_dynamic_false
    coll.insert_one({"_id": 1, "text": "hello"})
    name = coll.create_search_index(SearchIndexModel({"mappings": {"dynamic": False}}, name="empty"))
    assert name == "empty"
    index = wait_for_search_index(coll, "empty", TIMEOUT)
    assert index["latestDefinition"] == {"mappings": {"dynamic": False}}


# --------------------------------------------------------------------------- client bulkWrite, undefined variables


def test_client_bulk_write_writes_across_namespaces(mongo_client: Any, database: Database) -> None:
    # MongoDB 8.0's bulkWrite admin command (MongoClient.bulk_write); spec tests client-bulkWrite-*.json
    a, b = f"{database.name}.bulk_a", f"{database.name}.bulk_b"
    database.bulk_b.insert_many([{"_id": 1, "x": 1}, {"_id": 2, "x": 2}])
    result = mongo_client.bulk_write(
        [
            InsertOne(namespace=a, document={"_id": 1}),
            UpdateOne(namespace=b, filter={}, update={"$inc": {"x": 10}}, sort={"_id": -1}),
            UpdateOne(namespace=b, filter={"_id": 3}, update={"$set": {"x": 3}}, upsert=True),
            DeleteMany(namespace=b, filter={"x": {"$lt": 5}}),
        ],
        verbose_results=True,
    )
    assert (result.inserted_count, result.matched_count, result.modified_count) == (1, 1, 1)
    assert (result.upserted_count, result.deleted_count) == (1, 2)
    assert result.update_results[2].upserted_id == 3
    assert list(database.bulk_b.find()) == [{"_id": 2, "x": 12}]
    with pytest.raises(ClientBulkWriteException) as failed:
        mongo_client.bulk_write([InsertOne(namespace=a, document={"_id": 1}), InsertOne(namespace=a, document={})])
    errors = failed.value.write_errors
    assert [(e["idx"], e["code"]) for e in errors] == [(0, 11000)]  # ordered: stopped at the first error
    assert database.bulk_a.count_documents({}) == 1


def test_an_undefined_variable_is_an_error(database: Database) -> None:
    # mongod: "Use of undefined variable: <name>" (17276), never a silent non-match
    coll = database.coll_undefined_variable
    coll.insert_one({"_id": 1})
    with pytest.raises(OperationFailure) as on_find:
        list(coll.find({"$expr": {"$eq": ["$_id", "$$nope"]}}))
    assert on_find.value.code == 17276
    with pytest.raises(WriteError) as on_delete:
        coll.delete_one({"$expr": {"$eq": ["$_id", "$$nope"]}})
    assert on_delete.value.code == 17276
    assert coll.count_documents({}) == 1
    assert coll.count_documents({"x": "$$nope"}) == 0  # outside $expr it is a plain string


def test_expression_variables_of_map_filter_reduce_and_let_are_defined(database: Database) -> None:
    # $$this / `as` names / $let vars are the expressions' own variables, never "undefined" ($reduce's
    # $$value too, but mongomock has no $reduce: refused as an emulator limitation)
    coll = database.coll_local_variables
    coll.insert_one({"_id": 1, "a": [1, 2, 3]})
    expr = {
        "$and": [
            {"$eq": [{"$size": {"$filter": {"input": "$a", "cond": {"$gt": ["$$this", 1]}}}}, 2]},
            {"$eq": [{"$sum": {"$map": {"input": "$a", "as": "v", "in": {"$multiply": ["$$v", 2]}}}}, 12]},
            {"$eq": [{"$let": {"vars": {"k": 3}, "in": "$$k"}}, 3]},
        ]
    }
    assert [d["_id"] for d in coll.find({"$expr": expr})] == [1]
