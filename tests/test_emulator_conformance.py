"""One contract for the emulator and a real MongoDB 8.2 + mongot.

Runs against the session emulator by default and against a real deployment when
``LEAF_MONGO_TEST_URI`` is set, so nothing here may look inside the emulator:
every wait polls through the driver (mongot indexes asynchronously). Sources are
cited per test; "REF §n" is /work/shared/reference/mongodb-vector-search.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from bson.binary import Binary, BinaryVectorDtype
from pymongo import DeleteMany, InsertOne, ReplaceOne, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, CollectionInvalid, DuplicateKeyError, OperationFailure
from pymongo.operations import SearchIndexModel
from pymongo.write_concern import WriteConcern

from leaf_mongo.testing import MongoEmulator, wait_for_search_index, wait_until_searchable

TIMEOUT = 120.0  # generous for a real server; the emulator is ready in ~0.3 s

DOC_STAGE = "https://www.mongodb.com/docs/atlas/atlas-vector-search/vector-search-stage/"
DOC_TYPE = "https://www.mongodb.com/docs/atlas/atlas-vector-search/vector-search-type/"
DOC_QUANT = "https://www.mongodb.com/docs/atlas/atlas-vector-search/vector-quantization/"


def vfield(path: str = "v", dims: int = 3, similarity: str = "cosine", **extra: Any) -> dict[str, Any]:
    return {"type": "vector", "path": path, "numDimensions": dims, "similarity": similarity, **extra}


def f32(values: list[float]) -> Binary:
    return Binary.from_vector(values, BinaryVectorDtype.FLOAT32)


def i8(values: list[int]) -> Binary:
    return Binary.from_vector(values, BinaryVectorDtype.INT8)


def bits(values: list[int]) -> Binary:
    return Binary.from_vector(values, BinaryVectorDtype.PACKED_BIT)


def vs(index: str, query: Any, limit: int = 10, path: str = "v", **extra: Any) -> dict[str, Any]:
    stage: dict[str, Any] = {"index": index, "path": path, "queryVector": query, "limit": limit}
    if "numCandidates" not in extra and not extra.get("exact"):
        stage["numCandidates"] = max(100, limit)
    stage.update(extra)
    return {"$vectorSearch": stage}


def scored(coll: Collection, *stages: dict[str, Any]) -> list[dict[str, Any]]:
    return list(coll.aggregate([*stages, {"$project": {"_id": 1, "score": {"$meta": "vectorSearchScore"}}}]))


@pytest.fixture
def indexed(database: Database) -> Callable[..., Collection]:
    """Create a collection with docs + a vector index and wait until ``searchable`` docs are visible."""

    def make(
        docs: list[dict[str, Any]],
        fields: list[dict[str, Any]],
        *,
        probe: Any,
        searchable: int,
        name: str = "vi",
        coll_name: str = "docs",
    ) -> Collection:
        coll = database[coll_name]
        if docs:
            coll.insert_many(docs)
        else:
            database.create_collection(coll_name)
        coll.create_search_index(SearchIndexModel({"fields": fields}, name=name, type="vectorSearch"))
        wait_for_search_index(coll, name, TIMEOUT)
        wait_until_searchable(coll, name, fields[0]["path"], probe, searchable, TIMEOUT)
        return coll

    return make


def _expect_error(fn: Callable[[], Any], *fragments: str) -> OperationFailure:
    with pytest.raises(OperationFailure) as info:
        fn()
    msg = str(info.value)
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return info.value


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


def test_unacknowledged_writes_get_no_reply(database: Database) -> None:
    # Source: OP_MSG spec (moreToCome: the server must not reply to w:0 writes),
    # https://github.com/mongodb/specifications/blob/master/source/message/OP_MSG.md
    coll = database.get_collection("w0", write_concern=WriteConcern(w=0))
    for i in range(20):
        coll.insert_one({"_id": i})
    # The connection is still usable afterwards and every write landed.
    assert database.w0.count_documents({}) == 20


# --------------------------------------------------------------------------- search index lifecycle


def test_search_index_listing_and_lifecycle(database: Database) -> None:
    # Source: REF §5.1 (mongot IndexMapper.ExternalStatus PENDING/BUILDING/READY, `queryable`,
    # ListSearchIndexesResponseDefinition: id, name, status, latestDefinition).
    coll = database.life
    coll.insert_one({"v": [1.0, 0.0, 0.0]})
    definition = {"fields": [vfield()]}
    name = coll.create_search_index(SearchIndexModel(definition, name="vi", type="vectorSearch"))
    assert name == "vi"
    first = next(iter(coll.list_search_indexes("vi")))
    assert first["name"] == "vi" and first["id"]
    assert first["status"] in ("PENDING", "BUILDING", "READY")
    assert first["latestDefinition"]["fields"][0]["numDimensions"] == 3
    ready = wait_for_search_index(coll, "vi", TIMEOUT, require_ready=True)
    assert ready["status"] == "READY" and ready["queryable"] is True


def test_create_same_definition_is_a_no_op(database: Database) -> None:
    # Source: mongot aic/AicCreateSearchIndexesCommand.java ("Per spec, do not fail indexes with
    # same name and same definition").
    coll = database.same
    model = SearchIndexModel({"fields": [vfield()]}, name="vi", type="vectorSearch")
    coll.create_search_index(model)
    assert coll.create_search_index(model) == "vi"
    assert [ix["name"] for ix in coll.list_search_indexes()] == ["vi"]


def test_create_different_definition_errors(database: Database) -> None:
    # Source: mongot aic/AicCreateSearchIndexesCommand.java indexExistsWithDifferentDefinitionError.
    coll = database.diff
    coll.create_search_index(SearchIndexModel({"fields": [vfield()]}, name="vi", type="vectorSearch"))
    other = SearchIndexModel({"fields": [vfield(dims=4)]}, name="vi", type="vectorSearch")
    _expect_error(
        lambda: coll.create_search_index(other),
        "Index vi already exists with a different definition. Drop it first if needed.",
    )


INVALID_DEFINITIONS: list[tuple[str, dict[str, Any], str]] = [
    ("fields missing", {}, "fields"),
    ("no vector field", {"fields": [{"type": "filter", "path": "g"}]}, "vector"),
    ("numDimensions missing", {"fields": [{"type": "vector", "path": "v", "similarity": "cosine"}]}, "numDimensions"),
    ("numDimensions 0", {"fields": [vfield(dims=0)]}, "numDimensions"),
    ("numDimensions 8193", {"fields": [vfield(dims=8193)]}, "numDimensions"),
    ("similarity enum", {"fields": [vfield(similarity="manhattan")]}, "similarity"),
    ("quantization enum", {"fields": [vfield(quantization="int4")]}, "quantization"),
    ("maxEdges 15", {"fields": [vfield(hnswOptions={"maxEdges": 15})]}, "maxEdges"),
    ("maxEdges 65", {"fields": [vfield(hnswOptions={"maxEdges": 65})]}, "maxEdges"),
    ("numEdgeCandidates 99", {"fields": [vfield(hnswOptions={"numEdgeCandidates": 99})]}, "numEdgeCandidates"),
    ("numEdgeCandidates 3201", {"fields": [vfield(hnswOptions={"numEdgeCandidates": 3201})]}, "numEdgeCandidates"),
    ("binary needs dims % 8", {"fields": [vfield(dims=12, quantization="binary")]}, "multiple of 8"),
    ("filter extra property", {"fields": [vfield(), {"type": "filter", "path": "g", "x": 1}]}, "x"),
    ("top-level extra property", {"fields": [vfield()], "mappings": {}}, "mappings"),
]


@pytest.mark.parametrize(
    ("definition", "fragment"), [c[1:] for c in INVALID_DEFINITIONS], ids=[c[0] for c in INVALID_DEFINITIONS]
)
def test_invalid_definitions_are_rejected(database: Database, definition: dict[str, Any], fragment: str) -> None:
    # Source: REF §2 table; mongot VectorFieldSpecification.java (MAX_DIMENSIONS = 8192, hnsw ranges,
    # "must be a multiple of 8 for binary quantization"), schema vectorSearch/components/fields/
    # {vector,filter}.json (additionalProperties: false), DOC_TYPE.
    coll = database.invalid
    model = SearchIndexModel(definition, name="bad", type="vectorSearch")
    _expect_error(lambda: coll.create_search_index(model), fragment)


def test_boundary_definitions_are_accepted(database: Database) -> None:
    # Source: REF §2 table (numDimensions 1..8192, maxEdges 16..64, numEdgeCandidates 100..3200), DOC_TYPE.
    coll = database.bounds
    fields = [
        vfield("a", dims=1),
        vfield("b", dims=8192, quantization="scalar", hnswOptions={"maxEdges": 64, "numEdgeCandidates": 3200}),
        vfield("c", dims=16, similarity="euclidean", quantization="binary"),
        {"type": "filter", "path": "g"},
    ]
    assert coll.create_search_index(SearchIndexModel({"fields": fields}, name="ok", type="vectorSearch")) == "ok"


def test_update_search_index_keeps_it_queryable(indexed: Callable[..., Collection]) -> None:
    # Source: REF §5.1 ("During an update the staged rebuild makes status BUILDING while queryable
    # stays true"; wait on status == READY after updates).
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0], "g": 1}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    new_def = {"fields": [vfield(), {"type": "filter", "path": "g"}]}
    coll.update_search_index("vi", new_def)
    seen = wait_for_search_index(coll, "vi", TIMEOUT, require_ready=True)
    assert seen["queryable"] is True
    assert seen["latestDefinition"]["fields"][-1] == {"type": "filter", "path": "g"}
    assert len(coll.aggregate([vs("vi", [1.0, 0.0, 0.0], filter={"g": 1})]).to_list()) == 1


def test_update_status_while_rebuilding(indexed: Callable[..., Collection], mongo_emulator: Any) -> None:
    # Source: REF §5.1 (IndexMapper.calculateStatus: BUILDING with queryable true during an update).
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0]}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    coll.update_search_index("vi", {"fields": [vfield(similarity="euclidean")]})
    listing = next(iter(coll.list_search_indexes("vi")))
    assert listing["queryable"] is True
    if isinstance(mongo_emulator, MongoEmulator) and mongo_emulator.index_build_delay > 0:
        assert listing["status"] == "BUILDING"  # a real server may report the change late (REF §1.6)
    wait_for_search_index(coll, "vi", TIMEOUT, require_ready=True)


def test_drop_search_index(database: Database) -> None:
    # Source: REF §5.1 dropSearchIndex; mongot aic/AicDropSearchIndexCommand.java
    # ("No index with name %s exists in namespace %s.%s", INDEX_NOT_FOUND).
    coll = database.dropidx
    coll.create_search_index(SearchIndexModel({"fields": [vfield()]}, name="vi", type="vectorSearch"))
    coll.drop_search_index("vi")
    _poll(lambda: not list(coll.list_search_indexes("vi")))
    _expect_error(lambda: coll.drop_search_index("nope"), "nope")


def test_dropping_collection_drops_its_search_indexes(database: Database) -> None:
    # Source: https://www.mongodb.com/docs/manual/reference/method/db.collection.drop/ ("drops ... any
    # indexes associated with the dropped collection", search indexes included on Atlas/mongot).
    coll = database.gone
    coll.create_search_index(SearchIndexModel({"fields": [vfield()]}, name="vi", type="vectorSearch"))
    coll.drop()
    database.create_collection("gone")
    _poll(lambda: not list(coll.list_search_indexes()))


# --------------------------------------------------------------------------- $vectorSearch arguments


def test_vector_search_must_be_first_stage(database: Database) -> None:
    # Source: DOC_STAGE ("$vectorSearch must be the first stage of any pipeline where it appears").
    database.create_collection("first")
    _expect_error(
        lambda: database.first.aggregate([{"$match": {}}, vs("vi", [1.0, 0.0, 0.0])]),
        "$vectorSearch is only valid as the first stage in a pipeline",
    )


@pytest.mark.parametrize("missing", ["index", "path", "queryVector", "limit"])
def test_vector_search_required_fields(indexed: Callable[..., Collection], missing: str) -> None:
    # Source: DOC_STAGE fields table (index, path, queryVector, limit are required).
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0]}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    stage = vs("vi", [1.0, 0.0, 0.0])
    del stage["$vectorSearch"][missing]
    _expect_error(lambda: coll.aggregate([stage]), missing)


def test_num_candidates_rules(indexed: Callable[..., Collection]) -> None:
    # Source: REF §4 table; mongot VectorSearchCriteria.java (Range.of(1, 10_000)),
    # ApproximateVectorSearchCriteria.java, ExactVectorSearchCriteria.java; DOC_STAGE.
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0]}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    q = [1.0, 0.0, 0.0]
    no_candidates = {"$vectorSearch": {"index": "vi", "path": "v", "queryVector": q, "limit": 1}}
    _expect_error(lambda: coll.aggregate([no_candidates]), "numCandidates")
    _expect_error(lambda: coll.aggregate([vs("vi", q, limit=1, numCandidates=0)]), "numCandidates")
    _expect_error(lambda: coll.aggregate([vs("vi", q, limit=1, numCandidates=10_001)]), "numCandidates")
    _expect_error(
        lambda: coll.aggregate([vs("vi", q, limit=5, numCandidates=4)]),
        "limit should be less than or equal to numCandidates",
    )
    _expect_error(
        lambda: coll.aggregate([vs("vi", q, limit=1, numCandidates=10, exact=True)]),
        '"numCandidates" must be omitted when "exact" is set to true',
    )
    assert len(coll.aggregate([vs("vi", q, limit=1, exact=True)]).to_list()) == 1
    assert len(coll.aggregate([vs("vi", q, limit=1, numCandidates=10_000)]).to_list()) == 1


def test_unknown_index_returns_empty(indexed: Callable[..., Collection]) -> None:
    # Source: mongot server/command/search/VectorSearchCommand.java ("the index does not exist,
    # respond with empty information"); DOC_STAGE ("doesn't return results if you misspell the index").
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0]}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    assert coll.aggregate([vs("no_such_index", [1.0, 0.0, 0.0])]).to_list() == []


def test_index_not_yet_queryable(database: Database, mongo_emulator: Any) -> None:
    # Source: mongot index/lucene/LuceneVectorIndex.java ("cannot query vector index %s while in
    # state INITIAL_SYNC|NOT_STARTED|FAILED").
    coll = database.notyet
    coll.insert_one({"v": [1.0, 0.0, 0.0]})
    coll.create_search_index(SearchIndexModel({"fields": [vfield()]}, name="vi", type="vectorSearch"))
    try:
        result = coll.aggregate([vs("vi", [1.0, 0.0, 0.0])]).to_list()
    except OperationFailure as exc:
        assert "cannot query vector index vi while in state" in str(exc)
    else:
        # A real mongot may not know the index yet (=> empty) or may already have built it.
        emulator_building = isinstance(mongo_emulator, MongoEmulator) and mongo_emulator.index_build_delay > 0
        assert not emulator_building, f"expected an error while building, got {result}"


def test_path_not_indexed_as_vector(indexed: Callable[..., Collection]) -> None:
    # Source: mongot index/query/VectorQueryTimeMappingChecks.java ("%s is not indexed as vector").
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0]}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    _expect_error(lambda: coll.aggregate([vs("vi", [1.0, 0.0, 0.0], path="w")]), "w is not indexed as vector")


def test_query_dimension_mismatch(indexed: Callable[..., Collection]) -> None:
    # Source: mongot VectorQueryTimeMappingChecks.java ("vector field is indexed with %s dimensions
    # but queried with %s"); REF §7.9.
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0]}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    _expect_error(
        lambda: coll.aggregate([vs("vi", [1.0, 0.0])]),
        "vector field is indexed with 3 dimensions but queried with 2",
    )


def test_query_vector_must_be_finite(indexed: Callable[..., Collection]) -> None:
    # Source: mongot VectorSearchCriteria.checkBasicFields ("'queryVector' contains a non-finite value").
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0]}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    _expect_error(lambda: coll.aggregate([vs("vi", [1.0, math.nan, 0.0])]), "non-finite")


def test_cosine_zero_query_vector(indexed: Callable[..., Collection]) -> None:
    # Source: REF §4 ("cosine + zero query vector -> Cosine similarity cannot be calculated against a
    # zero vector.").
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0]}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    _expect_error(lambda: coll.aggregate([vs("vi", [0.0, 0.0, 0.0])]), "zero vector")


# --------------------------------------------------------------------------- filters


FILTER_DOCS = [
    {"_id": i, "v": [1.0, float(i), 0.0], "g": "ab"[i % 2], "n": i, "t": [f"t{i % 3}"]} for i in range(1, 9)
] + [{"_id": 9, "v": [1.0, 9.0, 0.0]}]
FILTER_FIELDS = [
    vfield(),
    {"type": "filter", "path": "g"},
    {"type": "filter", "path": "n"},
    {"type": "filter", "path": "t"},
]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"g": "a"}, {2, 4, 6, 8}),
        ({"g": {"$eq": "b"}}, {1, 3, 5, 7}),
        ({"g": {"$ne": "a"}}, {1, 3, 5, 7, 9}),
        ({"n": {"$gt": 6}}, {7, 8}),
        ({"n": {"$gte": 6, "$lt": 8}}, {6, 7}),
        ({"n": {"$lte": 2}}, {1, 2}),
        ({"n": {"$in": [1, 5, 42]}}, {1, 5}),
        ({"n": {"$nin": [1, 2, 3, 4, 5, 6, 7]}}, {8, 9}),
        ({"g": {"$exists": False}}, {9}),
        ({"n": {"$not": {"$gt": 2}}}, {1, 2, 9}),
        ({"$nor": [{"g": "a"}, {"n": 1}]}, {3, 5, 7, 9}),
        ({"$and": [{"g": "a"}, {"n": {"$gt": 4}}]}, {6, 8}),
        ({"$or": [{"n": 1}, {"t": "t2"}]}, {1, 2, 5, 8}),
    ],
)
def test_filter_supported_operators(
    indexed: Callable[..., Collection], flt: dict[str, Any], expected: set[int]
) -> None:
    # Source: DOC_STAGE filter operators ($eq $ne $gt $lt $gte $lte $in $nin $exists $not $nor $and
    # $or, short-form $eq) and mongot index/query/operators/mql/*Operator.java.
    coll = indexed(FILTER_DOCS, FILTER_FIELDS, probe=[1.0, 0.0, 0.0], searchable=9)
    got = {d["_id"] for d in coll.aggregate([vs("vi", [1.0, 1.0, 0.0], filter=flt)])}
    assert got == expected


def test_filter_path_must_be_declared(indexed: Callable[..., Collection]) -> None:
    # Source: mongot index/lucene/query/EqualsQueryFactory.java ("Path '%s' needs to be indexed as
    # token"); REF §4, §7.3.
    coll = indexed(
        [{"_id": 1, "v": [1.0, 0.0, 0.0], "g": "a", "h": "a"}],
        [vfield(), {"type": "filter", "path": "g"}],
        probe=[1.0, 0.0, 0.0],
        searchable=1,
    )
    _expect_error(
        lambda: coll.aggregate([vs("vi", [1.0, 0.0, 0.0], filter={"h": "a"})]), "Path 'h' needs to be indexed as"
    )


@pytest.mark.parametrize("flt", [{"g": {"$regex": "^a"}}, {"$expr": {"$eq": ["$g", "a"]}}, {"g": {"$size": 1}}])
def test_filter_unsupported_operator(indexed: Callable[..., Collection], flt: dict[str, Any]) -> None:
    # Source: DOC_STAGE ("$vectorSearch filter supports only" the listed MQL operators).
    coll = indexed(
        [{"_id": 1, "v": [1.0, 0.0, 0.0], "g": "a"}],
        [vfield(), {"type": "filter", "path": "g"}],
        probe=[1.0, 0.0, 0.0],
        searchable=1,
    )
    with pytest.raises(OperationFailure):
        coll.aggregate([vs("vi", [1.0, 0.0, 0.0], filter=flt)]).to_list()


# --------------------------------------------------------------------------- dtypes and skipping


def test_query_dtype_selects_stored_vectors(indexed: Callable[..., Collection]) -> None:
    # Source: mongot VectorSearchQueryFactory.getLuceneFieldName (FLOAT/BYTE/BIT fields); DOC_STAGE
    # ("If you use any other subtype (int8 or int1), [AVS] doesn't return any results or errors"); REF §3.
    docs = [
        {"_id": "float_array", "v": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]},
        {"_id": "float_bin", "v": f32([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5])},
        {"_id": "int8", "v": i8([1, 0, 0, 0, 0, 0, 0, 3])},
        {"_id": "bits", "v": bits([0b10000001])},
    ]
    coll = indexed(
        docs, [vfield(dims=8, similarity="euclidean")], probe=[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], searchable=2
    )
    ids = lambda q: {d["_id"] for d in coll.aggregate([vs("vi", q, exact=True)])}  # noqa: E731
    assert ids([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]) == {"float_array", "float_bin"}
    assert ids(f32([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])) == {"float_array", "float_bin"}
    assert ids(i8([1, 0, 0, 0, 0, 0, 0, 1])) == {"int8"}
    assert ids(bits([0b10000001])) == {"bits"}


def test_bit_query_requires_euclidean(indexed: Callable[..., Collection]) -> None:
    # Source: mongot index/lucene/query/VectorSearchQueryFactory.java ("Binary vectors can only be
    # used with fields indexed with Euclidean similarity but indexed similarity is ..."); REF §2.1.
    coll = indexed(
        [{"_id": 1, "v": [1.0] * 8}], [vfield(dims=8, similarity="dotProduct")], probe=[1.0] * 8, searchable=1
    )
    _expect_error(
        lambda: coll.aggregate([vs("vi", bits([255]), exact=True)]),
        "Binary vectors can only be used with fields indexed with Euclidean similarity",
    )


def test_unindexable_documents_are_skipped(indexed: Callable[..., Collection]) -> None:
    # Source: mongot index/lucene/document/single/IndexableFieldFactory.java l.510-580 (dimension
    # mismatch, cosine zero vector, BYTE with quantization, bit with non-euclidean: "skipping");
    # DOC_QUANT ("silently ignores that vector"); REF §2.1.
    docs = [
        {"_id": "ok", "v": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], "w": [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]},
        {"_id": "short", "v": [1.0, 0.0, 0.0], "w": bits([1])},
        {"_id": "zero", "v": [0.0] * 8, "w": i8([1, 2, 3, 4, 5, 6, 7, 8])},
        {"_id": "int8", "v": i8([1, 0, 0, 0, 0, 0, 0, 1])},
        {"_id": "text", "v": "not a vector"},
    ]
    fields = [vfield(dims=8), vfield("w", dims=8, similarity="dotProduct", quantization="scalar")]
    coll = indexed(docs, fields, probe=[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], searchable=1)
    q = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert [d["_id"] for d in coll.aggregate([vs("vi", q, exact=True)])] == ["ok"]
    # cosine index still serves int8 docs to an int8 query (quantization none) ...
    assert [d["_id"] for d in coll.aggregate([vs("vi", i8([1, 0, 0, 0, 0, 0, 0, 1]), exact=True)])] == ["int8"]
    # ... but an int8 doc under scalar quantization is skipped; bit docs under dotProduct too.
    assert coll.aggregate([vs("vi", i8([1] * 8), path="w", exact=True)]).to_list() == []
    assert [d["_id"] for d in coll.aggregate([vs("vi", q, path="w", exact=True)])] == ["ok"]


# --------------------------------------------------------------------------- scores


def _float_expected(similarity: str, a: np.ndarray, b: np.ndarray) -> float:
    if similarity == "cosine":
        return float((1 + a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) / 2)
    if similarity == "dotProduct":
        return float((1 + a @ b) / 2)
    return float(1 / (1 + np.sum((a - b) ** 2)))


@pytest.mark.parametrize("similarity", ["cosine", "dotProduct", "euclidean"])
def test_float_scores(indexed: Callable[..., Collection], similarity: str) -> None:
    # Source: DOC_STAGE score normalization: cosine (1+cos)/2, dotProduct (1+dot)/2, euclidean
    # 1/(1+d); Lucene VectorSimilarityFunction EUCLIDEAN uses the squared distance (REF §4).
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((12, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    docs = [{"_id": i, "v": f32(vecs[i].tolist())} for i in range(12)]
    coll = indexed(docs, [vfield(dims=16, similarity=similarity)], probe=vecs[0].tolist(), searchable=12)
    q = vecs[0]
    got = scored(coll, vs("vi", q.tolist(), limit=12, exact=True))
    expected = sorted(((i, _float_expected(similarity, vecs[i], q)) for i in range(12)), key=lambda p: -p[1])
    assert [d["_id"] for d in got] == [i for i, _ in expected]
    for doc, (_, score) in zip(got, expected, strict=True):
        assert doc["score"] == pytest.approx(score, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("similarity", ["cosine", "dotProduct", "euclidean"])
def test_int8_scores(indexed: Callable[..., Collection], similarity: str) -> None:
    # Source: mongot index/lucene/vector/Lucene99NativeMemorySegmentVectorScorer.java: int8 cosine
    # (1+cos)/2, DOT_PRODUCT 0.5 + dot/(dim * 2^15), EUCLIDEAN 1/(1+squared L2) (REF §4).
    rng = np.random.default_rng(3)
    vecs = rng.integers(-128, 128, size=(10, 24)).astype(np.int64)
    docs = [{"_id": i, "v": i8(vecs[i].tolist())} for i in range(10)]
    q = vecs[0]
    coll = indexed(docs, [vfield(dims=24, similarity=similarity)], probe=i8(q.tolist()), searchable=10)
    got = {d["_id"]: d["score"] for d in scored(coll, vs("vi", i8(q.tolist()), limit=10, exact=True))}
    for i in range(10):
        a = vecs[i]
        if similarity == "cosine":
            want = (1 + a @ q / (np.linalg.norm(a) * np.linalg.norm(q))) / 2
        elif similarity == "dotProduct":
            want = 0.5 + (a @ q) / (24 * 2**15)
        else:
            want = 1 / (1 + np.sum((a - q) ** 2))
        assert got[i] == pytest.approx(float(want), rel=1e-5)


def test_bit_scores(indexed: Callable[..., Collection]) -> None:
    # Source: mongot index/lucene/util/VectorSearchUtil.java: bit score = (dim - hamming) / dim (REF §4).
    rng = np.random.default_rng(5)
    packed = rng.integers(0, 256, size=(10, 4))
    docs = [{"_id": i, "v": bits(packed[i].tolist())} for i in range(10)]
    coll = indexed(docs, [vfield(dims=32, similarity="euclidean")], probe=bits(packed[0].tolist()), searchable=10)
    q = packed[0]
    got = scored(coll, vs("vi", bits(q.tolist()), limit=10, exact=True))
    for doc in got:
        ham = sum(bin(int(x) ^ int(y)).count("1") for x, y in zip(packed[doc["_id"]], q, strict=True))
        assert doc["score"] == pytest.approx((32 - ham) / 32)
    assert [d["score"] for d in got] == sorted((d["score"] for d in got), reverse=True)


def test_results_sorted_by_score_and_limited(indexed: Callable[..., Collection]) -> None:
    # Source: DOC_STAGE ("limit: number of documents to return"; results ordered by score).
    docs = [{"_id": i, "v": [1.0, float(i), 0.0]} for i in range(20)]
    coll = indexed(docs, [vfield()], probe=[1.0, 0.0, 0.0], searchable=20)
    got = scored(coll, vs("vi", [1.0, 0.0, 0.0], limit=5, numCandidates=50))
    assert [d["_id"] for d in got] == [0, 1, 2, 3, 4]
    assert all(a["score"] >= b["score"] for a, b in zip(got, got[1:], strict=False))


def test_score_meta_in_later_stages(indexed: Callable[..., Collection]) -> None:
    # Source: DOC_STAGE ("{"$meta": "vectorSearchScore"}" in $project and later stages; threshold with
    # a $match on the projected score, REF §4 forum answer).
    docs = [{"_id": i, "v": [1.0, float(i), 0.0], "text": f"t{i}"} for i in range(6)]
    coll = indexed(docs, [vfield()], probe=[1.0, 0.0, 0.0], searchable=6)
    q = [1.0, 0.0, 0.0]
    projected = coll.aggregate([vs("vi", q), {"$project": {"v": 0, "s": {"$meta": "vectorSearchScore"}}}]).to_list()
    assert set(projected[0]) == {"_id", "text", "s"}
    set_stage = coll.aggregate(
        [vs("vi", q), {"$set": {"s": {"$meta": "vectorSearchScore"}}}, {"$match": {"s": {"$gte": 0.8}}}]
    ).to_list()
    assert [d["_id"] for d in set_stage] == [0, 1]
    added = coll.aggregate(
        [vs("vi", q, limit=2), {"$addFields": {"s": {"$meta": "vectorSearchScore"}}}, {"$unset": "v"}]
    ).to_list()
    assert [set(d) for d in added] == [{"_id", "text", "s"}] * 2
    assert added[0]["s"] == pytest.approx(1.0)


def test_writes_are_reflected_in_search(indexed: Callable[..., Collection]) -> None:
    # Source: DOC_TYPE considerations-self-managed ("index is eventually consistent via change
    # streams"): inserts, updates, replacements and deletes all reach the vector index.
    docs = [{"_id": i, "v": [1.0, float(i), 0.0]} for i in range(5)]
    coll = indexed(docs, [vfield()], probe=[1.0, 0.0, 0.0], searchable=5)
    q = [0.0, 0.0, 1.0]
    coll.update_one({"_id": 3}, {"$set": {"v": [0.0, 0.0, 1.0]}})
    coll.replace_one({"_id": 4}, {"v": [0.0, 0.1, 1.0]})
    coll.delete_one({"_id": 0})
    coll.insert_one({"_id": 5, "v": [0.0, 0.2, 1.0]})
    wait_until_searchable(coll, "vi", "v", q, 5, TIMEOUT)
    _poll(lambda: [d["_id"] for d in coll.aggregate([vs("vi", q, limit=3, exact=True)])] == [3, 4, 5])


def _poll(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
