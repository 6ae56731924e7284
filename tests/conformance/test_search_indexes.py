"""Conformance: search-index commands, lifecycle and definition validation.

Runs on the emulator and, unchanged, on a real server via ``LEAF_MONGO_TEST_URI`` (see helpers.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.operations import SearchIndexModel

from leaf_mongo.testing import MongoEmulator, wait_for_search_index
from tests.conformance.helpers import (
    TIMEOUT,
    expect_error,
    poll,
    vfield,
    vs,
)

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
    expect_error(
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
    expect_error(lambda: coll.create_search_index(model), fragment)


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
    poll(lambda: not list(coll.list_search_indexes("vi")))
    expect_error(lambda: coll.drop_search_index("nope"), "nope")


def test_dropping_collection_drops_its_search_indexes(database: Database) -> None:
    # Source: https://www.mongodb.com/docs/manual/reference/method/db.collection.drop/ ("drops ... any
    # indexes associated with the dropped collection", search indexes included on Atlas/mongot).
    coll = database.gone
    coll.create_search_index(SearchIndexModel({"fields": [vfield()]}, name="vi", type="vectorSearch"))
    coll.drop()
    database.create_collection("gone")
    poll(lambda: not list(coll.list_search_indexes()))
