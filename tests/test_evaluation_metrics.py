"""Retrieval metrics: hand-computed graded cases, trec_eval's tie rule, cut-offs, and ranx as an oracle."""

from __future__ import annotations

import math
import random

import pytest

from leaf_mongo.evaluation.metrics import (
    evaluate,
    evaluated_queries,
    mrr_at_k,
    ndcg_at_k,
    parse_metric,
    per_query,
    ranking,
    recall_at_k,
)

L3 = math.log2(3)


def test_graded_relevance_hand_computed() -> None:
    qrels = {"q": {"a": 2, "b": 1, "c": 0}}
    run = {"q": {"x": 0.9, "a": 0.8, "b": 0.7, "c": 0.6}}
    m = per_query(qrels, run, ["ndcg@10", "ndcg@2", "ndcg@1", "recall@10", "recall@1", "mrr@10", "mrr@1"])["q"]
    # DCG = 0 + 2/log2(3) + 1/log2(4); IDCG = 2/log2(2) + 1/log2(3)
    assert m["ndcg@10"] == pytest.approx((2 / L3 + 0.5) / (2 + 1 / L3))
    assert m["ndcg@2"] == pytest.approx((2 / L3) / (2 + 1 / L3))
    assert m["ndcg@1"] == 0.0
    assert m["recall@10"] == 1.0
    assert m["recall@1"] == 0.0
    assert m["mrr@10"] == 0.5
    assert m["mrr@1"] == 0.0


def test_gain_is_linear_not_exponential() -> None:
    # rel 3 at rank 2 only: linear gain 3/log2(3) over ideal 3 → 1/log2(3); exponential would differ only if
    # two grades were mixed, so mix them: ideal is (3, 1), run puts the 1 first.
    judged = {"a": 3, "b": 1}
    got = ndcg_at_k(["b", "a"], judged, 10)
    assert got == pytest.approx((1 + 3 / L3) / (3 + 1 / L3))
    assert got != pytest.approx((1 + 7 / L3) / (7 + 1 / L3))


def test_ideal_is_cut_at_k() -> None:
    judged = {"a": 3, "b": 2, "c": 1}
    assert ndcg_at_k(["c", "b"], judged, 2) == pytest.approx((1 + 2 / L3) / (3 + 2 / L3))
    assert recall_at_k(["c", "b"], judged, 2) == pytest.approx(2 / 3)


def test_ties_broken_by_doc_id_descending_like_trec_eval() -> None:
    assert ranking({"b": 0.5, "a": 0.5, "c": 0.5, "z": 0.1, "top": 0.9}) == ["top", "c", "b", "a", "z"]
    assert ranking({"10": 1.0, "9": 1.0, "100": 1.0}) == ["9", "100", "10"]  # byte order, not numeric
    qrels = {"q": {"a": 1}}
    run = {"q": {"b": 0.5, "a": 0.5, "c": 0.5}}
    m = per_query(qrels, run, ["mrr@10", "ndcg@10", "recall@2"])["q"]
    assert m["mrr@10"] == pytest.approx(1 / 3)
    assert m["ndcg@10"] == pytest.approx(0.5)
    assert m["recall@2"] == 0.0
    # Independent of the order the scores arrived in.
    assert per_query(qrels, {"q": dict(reversed(run["q"].items()))}, ["mrr@10"])["q"]["mrr@10"] == m["mrr@10"]


def test_missing_judgments_are_non_relevant() -> None:
    judged = {"a": 1}
    assert mrr_at_k(["unjudged", "a"], judged, 10) == 0.5
    assert ndcg_at_k(["unjudged", "a"], judged, 10) == pytest.approx(1 / L3)
    assert ndcg_at_k(["unjudged"], judged, 10) == 0.0


def test_queries_without_relevant_docs_are_excluded_and_empty_results_count_zero() -> None:
    qrels = {
        "has_rel": {"a": 1},
        "only_zero": {"b": 0},  # judged, nothing relevant: excluded
        "negative": {"c": -1},  # likewise
        "not_run": {"d": 2},  # judged relevant but absent from the run: counts as 0
    }
    run = {"has_rel": {"a": 0.9}, "only_zero": {"b": 0.9}, "unjudged_query": {"x": 1.0}}
    assert evaluated_queries(qrels) == ["has_rel", "not_run"]
    means = evaluate(qrels, run, ["ndcg@10", "recall@100", "mrr@10"])
    assert means == {"ndcg@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5, "queries": 2.0}


def test_negative_grades_give_no_gain() -> None:
    assert ndcg_at_k(["bad", "good"], {"bad": -2, "good": 1}, 10) == pytest.approx(1 / L3)


def test_empty_qrels() -> None:
    assert evaluate({}, {}, ["ndcg@10"]) == {"ndcg@10": 0.0, "queries": 0.0}


def test_parse_metric() -> None:
    assert parse_metric("nDCG@10") == ("ndcg", 10)
    for bad in ("map@10", "ndcg", "ndcg@0", "recall@x"):
        with pytest.raises(ValueError, match="allowed"):
            parse_metric(bad)


def _random_case(seed: int, n_queries: int = 40) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """Graded qrels with a relevant doc per query, and tie-free runs over judged and unjudged docs."""
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(300)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for qi in range(n_queries):
        q = f"q{qi}"
        judged = rng.sample(docs, rng.randint(1, 12))
        grades = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        grades[judged[0]] = rng.randint(1, 3)
        qrels[q] = grades
        retrieved = rng.sample(docs, rng.randint(1, 150))
        if rng.random() < 0.7:  # usually retrieve some judged docs
            retrieved += rng.sample(judged, rng.randint(1, len(judged)))
        run[q] = {d: rng.random() for d in set(retrieved)}
    return qrels, run


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_ranx(seed: int) -> None:
    ranx = pytest.importorskip("ranx")
    qrels, run = _random_case(seed)
    names = ["ndcg@10", "ndcg@3", "recall@10", "recall@100", "mrr@10", "mrr@5"]
    ours = per_query(qrels, run, names)
    theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), names, return_mean=False)  # ranx "ndcg" = linear gain
    order = sorted(qrels)  # ranx returns per-query scores in sorted query-id order
    for name in names:
        assert [ours[q][name] for q in order] == pytest.approx(list(theirs[name]), abs=1e-9), name
