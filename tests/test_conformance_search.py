"""Conformance of ``$search``, ``search`` index definitions, ``$rankFusion`` and ``$scoreFusion``.

One documented behaviour per test, its source cited; runs on the session emulator, or unchanged on a
real MongoDB 8.2 + mongot with ``LEAF_MONGO_TEST_URI`` (nothing here looks inside the emulator, and
every wait polls through the driver, since mongot indexes asynchronously).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure
from pymongo.operations import SearchIndexModel

from leaf_mongo.errors import SearchIndexError
from leaf_mongo.testing import wait_for_search_index

TIMEOUT = 120.0
SEARCH = "https://www.mongodb.com/docs/atlas/atlas-search/"
RANK_FUSION = "https://www.mongodb.com/docs/manual/reference/operator/aggregation/rankFusion/"
SCORE_FUSION = "https://www.mongodb.com/docs/manual/reference/operator/aggregation/scoreFusion/"
MONGOT = "github.com/mongodb/mongot"

DOCS: list[dict[str, Any]] = [
    {"_id": 1, "title": "Foxes", "body": "The quick brown fox jumps over the lazy dog", "tag": "animal", "n": 1},
    {"_id": 2, "title": "Speed", "body": "A fox is quick", "tag": "animal", "n": 2},
    {"_id": 3, "title": "Pets", "body": "Dogs and cats live together", "tag": "pet", "n": 3},
    {"_id": 4, "title": "Colors", "body": "Brown is a colour, and so is green", "tag": "color", "n": 4},
    {"_id": 5, "title": "Order", "body": "fox brown, words in the other order", "tag": "other", "n": 5},
]
MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "fields": {
        "title": {"type": "string"},
        "body": {"type": "string", "analyzer": "lucene.standard"},
        "tag": {"type": "token"},
        "n": {"type": "number"},
    },
}


def _poll(fn: Callable[[], int], expected: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    seen = -1
    while True:
        try:
            seen = fn()
        except OperationFailure as exc:
            if "cannot query" not in str(exc) and "INITIAL_SYNC" not in str(exc):
                raise
        if seen == expected or time.monotonic() > deadline:
            assert seen == expected, f"{seen} documents searchable, expected {expected}"
            return
        time.sleep(0.2)


def _count(coll: Collection[Any], index: str = "fts") -> int:
    stage = {"$search": {"index": index, "exists": {"path": "body"}}}
    return len(list(coll.aggregate([stage, {"$project": {"_id": 1}}])))


@pytest.fixture
def fts(database: Database[Any]) -> Collection[Any]:
    coll = database.docs
    coll.insert_many([dict(d) for d in DOCS])
    coll.create_search_index(SearchIndexModel({"mappings": MAPPINGS}, name="fts", type="search"))
    wait_for_search_index(coll, "fts", TIMEOUT)
    _poll(lambda: _count(coll), len(DOCS))
    return coll


def search(coll: Collection[Any], operator: dict[str, Any], *tail: dict[str, Any], **opts: Any) -> list[dict[str, Any]]:
    stage = {"$search": {"index": "fts", **operator, **opts}}
    project = {"$project": {"_id": 1, "score": {"$meta": "searchScore"}}}
    return list(coll.aggregate([stage, *tail, project]))


def ids(rows: list[dict[str, Any]]) -> list[Any]:
    return [r["_id"] for r in rows]


# ---------------------------------------------------------------------------------------------- $search


def test_text_matches_analyzed_terms_best_first(fts: Collection[Any]) -> None:
    # Source: SEARCH + "operators-and-collectors/text/" (text performs a full-text search using the
    # analyzer of the field; results sorted by relevance score, searchScore).
    rows = search(fts, {"text": {"query": "quick fox", "path": "body"}})
    assert set(ids(rows)) == {1, 2, 5}
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)


def test_standard_analyzer_lowercases(fts: Collection[Any]) -> None:
    # Source: SEARCH + "analyzers/standard/" (lucene.standard: word-break tokens, converted to lowercase).
    assert set(ids(search(fts, {"text": {"query": "FOX", "path": "body"}}))) == {1, 2, 5}


def test_shorter_field_scores_higher_for_the_same_term(fts: Collection[Any]) -> None:
    # Source: MONGOT src/main/java/com/xgen/mongot/index/lucene/similarity/LuceneSimilarity.java
    # (Lucene BM25Similarity: term frequency normalized by field length, b = 0.75).
    rows = search(fts, {"text": {"query": "quick", "path": "body"}})
    assert ids(rows)[0] == 2  # "A fox is quick" is shorter than the other body containing "quick"


def test_rarer_term_scores_higher(fts: Collection[Any]) -> None:
    # Source: LuceneSimilarity.java as above (BM25 idf: a term in fewer documents weighs more).
    one = search(fts, {"text": {"query": "lazy", "path": "body"}})[0]["score"]  # in 1 document
    common = {r["_id"]: r["score"] for r in search(fts, {"text": {"query": "fox", "path": "body"}})}  # in 3
    assert one > common[1]


def test_path_array_searches_every_path(fts: Collection[Any]) -> None:
    # Source: SEARCH + "path-construction/" (an array of fields searches each of them).
    assert ids(search(fts, {"text": {"query": "pets", "path": "body"}})) == []
    assert ids(search(fts, {"text": {"query": "pets", "path": ["body", "title"]}})) == [3]


def test_wildcard_path(fts: Collection[Any]) -> None:
    # Source: SEARCH + "path-construction/#wildcard-field-search" ({"wildcard": "*"} = all indexed fields).
    assert ids(search(fts, {"text": {"query": "colors", "path": {"wildcard": "*"}}})) == [4]


def test_wildcard_operator_matches_terms_with_a_constant_score(fts: Collection[Any]) -> None:
    # Source: SEARCH + "operators-and-collectors/wildcard/" (* matches any characters, ? one character; the query
    # is not analyzed; allowAnalyzedField must be true to run against an analyzed field).
    rows = search(fts, {"wildcard": {"query": "fo?", "path": "body", "allowAnalyzedField": True}})
    assert set(ids(rows)) == {1, 2, 5} and len({r["score"] for r in rows}) == 1
    everything = search(fts, {"wildcard": {"query": "*", "path": "body", "allowAnalyzedField": True}})
    assert set(ids(everything)) == {d["_id"] for d in DOCS}
    with pytest.raises(OperationFailure, match="allowAnalyzedField"):
        search(fts, {"wildcard": {"query": "fo*", "path": "body"}})


def test_fuzzy_is_off_by_default(fts: Collection[Any]) -> None:
    # Source: SEARCH + "operators-and-collectors/text/#fields" (fuzzy is optional; without it terms match
    # exactly after analysis).
    assert search(fts, {"text": {"query": "foxx", "path": "body"}}) == []
    fuzzy = search(fts, {"text": {"query": "foxx", "path": "body", "fuzzy": {"maxEdits": 1}}})
    assert set(ids(fuzzy)) == {1, 2, 5}


def test_phrase_needs_order_and_adjacency(fts: Collection[Any]) -> None:
    # Source: SEARCH + "operators-and-collectors/phrase/" (terms in order; slop allows words between).
    assert ids(search(fts, {"phrase": {"query": "brown fox", "path": "body"}})) == [1]
    assert set(ids(search(fts, {"phrase": {"query": "quick fox", "path": "body", "slop": 1}}))) == {1}


def test_compound_must_must_not_should(fts: Collection[Any]) -> None:
    # Source: SEARCH + "operators-and-collectors/compound/" (must: required; mustNot: excluded;
    # should: optional, raises the score of documents that match).
    op = {
        "compound": {
            "must": [{"text": {"query": "fox", "path": "body"}}],
            "mustNot": [{"text": {"query": "order", "path": "body"}}],
        }
    }
    base = {r["_id"]: r["score"] for r in search(fts, op)}
    assert set(base) == {1, 2}
    op["compound"]["should"] = [{"text": {"query": "lazy", "path": "body"}}]
    boosted = {r["_id"]: r["score"] for r in search(fts, op)}
    assert set(boosted) == {1, 2} and boosted[1] > base[1] and boosted[2] == pytest.approx(base[2])


def test_compound_filter_does_not_score(fts: Collection[Any]) -> None:
    # Source: compound page as above ("filter ... like must, except that filter doesn't affect the score").
    must = {"text": {"query": "fox", "path": "body"}}
    plain = {r["_id"]: r["score"] for r in search(fts, {"compound": {"must": [must]}})}
    filtered = search(fts, {"compound": {"must": [must], "filter": [{"equals": {"path": "tag", "value": "animal"}}]}})
    assert set(ids(filtered)) == {1, 2}
    for r in filtered:
        assert r["score"] == pytest.approx(plain[r["_id"]])


def test_only_must_not_matches_everything_else(fts: Collection[Any]) -> None:
    # Source: MONGOT src/main/java/com/xgen/mongot/index/lucene/query/CompoundQueryFactory.java
    # (handleOnlyMustNot: a MatchAllDocsQuery filter with the mustNot clauses).
    rows = search(fts, {"compound": {"mustNot": [{"equals": {"path": "tag", "value": "animal"}}]}})
    assert set(ids(rows)) == {3, 4, 5}


def test_equals_in_range_on_typed_fields(fts: Collection[Any]) -> None:
    # Source: SEARCH + "operators-and-collectors/equals/", ".../in/", ".../range/" (token strings, numbers).
    assert set(ids(search(fts, {"equals": {"path": "tag", "value": "pet"}}))) == {3}
    assert set(ids(search(fts, {"in": {"path": "tag", "value": ["pet", "color"]}}))) == {3, 4}
    assert set(ids(search(fts, {"range": {"path": "n", "gte": 2, "lt": 4}}))) == {2, 3}


def test_equals_scores_a_constant_one(fts: Collection[Any]) -> None:
    # Source: SEARCH + "operators-and-collectors/equals/#scoring-behavior" (a constant score of 1).
    assert [r["score"] for r in search(fts, {"equals": {"path": "tag", "value": "animal"}})] == [1.0, 1.0]


def test_score_details_on_request(fts: Collection[Any]) -> None:
    # Source: SEARCH + "scoring/score-details/" (scoreDetails: true, then {$meta: "searchScoreDetails"}
    # holds value, description and details).
    stage = {"$search": {"index": "fts", "text": {"query": "lazy", "path": "body"}, "scoreDetails": True}}
    row = next(
        fts.aggregate([stage, {"$project": {"s": {"$meta": "searchScore"}, "d": {"$meta": "searchScoreDetails"}}}])
    )
    assert set(row["d"]) >= {"value", "description", "details"}
    assert row["d"]["value"] == pytest.approx(row["s"], rel=1e-5)


def test_search_must_be_first(fts: Collection[Any]) -> None:
    # Source: SEARCH + "aggregation-stages/search/" ($search must be the first stage of any pipeline).
    with pytest.raises(OperationFailure):
        list(fts.aggregate([{"$match": {}}, {"$search": {"index": "fts", "exists": {"path": "body"}}}]))


def test_missing_index_returns_nothing(fts: Collection[Any]) -> None:
    # Source: SEARCH + "aggregation-stages/search/" (the index option names the index; if it does not exist
    # the query returns no documents rather than an error).
    stage = {"$search": {"index": "no_such_index", "text": {"query": "fox", "path": "body"}}}
    assert list(fts.aggregate([stage])) == []


def test_documents_written_after_the_build_are_searchable(fts: Collection[Any]) -> None:
    # Source: SEARCH + "about/about-search/" (mongot watches the collection's change stream and keeps the
    # index current); deletes and updates are followed too.
    fts.insert_one({"_id": 6, "title": "New", "body": "a zebra arrives", "tag": "animal", "n": 6})
    _poll(lambda: len(search(fts, {"text": {"query": "zebra", "path": "body"}})), 1)
    fts.update_one({"_id": 6}, {"$set": {"body": "a giraffe arrives"}})
    _poll(lambda: len(search(fts, {"text": {"query": "zebra", "path": "body"}})), 0)
    fts.delete_one({"_id": 6})
    _poll(lambda: len(search(fts, {"text": {"query": "giraffe", "path": "body"}})), 0)


def test_index_lifecycle_reaches_ready(database: Database[Any]) -> None:
    # Source: SEARCH + "manage-indexes/" ($listSearchIndexes status PENDING -> BUILDING -> READY).
    coll = database.life
    coll.insert_many([dict(d) for d in DOCS])
    coll.create_search_index(SearchIndexModel({"mappings": MAPPINGS}, name="fts", type="search"))
    entry = wait_for_search_index(coll, "fts", TIMEOUT)
    assert entry["type"] == "search" and entry["status"] == "READY" and entry["queryable"] is True


@pytest.mark.parametrize(
    "mappings",
    [
        {"dynamic": False, "fields": {"body": {"type": "no_such_type"}}},
        {"dynamic": False, "fields": {"body": {"type": "string", "analyzer": "lucene.no_such_analyzer"}}},
        {"dynamic": "yes"},
    ],
)
def test_invalid_definitions_are_rejected(database: Database[Any], mappings: dict[str, Any]) -> None:
    # Source: MONGOT packages/search-index-schema/schema/search/components/ (dynamic is a boolean or a typeSet),
    # mappings/field.json (the type enum), common.json (analyzers: lucene.* built-ins or custom ones). That
    # editor-side schema also wants fields when dynamic is false, but mongot's own parser does not
    # (DocumentFieldDefinition: fields default to {}; DocumentFieldDefinitionTest's valid "explicit dynamic"), and
    # Atlas and the drivers' prose tests create {dynamic: false}: tests/conformance/test_crud_options.py.
    database.create_collection("bad")
    with pytest.raises((OperationFailure, SearchIndexError)):
        database.bad.create_search_index(SearchIndexModel({"mappings": mappings}, name="bad", type="search"))
        # a server validating asynchronously reports the failure in the index status instead (FAILED)
        entry = wait_for_search_index(database.bad, "bad", TIMEOUT)
        pytest.fail(f"accepted: {entry}")


def test_dynamic_mapping_indexes_every_string(database: Database[Any]) -> None:
    # Source: SEARCH + "define-field-mappings/#dynamic-mappings" (dynamic: true indexes all dynamically
    # indexable fields, strings with the default analyzer).
    coll = database.dyn
    coll.insert_many([{"_id": 1, "a": {"b": "Nested words"}}, {"_id": 2, "c": "other words"}])
    coll.create_search_index(SearchIndexModel({"mappings": {"dynamic": True}}, name="fts", type="search"))
    wait_for_search_index(coll, "fts", TIMEOUT)
    stage = {"$search": {"index": "fts", "text": {"query": "nested", "path": "a.b"}}}
    _poll(lambda: len(list(coll.aggregate([stage]))), 1)


# ---------------------------------------------------------------------------------------------- $rankFusion


def _fusion(coll: Collection[Any], stage: dict[str, Any]) -> list[dict[str, Any]]:
    project = {"$project": {"_id": 1, "score": {"$meta": "score"}, "details": {"$meta": "scoreDetails"}}}
    return list(coll.aggregate([stage, project]))


def _rrf(pipelines: dict[str, list[dict[str, Any]]], **extra: Any) -> dict[str, Any]:
    return {"$rankFusion": {"input": {"pipelines": pipelines}, "scoreDetails": True, **extra}}


TEXT_FOX = [{"$search": {"index": "fts", "text": {"query": "fox", "path": "body"}}}]
BY_N_DESC = [{"$match": {"tag": {"$in": ["animal", "pet"]}}}, {"$sort": {"n": -1}}]


def test_rank_fusion_reciprocal_rank_formula(fts: Collection[Any]) -> None:
    # Source: RANK_FUSION (score = sum over input pipelines of weight * 1 / (60 + rank), rank from 1;
    # scoreDetails lists inputPipelineName, rank and weight).
    rows = _fusion(fts, _rrf({"text": TEXT_FOX, "recent": BY_N_DESC}, combination={"weights": {"text": 2}}))
    for row in rows:
        parts = [d for d in row["details"]["details"] if d.get("rank")]
        assert parts
        assert row["score"] == pytest.approx(sum(d["weight"] * 1 / (60 + d["rank"]) for d in parts))
        weights = {d["inputPipelineName"]: d["weight"] for d in row["details"]["details"]}
        assert weights == {"text": 2, "recent": 1}
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)


def test_rank_fusion_deduplicates(fts: Collection[Any]) -> None:
    # Source: RANK_FUSION "De-Duplication" (each input document appears at most once in the output).
    rows = _fusion(fts, _rrf({"a": TEXT_FOX, "b": TEXT_FOX}))
    assert sorted(ids(rows)) == [1, 2, 5]
    assert rows[0]["score"] == pytest.approx(2 / 61)


def test_rank_fusion_ranked_selection_pipeline(fts: Collection[Any]) -> None:
    # Source: RANK_FUSION "Input Pipelines" (a pipeline of $match + $sort is a ranked pipeline).
    rows = _fusion(fts, _rrf({"recent": BY_N_DESC}))
    assert ids(rows) == [3, 2, 1]
    assert [r["score"] for r in rows] == pytest.approx([1 / 61, 1 / 62, 1 / 63])


def test_rank_fusion_rejects_unranked_pipeline(fts: Collection[Any]) -> None:
    # Source: RANK_FUSION "Input Pipelines" (an input pipeline must be ranked: a $match without $sort is not).
    with pytest.raises(OperationFailure):
        _fusion(fts, _rrf({"plain": [{"$match": {"tag": "animal"}}]}))


def test_rank_fusion_rejects_modifying_stages(fts: Collection[Any]) -> None:
    # Source: RANK_FUSION "Input Pipelines" (stages that modify documents, such as $project, are not allowed).
    with pytest.raises(OperationFailure):
        _fusion(fts, _rrf({"text": [*TEXT_FOX, {"$project": {"body": 1}}]}))


@pytest.mark.parametrize("name", ["$bad", "a.b", ""])
def test_rank_fusion_pipeline_names(fts: Collection[Any], name: str) -> None:
    # Source: RANK_FUSION "Input Pipeline Names" (not empty, not starting with $, no '.').
    with pytest.raises(OperationFailure):
        _fusion(fts, _rrf({name: TEXT_FOX}))


@pytest.mark.parametrize("weights", [{"text": -1}, {"nope": 1}])
def test_rank_fusion_weights_validated(fts: Collection[Any], weights: dict[str, Any]) -> None:
    # Source: RANK_FUSION combination.weights (a non-negative number per input pipeline name).
    with pytest.raises(OperationFailure):
        _fusion(fts, _rrf({"text": TEXT_FOX}, combination={"weights": weights}))


# ---------------------------------------------------------------------------------------------- $scoreFusion


def _sf(normalization: str, weights: dict[str, float] | None = None) -> dict[str, Any]:
    pipelines = {"fox": TEXT_FOX, "quick": [{"$search": {"index": "fts", "text": {"query": "quick", "path": "body"}}}]}
    spec: dict[str, Any] = {"input": {"pipelines": pipelines, "normalization": normalization}, "scoreDetails": True}
    if weights:
        spec["combination"] = {"weights": weights}
    return {"$scoreFusion": spec}


def test_score_fusion_min_max_average(fts: Collection[Any]) -> None:
    # Source: SCORE_FUSION (minMaxScaler scales each pipeline's scores to [0, 1]; the default combination
    # averages the weighted scores of the input pipelines).
    raw = {
        name: {r["_id"]: r["score"] for r in search(fts, {"text": {"query": name, "path": "body"}})}
        for name in ("fox", "quick")
    }

    def scaled(values: dict[Any, float]) -> dict[Any, float]:
        lo, hi = min(values.values()), max(values.values())
        return {k: (v - lo) / (hi - lo) if hi > lo else 1.0 for k, v in values.items()}

    norm = {n: scaled(v) for n, v in raw.items()}
    rows = _fusion(fts, _sf("minMaxScaler", {"fox": 2.0}))
    for row in rows:
        expected = (2.0 * norm["fox"].get(row["_id"], 0.0) + norm["quick"].get(row["_id"], 0.0)) / 2
        assert row["score"] == pytest.approx(expected)


def test_score_fusion_sigmoid_bounds(fts: Collection[Any]) -> None:
    # Source: SCORE_FUSION (sigmoid normalization applies $sigmoid, mapping scores into (0, 1)).
    rows = _fusion(fts, _sf("sigmoid"))
    assert rows and all(0 < r["score"] < 1 for r in rows)
    top = rows[0]["details"]["details"]
    assert all(0 < d["value"] < 1 for d in top if "value" in d)
    assert not any(math.isnan(r["score"]) for r in rows)


def test_score_fusion_requires_normalization(fts: Collection[Any]) -> None:
    # Source: SCORE_FUSION (input.normalization is required: none, sigmoid or minMaxScaler).
    stage = _sf("none")
    del stage["$scoreFusion"]["input"]["normalization"]
    with pytest.raises(OperationFailure):
        _fusion(fts, stage)


def test_score_fusion_expression_combines_named_pipeline_scores(fts: Collection[Any]) -> None:
    # Source: SCORE_FUSION (combination.method "expression": combination.expression computes the score from the
    # input pipelines' normalized scores, each available as $$<input pipeline name>).
    raw = {
        name: {r["_id"]: r["score"] for r in search(fts, {"text": {"query": name, "path": "body"}})}
        for name in ("fox", "quick")
    }
    norm = {n: {k: 1 / (1 + math.exp(-v)) for k, v in values.items()} for n, values in raw.items()}
    stage = _sf("sigmoid")
    stage["$scoreFusion"]["combination"] = {
        "method": "expression",
        "expression": {"$add": [{"$multiply": ["$$fox", 3]}, "$$quick"]},
    }
    rows = _fusion(fts, stage)
    assert {r["_id"] for r in rows} == set(raw["fox"]) | set(raw["quick"])
    for row in rows:
        expected = 3 * norm["fox"].get(row["_id"], 0.0) + norm["quick"].get(row["_id"], 0.0)
        assert row["score"] == pytest.approx(expected)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)


@pytest.mark.parametrize(
    "combination",
    [
        {"method": "expression"},  # no expression
        {"method": "expression", "expression": {"$add": ["$$fox", "$$quick"]}, "weights": {"fox": 2}},
        {"method": "median"},
    ],
    ids=["expression-missing", "expression-with-weights", "unknown-method"],
)
def test_score_fusion_combination_validated(fts: Collection[Any], combination: dict[str, Any]) -> None:
    # Source: SCORE_FUSION (method is avg or expression; expression is mutually exclusive with weights) and the
    # Java driver's ScoreFusionCombination ("The server rejects specifying both weights and an expression").
    stage = _sf("none")
    stage["$scoreFusion"]["combination"] = combination
    with pytest.raises(OperationFailure):
        _fusion(fts, stage)
