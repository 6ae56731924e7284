"""Conformance: pipeline stages beyond the first ($lookup, $unionWith), explain, metadata, views.

Runs on the emulator and, unchanged, on a real server via ``LEAF_MONGO_TEST_URI`` (see helpers.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure

from leaf_mongo.testing import MongoEmulator
from tests.conformance.helpers import expect_error, vfield, vs

LOOKUP = "https://www.mongodb.com/docs/manual/reference/operator/aggregation/lookup/"
UNION = "https://www.mongodb.com/docs/manual/reference/operator/aggregation/unionWith/"

PARENTS = [{"_id": "p1", "title": "one"}, {"_id": "p2", "title": "two"}]
CHILDREN = [
    {"_id": "c1", "parent": "p1", "v": [1.0, 0.0, 0.0]},
    {"_id": "c2", "parent": "p1", "v": [0.9, 0.1, 0.0]},
    {"_id": "c3", "parent": "p2", "v": [0.0, 1.0, 0.0]},
    {"_id": "c4", "parent": "nobody", "v": [0.0, 0.0, 1.0]},
]


def test_lookup_equality_with_pipeline(database: Database) -> None:
    # Source: LOOKUP "Correlated Subqueries Using Concise Syntax" (MongoDB 5.0+: localField/foreignField
    # together with pipeline; the pipeline runs on the equality-matched documents). langchain-mongodb's
    # ParentDocumentRetriever builds this stage.
    database.parents.insert_many([*PARENTS, {"_id": "p3", "title": "three", "hidden": True}])
    database.children.insert_many(CHILDREN)
    out = database.children.aggregate(
        [
            {"$sort": {"_id": 1}},
            {
                "$lookup": {
                    "from": "parents",
                    "localField": "parent",
                    "foreignField": "_id",
                    "as": "p",
                    "pipeline": [{"$match": {"hidden": {"$exists": False}}}, {"$project": {"title": 1}}],
                }
            },
            {"$project": {"p": 1}},
        ]
    ).to_list()
    assert [(d["_id"], d["p"]) for d in out] == [
        ("c1", [{"_id": "p1", "title": "one"}]),
        ("c2", [{"_id": "p1", "title": "one"}]),
        ("c3", [{"_id": "p2", "title": "two"}]),
        ("c4", []),
    ]


def test_lookup_pipeline_with_let(database: Database) -> None:
    # Source: LOOKUP "Join Conditions and Subqueries on a Joined Collection" (let variables as $$name in
    # a $match $expr of the sub-pipeline).
    database.parents.insert_many(PARENTS)
    database.children.insert_many(CHILDREN)
    out = database.parents.aggregate(
        [
            {"$sort": {"_id": 1}},
            {
                "$lookup": {
                    "from": "children",
                    "let": {"pid": "$_id"},
                    "pipeline": [{"$match": {"$expr": {"$eq": ["$parent", "$$pid"]}}}, {"$sort": {"_id": -1}}],
                    "as": "kids",
                }
            },
        ]
    ).to_list()
    assert [[k["_id"] for k in d["kids"]] for d in out] == [["c2", "c1"], ["c3"]]


def test_lookup_array_local_field_matches_elements(database: Database) -> None:
    # Source: LOOKUP "Use $lookup with an Array" (an array localField matches any of its elements).
    database.parents.insert_many(PARENTS)
    database.groups.insert_one({"_id": 1, "members": ["p2", "p1", "zzz"]})
    out = database.groups.aggregate(
        [{"$lookup": {"from": "parents", "localField": "members", "foreignField": "_id", "as": "m"}}]
    ).to_list()
    assert sorted(m["_id"] for m in out[0]["m"]) == ["p1", "p2"]


def test_lookup_local_path_looks_through_arrays_of_documents_not_arrays_of_arrays(database: Database) -> None:
    # Source: mongod src/mongo/db/pipeline/document_path_support.cpp (visitAllValuesAtPath, which $lookup uses
    # for localField): arrays on the path are searched for sub-documents, but "we do not expand arrays within
    # arrays ... {a: [[{b: 1}]]} has no values on the path "a.b"". No local value matches a null/missing
    # foreign field, and every parent has an _id.
    database.parents.insert_many(PARENTS)
    database.groups.insert_many([{"_id": 1, "refs": [{"p": "p1"}, {"p": "p2"}]}, {"_id": 2, "refs": [[{"p": "p1"}]]}])
    out = database.groups.aggregate(
        [
            {"$lookup": {"from": "parents", "localField": "refs.p", "foreignField": "_id", "as": "m"}},
            {"$sort": {"_id": 1}},
        ]
    ).to_list()
    assert [sorted(m["_id"] for m in d["m"]) for d in out] == [["p1", "p2"], []]


def test_vector_search_is_refused_inside_lookup(database: Database) -> None:
    # Source: DOC_STAGE ("You can't use $vectorSearch ... in a $lookup sub-pipeline"; REF §4, §9).
    database.parents.insert_many(PARENTS)
    database.create_collection("children")
    with pytest.raises(OperationFailure):
        database.parents.aggregate(
            [{"$lookup": {"from": "children", "pipeline": [vs("vi", [1.0, 0.0, 0.0])], "as": "x"}}]
        ).to_list()


def test_search_stages_are_refused_inside_facet(database: Database) -> None:
    # Source: DOC_STAGE ("You can't use $vectorSearch ... in $facet"; REF §4 line "not allowed in ... $facet");
    # https://www.mongodb.com/docs/atlas/atlas-search/aggregation-stages/search/ ($search cannot be used in
    # $facet); mongod DocumentSourceFacet refuses such stages with code 40600.
    database.parents.insert_many(PARENTS)
    text = {"$search": {"index": "default", "text": {"query": "x", "path": "title"}}}
    for stage in (vs("vi", [1.0, 0.0, 0.0]), text):
        with pytest.raises(OperationFailure) as err:
            database.parents.aggregate([{"$facet": {"x": [stage]}}]).to_list()
        assert err.value.code == 40600 and "$facet" in str(err.value)
    assert database.parents.aggregate([{"$facet": {"n": [{"$count": "n"}]}}]).to_list() == [{"n": [{"n": 2}]}]


def test_union_with_collection_and_pipeline(database: Database) -> None:
    # Source: UNION (string form = whole collection; {coll, pipeline} form; order: input first).
    database.parents.insert_many(PARENTS)
    database.children.insert_many(CHILDREN)
    plain = database.parents.aggregate([{"$sort": {"_id": 1}}, {"$unionWith": "children"}]).to_list()
    assert [d["_id"] for d in plain][:2] == ["p1", "p2"] and len(plain) == 6
    piped = database.parents.aggregate(
        [
            {"$project": {"_id": 1}},
            {"$unionWith": {"coll": "children", "pipeline": [{"$match": {"parent": "p1"}}, {"$project": {"_id": 1}}]}},
            {"$sort": {"_id": 1}},
        ]
    ).to_list()
    assert [d["_id"] for d in piped] == ["c1", "c2", "p1", "p2"]


def test_vector_search_inside_union_with(indexed: Callable[..., Collection], database: Database) -> None:
    # Source: DOC_STAGE ("Starting in MongoDB 8.0 you can use $vectorSearch inside a $unionWith"; REF §9);
    # the union's documents keep their vectorSearchScore.
    coll = indexed(CHILDREN, [vfield()], probe=[1.0, 0.0, 0.0], searchable=4, coll_name="children")
    database.parents.insert_many(PARENTS)
    out = database.parents.aggregate(
        [
            {"$match": {"_id": "p1"}},
            {"$unionWith": {"coll": coll.name, "pipeline": [vs("vi", [1.0, 0.0, 0.0], limit=2)]}},
            {"$project": {"_id": 1, "s": {"$meta": "vectorSearchScore"}}},
        ]
    ).to_list()
    assert [d["_id"] for d in out] == ["p1", "c1", "c2"]
    assert out[1]["s"] == pytest.approx(1.0) and out[1]["s"] >= out[2]["s"] > 0.5


def test_score_survives_an_inclusion_projection(indexed: Callable[..., Collection]) -> None:
    # Source: DOC_STAGE ({$meta: "vectorSearchScore"} in any later stage; metadata is not a field, so an
    # inclusion $project does not drop it).
    coll = indexed(CHILDREN, [vfield()], probe=[1.0, 0.0, 0.0], searchable=4)
    out = coll.aggregate(
        [
            vs("vi", [1.0, 0.0, 0.0], limit=1),
            {"$project": {"parent": 1}},
            {"$set": {"s": {"$meta": "vectorSearchScore"}}},
        ]
    ).to_list()
    assert out == [{"_id": "c1", "parent": "p1", "s": pytest.approx(1.0)}]


def test_explain_aggregate_with_vector_search(indexed: Callable[..., Collection], database: Database) -> None:
    # Source: https://www.mongodb.com/docs/atlas/atlas-vector-search/explain/ (explain of a $vectorSearch
    # pipeline: explainVersion, stages with the $vectorSearch stage and mongot's explain);
    # https://www.mongodb.com/docs/manual/reference/command/explain/
    coll = indexed(CHILDREN, [vfield()], probe=[1.0, 0.0, 0.0], searchable=4)
    pipeline = [vs("vi", [1.0, 0.0, 0.0], limit=2), {"$project": {"v": 0}}]
    explained = database.command("explain", {"aggregate": coll.name, "pipeline": pipeline, "cursor": {}})
    assert explained["ok"] == 1.0
    assert "$vectorSearch" in str(explained.get("stages", explained))


def test_views_work_or_are_an_emulator_limitation(database: Database, mongo_emulator: Any) -> None:
    # Source: https://www.mongodb.com/docs/manual/core/views/ (create with viewOn); the emulator does not
    # implement views and must say so (leaf_mongo/testing/README.md, "emulator limitation").
    database.children.insert_many(CHILDREN)
    try:
        database.create_collection("kids_view", viewOn="children", pipeline=[{"$match": {"parent": "p1"}}])
    except OperationFailure as exc:
        assert isinstance(mongo_emulator, MongoEmulator), f"a real server refused a view: {exc}"
        assert "emulator limitation" in str(exc)
        return
    assert not isinstance(mongo_emulator, MongoEmulator), "the emulator accepted a view it cannot serve"
    assert sorted(d["_id"] for d in database.kids_view.find()) == ["c1", "c2"]


def test_unknown_union_with_field_is_an_error(database: Database) -> None:
    # Source: UNION ($unionWith takes coll and pipeline only; IDL-generated "unknown field" error).
    database.create_collection("parents")
    expect_error(lambda: database.parents.aggregate([{"$unionWith": {"coll": "x", "bogus": 1}}]).to_list(), "bogus")
