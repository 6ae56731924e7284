"""Conformance: $vectorSearch arguments, pre-filters, vector dtypes and scores.

Runs on the emulator and, unchanged, on a real server via ``LEAF_MONGO_TEST_URI`` (see helpers.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure
from pymongo.operations import SearchIndexModel

from leaf_mongo.testing import MongoEmulator, wait_until_searchable
from tests.conformance.helpers import (
    TIMEOUT,
    bits,
    expect_error,
    f32,
    i8,
    poll,
    scored,
    vfield,
    vs,
)

# --------------------------------------------------------------------------- $vectorSearch arguments


def test_vector_search_must_be_first_stage(database: Database) -> None:
    # Source: DOC_STAGE ("$vectorSearch must be the first stage of any pipeline where it appears").
    database.create_collection("first")
    expect_error(
        lambda: database.first.aggregate([{"$match": {}}, vs("vi", [1.0, 0.0, 0.0])]),
        "$vectorSearch is only valid as the first stage in a pipeline",
    )


@pytest.mark.parametrize("missing", ["index", "path", "queryVector", "limit"])
def test_vector_search_required_fields(indexed: Callable[..., Collection], missing: str) -> None:
    # Source: DOC_STAGE fields table (index, path, queryVector, limit are required).
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0]}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    stage = vs("vi", [1.0, 0.0, 0.0])
    del stage["$vectorSearch"][missing]
    expect_error(lambda: coll.aggregate([stage]), missing)


def test_num_candidates_rules(indexed: Callable[..., Collection]) -> None:
    # Source: REF §4 table; mongot VectorSearchCriteria.java (Range.of(1, 10_000)),
    # ApproximateVectorSearchCriteria.java, ExactVectorSearchCriteria.java; DOC_STAGE.
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0]}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    q = [1.0, 0.0, 0.0]
    no_candidates = {"$vectorSearch": {"index": "vi", "path": "v", "queryVector": q, "limit": 1}}
    expect_error(lambda: coll.aggregate([no_candidates]), "numCandidates")
    expect_error(lambda: coll.aggregate([vs("vi", q, limit=1, numCandidates=0)]), "numCandidates")
    expect_error(lambda: coll.aggregate([vs("vi", q, limit=1, numCandidates=10_001)]), "numCandidates")
    expect_error(
        lambda: coll.aggregate([vs("vi", q, limit=5, numCandidates=4)]),
        "limit should be less than or equal to numCandidates",
    )
    expect_error(
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
    expect_error(lambda: coll.aggregate([vs("vi", [1.0, 0.0, 0.0], path="w")]), "w is not indexed as vector")


def test_query_dimension_mismatch(indexed: Callable[..., Collection]) -> None:
    # Source: mongot VectorQueryTimeMappingChecks.java ("vector field is indexed with %s dimensions
    # but queried with %s"); REF §7.9.
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0]}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    expect_error(
        lambda: coll.aggregate([vs("vi", [1.0, 0.0])]),
        "vector field is indexed with 3 dimensions but queried with 2",
    )


def test_query_vector_must_be_finite(indexed: Callable[..., Collection]) -> None:
    # Source: mongot VectorSearchCriteria.checkBasicFields ("'queryVector' contains a non-finite value").
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0]}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    expect_error(lambda: coll.aggregate([vs("vi", [1.0, math.nan, 0.0])]), "non-finite")


def test_cosine_zero_query_vector(indexed: Callable[..., Collection]) -> None:
    # Source: REF §4 ("cosine + zero query vector -> Cosine similarity cannot be calculated against a
    # zero vector.").
    coll = indexed([{"_id": 1, "v": [1.0, 0.0, 0.0]}], [vfield()], probe=[1.0, 0.0, 0.0], searchable=1)
    expect_error(lambda: coll.aggregate([vs("vi", [0.0, 0.0, 0.0])]), "zero vector")


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
    expect_error(
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
    expect_error(
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
    poll(lambda: [d["_id"] for d in coll.aggregate([vs("vi", q, limit=3, exact=True)])] == [3, 4, 5])
