"""The pure pipeline builders: stage shapes, candidate sizing, the filter translation and client-side RRF."""

from __future__ import annotations

from typing import Any

import pytest

from leaf_mongo.query.filters import search_filter_clauses
from leaf_mongo.query.pipelines import (
    fulltext_pipeline,
    fuse_rrf,
    fusion_depth,
    rank_fusion_pipeline,
    search_stage,
    vector_pipeline,
)
from leaf_mongo.spec import FULLTEXT_FIELDS, VectorSpec

SPEC = VectorSpec(teacher_model="t", leaf_model="l", full_dimensions=8, dimensions=8, fulltext_fields=FULLTEXT_FIELDS)


@pytest.mark.parametrize(
    ("mql", "clauses"),
    [
        ({"source": "a.md"}, [{"equals": {"path": "source", "value": "a.md"}}]),
        ({"n": {"$gte": 2, "$lt": 5}}, [{"range": {"path": "n", "gte": 2, "lt": 5}}]),
        ({"s": {"$in": ["a", "b"]}}, [{"in": {"path": "s", "value": ["a", "b"]}}]),
        ({"s": {"$ne": "a"}}, [{"compound": {"mustNot": [{"equals": {"path": "s", "value": "a"}}]}}]),
        ({"s": {"$nin": ["a"]}}, [{"compound": {"mustNot": [{"in": {"path": "s", "value": ["a"]}}]}}]),
        ({"s": {"$exists": True}}, [{"exists": {"path": "s"}}]),
        ({"s": {"$exists": False}}, [{"compound": {"mustNot": [{"exists": {"path": "s"}}]}}]),
        ({"n": {"$not": {"$gt": 3}}}, [{"compound": {"mustNot": [{"range": {"path": "n", "gt": 3}}]}}]),
        (
            {"$or": [{"s": "a"}, {"n": 1}]},
            [
                {
                    "compound": {
                        "should": [{"equals": {"path": "s", "value": "a"}}, {"equals": {"path": "n", "value": 1}}],
                        "minimumShouldMatch": 1,
                    }
                }
            ],
        ),
        ({"$nor": [{"s": "a"}]}, [{"compound": {"mustNot": [{"equals": {"path": "s", "value": "a"}}]}}]),
    ],
)
def test_pre_filter_becomes_search_filter_clauses(mql: dict[str, Any], clauses: list[dict[str, Any]]) -> None:
    assert search_filter_clauses(mql) == clauses


def test_search_stage_uses_the_filter_as_compound_filter() -> None:
    plain = search_stage(SPEC, index="ft", query="q")
    assert plain == {"$search": {"index": "ft", "text": {"query": "q", "path": "text"}}}
    filtered = search_stage(SPEC, index="ft", query="q", pre_filter={"source": "a"})["$search"]
    assert filtered["compound"]["must"] == [{"text": {"query": "q", "path": "text"}}]
    assert filtered["compound"]["filter"] == [{"equals": {"path": "source", "value": "a"}}]


def test_fusion_depth() -> None:
    assert fusion_depth(10) == 20 and fusion_depth(10, 5) == 50 and fusion_depth(8000) == 10_000


def test_rank_fusion_pipeline_shape() -> None:
    p = rank_fusion_pipeline(
        SPEC,
        vector_index="vi",
        fulltext_index="ft",
        query="q",
        query_vector=[0.0] * 8,
        k=5,
        depth=10,
        num_candidates=200,
        weights={"vector": 1.0, "fulltext": 0.5},
        pre_filter={"source": "a"},
    )
    fusion = p[0]["$rankFusion"]
    vs = fusion["input"]["pipelines"]["vector"][0]["$vectorSearch"]
    assert vs["limit"] == 10 and vs["numCandidates"] == 200 and vs["filter"] == {"source": "a"}
    text = fusion["input"]["pipelines"]["fulltext"]
    assert text[1] == {"$limit": 10} and "compound" in text[0]["$search"]
    assert fusion["combination"]["weights"] == {"vector": 1.0, "fulltext": 0.5} and fusion["scoreDetails"] is True
    assert p[1] == {"$limit": 5}
    assert p[2] == {"$set": {"score": {"$meta": "score"}, "score_details": {"$meta": "scoreDetails"}}}
    assert p[3] == {"$project": {"embedding": 0}}


def test_vector_and_fulltext_pipelines() -> None:
    v = vector_pipeline(SPEC, index="vi", query_vector=[0.0] * 8, limit=4, num_candidates=80, score_threshold=0.5)
    assert v[1] == {"$set": {"score": {"$meta": "vectorSearchScore"}}} and v[-1] == {"$match": {"score": {"$gte": 0.5}}}
    f = fulltext_pipeline(SPEC, index="ft", query="q", limit=4)
    assert f[1] == {"$limit": 4} and f[2] == {"$set": {"score": {"$meta": "searchScore"}}}


def test_client_side_rrf_formula_and_details() -> None:
    lists = {
        "vector": [{"_id": "a", "score": 0.9}, {"_id": "b", "score": 0.8}],
        "fulltext": [{"_id": "b", "score": 7.0}, {"_id": "c", "score": 5.0}],
    }
    out = fuse_rrf(lists, {"vector": 1.0, "fulltext": 2.0}, k=3)
    assert [d["_id"] for d in out] == ["b", "c", "a"]
    assert out[0]["score"] == pytest.approx(1 / 62 + 2 / 61)
    assert out[1]["score"] == pytest.approx(2 / 62) and out[2]["score"] == pytest.approx(1 / 61)
    details = {d["inputPipelineName"]: d for d in out[2]["score_details"]["details"]}
    assert details["vector"]["rank"] == 1 and details["fulltext"]["rank"] == 0
    assert fuse_rrf(lists, {"vector": 1.0, "fulltext": 1.0}, k=3, score_threshold=1 / 61.5)[0]["_id"] == "b"
