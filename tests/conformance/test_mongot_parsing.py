"""Conformance: what mongot's parsers accept and refuse ($vectorSearch arguments, filters, index definitions).

Runs on the emulator and, unchanged, on a real server via ``LEAF_MONGO_TEST_URI`` (see helpers.py).
"MT" = github.com/mongodb/mongot ``src/main/java/com/xgen/mongot/``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from bson import ObjectId
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure
from pymongo.operations import SearchIndexModel

from leaf_mongo.testing import MongoEmulator, wait_for_search_index, wait_until_searchable
from tests.conformance.helpers import TIMEOUT, expect_error, vfield, vs

DOCS = [
    {"_id": 1, "v": [1.0, 0.0, 0.0], "text": "one", "meta": {"a": 1, "b": 2}, "n": 1},
    {"_id": 2, "v": [0.0, 1.0, 0.0], "text": "two", "meta": {"a": 3, "b": 4}, "n": 2},
]


def _index(database: Database, definition: dict[str, Any], name: str = "vi") -> Collection:
    coll = database.docs
    if "docs" not in database.list_collection_names():
        coll.insert_many(DOCS)
    coll.create_search_index(SearchIndexModel(definition, name=name, type="vectorSearch"))
    wait_for_search_index(coll, name, TIMEOUT)
    wait_until_searchable(coll, name, "v", [1.0, 0.0, 0.0], len(DOCS), TIMEOUT)
    return coll


# --------------------------------------------------------------------------- $vectorSearch arguments


def test_unknown_vector_search_fields_are_ignored(indexed: Callable[..., Collection]) -> None:
    # Source: MT server/command/search/VectorSearchCommand.java (BsonDocumentParser...allowUnknownFields(true));
    # REF §9 (mongod passes the stage's arguments through, document_source_vector_search_test.cpp).
    coll = indexed(DOCS, [vfield()], probe=[1.0, 0.0, 0.0], searchable=2)
    got = coll.aggregate([vs("vi", [1.0, 0.0, 0.0], limit=1, returnStoredSource=False, someFutureOption=1)])
    assert [d["_id"] for d in got] == [1]


def test_empty_index_name_is_an_error(indexed: Callable[..., Collection]) -> None:
    # Source: MT index/query/VectorSearchQuery.java (Field "index" stringField().mustNotBeEmpty()).
    coll = indexed(DOCS, [vfield()], probe=[1.0, 0.0, 0.0], searchable=2)
    expect_error(lambda: coll.aggregate([vs("", [1.0, 0.0, 0.0])]).to_list(), "index")


def test_return_stored_source_needs_stored_source(indexed: Callable[..., Collection]) -> None:
    # Source: MT server/command/search/VectorSearchCommand.java checkSupportForVectorStoredSource
    # ("storedSource is not configured for this index." when storedSource is false, the default).
    coll = indexed(DOCS, [vfield()], probe=[1.0, 0.0, 0.0], searchable=2)
    expect_error(
        lambda: coll.aggregate([vs("vi", [1.0, 0.0, 0.0], returnStoredSource=True)]).to_list(),
        "storedSource is not configured for this index",
    )


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ({"include": ["text", "meta.a"]}, {"_id": 1, "text": "one", "meta": {"a": 1}}),
        ({"exclude": ["v", "meta.b", "n"]}, {"_id": 1, "text": "one", "meta": {"a": 1}}),
    ],
)
def test_return_stored_source_returns_the_stored_fields(
    database: Database, stored: dict[str, Any], expected: dict[str, Any]
) -> None:
    # Source: MT index/definition/StoredSourceDefinition.java (include/exclude paths, _id implicitly
    # included); VectorSearchQuery.returnStoredSource (documents come from mongot's stored source).
    coll = _index(database, {"fields": [vfield()], "storedSource": stored})
    got = coll.aggregate([vs("vi", [1.0, 0.0, 0.0], limit=1, returnStoredSource=True)]).to_list()
    assert got == [expected]
    # Without returnStoredSource the full document comes back.
    assert coll.aggregate([vs("vi", [1.0, 0.0, 0.0], limit=1)]).to_list() == [DOCS[0]]


# --------------------------------------------------------------------------- index definition options

BAD_STORED_SOURCE: list[tuple[str, Any, str]] = [
    ("true for vector", True, "storedSource"),
    ("include and exclude", {"include": ["a"], "exclude": ["b"]}, "only one of"),
    ("neither", {}, "must be present"),
    ("empty include", {"include": []}, "storedSource"),
    ("blank path", {"include": [" "]}, "storedSource"),
    ("path collision", {"include": ["meta", "meta.a"]}, "path collision"),
    ("wrong type", "text", "storedSource"),
]


@pytest.mark.parametrize(
    ("stored", "fragment"), [c[1:] for c in BAD_STORED_SOURCE], ids=[c[0] for c in BAD_STORED_SOURCE]
)
def test_invalid_stored_source_is_refused(database: Database, stored: Any, fragment: str) -> None:
    # Source: MT index/definition/StoredSourceDefinition.java (boolean or document, exactlyOneOf(include,
    # exclude), non-empty lists of non-blank strings, "path collision is not allowed") and
    # index/definition/VectorIndexDefinition.java ("storedSource: true is not supported for vector indexes").
    model = SearchIndexModel({"fields": [vfield()], "storedSource": stored}, name="bad", type="vectorSearch")
    expect_error(lambda: database.stored.create_search_index(model), fragment)


@pytest.mark.parametrize("stored", [False, {"include": ["text"]}, {"exclude": ["meta.b"]}])
def test_valid_stored_source_is_accepted(database: Database, stored: Any) -> None:
    # Source: MT index/definition/StoredSourceDefinition.java; DOC_TYPE (storedSource field).
    model = SearchIndexModel({"fields": [vfield()], "storedSource": stored}, name="ok", type="vectorSearch")
    assert database.stored.create_search_index(model) == "ok"


@pytest.mark.parametrize("partitions", [1, 2, 4, 8, 16, 32, 64])
def test_num_partitions_accepted(database: Database, partitions: int) -> None:
    # Source: MT server/command/management/definition/common/UserIndexDefinition.java (NUM_PARTITIONS).
    model = SearchIndexModel({"fields": [vfield()], "numPartitions": partitions}, name="p", type="vectorSearch")
    assert database.parts.create_search_index(model) == "p"


@pytest.mark.parametrize("partitions", [0, 3, 128])
def test_num_partitions_refused(database: Database, partitions: int) -> None:
    # Source: MT UserIndexDefinition.java ("numPartitions %d must be of 1, 2, 4, 8, 16, 32, or 64.").
    model = SearchIndexModel({"fields": [vfield()], "numPartitions": partitions}, name="p", type="vectorSearch")
    expect_error(lambda: database.parts.create_search_index(model), "numPartitions")


def test_update_search_index_with_id_and_name_is_refused(database: Database) -> None:
    # Source: MT server/command/management/definition/UpdateSearchIndexCommandDefinition.java ("Update
    # commands must have the index's id or name, but not both": exactlyOneOf(ID, NAME)).
    coll = database.upd
    coll.create_search_index(SearchIndexModel({"fields": [vfield()]}, name="vi", type="vectorSearch"))
    index_id = next(iter(coll.list_search_indexes("vi")))["id"]
    cmd = {"updateSearchIndex": "upd", "id": index_id, "name": "vi", "definition": {"fields": [vfield(dims=4)]}}
    with pytest.raises(OperationFailure):
        database.command(cmd)


def test_nested_root_is_served_or_refused_as_a_limitation(database: Database, mongo_emulator: Any) -> None:
    # Source: MT server/command/management/definition/common/UserVectorIndexDefinition.java (nestedRoot) and
    # index/query/operators/VectorSearchFilter.java (parentFilter). The emulator does not index array
    # elements under a nestedRoot, so it must refuse the definition instead of accepting it and returning
    # nothing (leaf_mongo/testing/README.md).
    definition = {"nestedRoot": "chunks", "fields": [vfield("chunks.v")]}
    model = SearchIndexModel(definition, name="nested", type="vectorSearch")
    try:
        database.nested.create_search_index(model)
    except OperationFailure as exc:
        assert isinstance(mongo_emulator, MongoEmulator), f"a real server refused nestedRoot: {exc}"
        assert "emulator limitation" in str(exc)
    else:
        assert not isinstance(mongo_emulator, MongoEmulator), "the emulator accepted a nestedRoot it cannot serve"


# --------------------------------------------------------------------------- filter values

FILTER_FIELDS = [vfield(), {"type": "filter", "path": "text"}, {"type": "filter", "path": "n"}]
BAD_FILTERS: list[tuple[str, dict[str, Any]]] = [
    ("embedded document value", {"text": {"a": 1}}),
    ("array value", {"text": ["one", "two"]}),
    ("$eq document", {"text": {"$eq": {"a": 1}}}),
    ("$in empty", {"n": {"$in": []}}),
    ("$in mixed types", {"n": {"$in": [1, "two"]}}),
    ("$in null", {"n": {"$in": [None, 1]}}),
    ("$nin not a list", {"n": {"$nin": 1}}),
    ("$gt null", {"n": {"$gt": None}}),
    ("$lt array", {"n": {"$lt": [1, 2]}}),
    ("$exists not boolean", {"n": {"$exists": 1}}),
    ("operator with a plain key", {"n": {"$gt": 1, "x": 2}}),
]


@pytest.mark.parametrize("flt", [c[1] for c in BAD_FILTERS], ids=[c[0] for c in BAD_FILTERS])
def test_filter_values_mongot_refuses(indexed: Callable[..., Collection], flt: dict[str, Any]) -> None:
    # Source: MT index/query/operators/value/Value.java (boolean, objectId, number, string, date, uuid or
    # null), mql/InOperator.java + NinOperator.java (non-empty, non-null, one type), mql/
    # OpenRangeBoundComparisonOperator.java + points/Point.java (scalar bounds), mql/ExistsOperator.java,
    # mql/SimpleClause.java (short-form $eq; operators document disallows unknown fields).
    coll = indexed(DOCS, FILTER_FIELDS, probe=[1.0, 0.0, 0.0], searchable=2)
    with pytest.raises(OperationFailure):
        coll.aggregate([vs("vi", [1.0, 0.0, 0.0], filter=flt)]).to_list()


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"n": {"$in": [1, 2.5]}}, {1}),  # ints and doubles are one type: number
        ({"text": None}, set()),
        ({"text": {"$ne": None}}, {1, 2}),
        ({"n": {"$lte": 2.0, "$gt": 1}}, {2}),
        ({"text": {"$in": ["two", "zzz"]}}, {2}),
    ],
)
def test_filter_values_mongot_accepts(
    indexed: Callable[..., Collection], flt: dict[str, Any], expected: set[int]
) -> None:
    # Source: MT index/query/operators/value/Value.java (INT32/INT64/DOUBLE -> one NUMBER type, NULL allowed
    # for $eq/$ne), mql/InOperator.java.
    coll = indexed(DOCS, FILTER_FIELDS, probe=[1.0, 0.0, 0.0], searchable=2)
    assert {d["_id"] for d in coll.aggregate([vs("vi", [1.0, 0.0, 0.0], filter=flt)])} == expected


def test_filter_accepts_dates_and_object_ids(indexed: Callable[..., Collection]) -> None:
    # Source: MT index/query/operators/value/Value.java (DATE_TIME, OBJECT_ID values).
    oid = ObjectId()
    when = dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)
    docs = [{"_id": 1, "v": [1.0, 0.0, 0.0], "o": oid, "d": when}, {"_id": 2, "v": [0.0, 1.0, 0.0], "d": when}]
    fields = [vfield(), {"type": "filter", "path": "o"}, {"type": "filter", "path": "d"}]
    coll = indexed(docs, fields, probe=[1.0, 0.0, 0.0], searchable=2)
    assert {d["_id"] for d in coll.aggregate([vs("vi", [1.0, 0.0, 0.0], filter={"o": oid})])} == {1}
    later = {"d": {"$gte": when - dt.timedelta(days=1)}}
    assert {d["_id"] for d in coll.aggregate([vs("vi", [1.0, 0.0, 0.0], filter=later)])} == {1, 2}
