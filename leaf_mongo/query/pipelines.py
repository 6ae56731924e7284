"""Pure aggregation-pipeline builders for vector, full-text and hybrid search (no I/O).

Shared by the sync and async retriever paths and by the benchmarks, so every mode sends exactly the
same stages. Hybrid is one ``$rankFusion`` (MongoDB 8.1+) of a ``$vectorSearch`` pipeline and a ``$search``
pipeline; :func:`fuse_rrf` computes the same reciprocal rank fusion client-side, for servers without
``$rankFusion`` when the caller asks for it explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from leaf_mongo.query.filters import search_filter_clauses
from leaf_mongo.spec import VectorSpec

MAX_NUM_CANDIDATES = 10_000  # mongot: numCandidates in [1, 10000]
RANK_CONSTANT = 60  # $rankFusion: weight * 1 / (60 + rank)
VECTOR_PIPELINE = "vector"
FULLTEXT_PIPELINE = "fulltext"
RRF_DESCRIPTION = (
    "value output by reciprocal rank fusion algorithm, computed as sum of (weight * (1 / (60 + rank))) across "
    "input pipelines from which this document is output, from:"
)


def num_candidates_for(k: int, num_candidates: int | None = None, factor: int = 20) -> int:
    """``numCandidates``: given, or ``factor`` × k (MongoDB recommends ≥ 20×), clamped to [k, 10000]."""
    wanted = num_candidates if num_candidates is not None else factor * k
    return max(k, min(wanted, MAX_NUM_CANDIDATES))


def fusion_depth(k: int, factor: int = 2) -> int:
    """How many results each input list of a hybrid search contributes: ``factor`` × k, at most 10000.

    A document ranked below k on one side can still make the fused top k when the other side ranks it
    high, so each side must return more than k; 2 × k keeps every document whose fused score could
    reach the top k under equal weights in view at little extra cost.
    """
    return max(k, min(factor * k, MAX_NUM_CANDIDATES))


def hidden_fields(spec: VectorSpec, keep: str | None = None) -> list[str]:
    """Stored vector fields a result never needs (``keep``: the one rescoring reads)."""
    return [f for f in (spec.embedding_field, spec.full_precision_field) if f and f != keep]


def vector_search_stage(
    spec: VectorSpec,
    *,
    index: str,
    query_vector: Any,
    limit: int,
    num_candidates: int,
    exact: bool = False,
    pre_filter: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``$vectorSearch`` stage (``numCandidates`` omitted for exact search, as the server requires).

    On an autoEmbed collection the path is the text field, and ``query_vector`` may be ``{"text": ...}``: the
    server embeds it (``query``) instead of taking a vector.
    """
    search: dict[str, Any] = {"index": index, "path": spec.embedding_field}
    if spec.autoembed_model is not None:
        search["path"] = spec.text_field
    if isinstance(query_vector, Mapping):
        search["query"] = dict(query_vector)
    else:
        search["queryVector"] = query_vector
    search["limit"] = limit
    if exact:
        search["exact"] = True
    else:
        search["numCandidates"] = max(num_candidates, limit)
    if pre_filter:
        search["filter"] = dict(pre_filter)
    return {"$vectorSearch": search}


def text_operator(query: str, paths: Sequence[str]) -> dict[str, Any]:
    """The ``text`` operator over ``paths`` (the index's analyzer, no fuzzy matching)."""
    return {"text": {"query": query, "path": list(paths) if len(paths) != 1 else paths[0]}}


def query_paths(spec: VectorSpec) -> list[str]:
    """What a full-text query searches: the chunk text alone.

    Every chunk's text already starts with its title or heading path (see :mod:`leaf_mongo.ingest.chunking`), so
    searching ``title`` and ``headings`` as well would count those words twice: on SciFact that costs
    4 nDCG@10 points (61.2 instead of 65.3, benchmarks/README.md). They stay indexed for filters and for
    queries of one's own.
    """
    return [spec.text_field]


def search_stage(
    spec: VectorSpec,
    *,
    index: str,
    query: str,
    pre_filter: Mapping[str, Any] | None = None,
    score_details: bool = False,
) -> dict[str, Any]:
    """One ``$search`` stage: the text operator, with the pre-filter as non-scoring ``compound.filter``."""
    operator = text_operator(query, query_paths(spec))
    body: dict[str, Any] = {"index": index}
    if pre_filter:
        body["compound"] = {"must": [operator], "filter": search_filter_clauses(pre_filter)}
    else:
        body.update(operator)
    if score_details:
        body["scoreDetails"] = True
    return {"$search": body}


def _tail(
    spec: VectorSpec,
    score_meta: str,
    score_threshold: float | None,
    post: Sequence[Mapping[str, Any]],
    keep: str | None = None,
    details_meta: str | None = None,
) -> list[dict[str, Any]]:
    fields: dict[str, Any] = {"score": {"$meta": score_meta}}
    if details_meta:
        fields["score_details"] = {"$meta": details_meta}
    stages: list[dict[str, Any]] = [{"$set": fields}]
    hidden = hidden_fields(spec, keep)
    if hidden:
        stages.append({"$project": dict.fromkeys(hidden, 0)})
    if score_threshold is not None:
        stages.append({"$match": {"score": {"$gte": score_threshold}}})
    stages.extend(dict(s) for s in post)
    return stages


def vector_pipeline(
    spec: VectorSpec,
    *,
    index: str,
    query_vector: Any,
    limit: int,
    num_candidates: int,
    exact: bool = False,
    pre_filter: Mapping[str, Any] | None = None,
    score_threshold: float | None = None,
    post: Sequence[Mapping[str, Any]] = (),
    keep: str | None = None,
) -> list[dict[str, Any]]:
    """Vector search, its score as ``score``, vectors dropped (except ``keep``), then ``post``."""
    stage = vector_search_stage(
        spec,
        index=index,
        query_vector=query_vector,
        limit=limit,
        num_candidates=num_candidates,
        exact=exact,
        pre_filter=pre_filter,
    )
    return [stage, *_tail(spec, "vectorSearchScore", score_threshold, post, keep)]


def fulltext_pipeline(
    spec: VectorSpec,
    *,
    index: str,
    query: str,
    limit: int,
    pre_filter: Mapping[str, Any] | None = None,
    score_threshold: float | None = None,
    post: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Full-text search (BM25 ``searchScore`` as ``score``), ``limit`` best, then ``post``."""
    stage = search_stage(spec, index=index, query=query, pre_filter=pre_filter)
    return [stage, {"$limit": limit}, *_tail(spec, "searchScore", score_threshold, post)]


def rank_fusion_pipeline(
    spec: VectorSpec,
    *,
    vector_index: str,
    fulltext_index: str,
    query: str,
    query_vector: Any,
    k: int,
    depth: int,
    num_candidates: int,
    weights: Mapping[str, float],
    exact: bool = False,
    pre_filter: Mapping[str, Any] | None = None,
    score_threshold: float | None = None,
    post: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """``$rankFusion`` of the vector and the full-text pipeline (``depth`` each), the fused top ``k``.

    ``score`` is the fused RRF score, ``score_details`` the server's ``scoreDetails`` (per-pipeline rank,
    weight and score).
    """
    vector = vector_search_stage(
        spec,
        index=vector_index,
        query_vector=query_vector,
        limit=depth,
        num_candidates=num_candidates,
        exact=exact,
        pre_filter=pre_filter,
    )
    text = search_stage(spec, index=fulltext_index, query=query, pre_filter=pre_filter)
    fusion = {
        "$rankFusion": {
            "input": {"pipelines": {VECTOR_PIPELINE: [vector], FULLTEXT_PIPELINE: [text, {"$limit": depth}]}},
            "combination": {"weights": {name: float(w) for name, w in weights.items()}},
            "scoreDetails": True,
        }
    }
    return [fusion, {"$limit": k}, *_tail(spec, "score", score_threshold, post, details_meta="scoreDetails")]


def fuse_rrf(
    lists: Mapping[str, Sequence[dict[str, Any]]],
    weights: Mapping[str, float],
    k: int,
    score_threshold: float | None = None,
) -> list[dict[str, Any]]:
    """Client-side reciprocal rank fusion with ``$rankFusion``'s formula and ``scoreDetails`` shape.

    ``lists`` maps a pipeline name to its results, best first, each with a ``score``; documents are
    matched by ``_id`` and the first list holding a document supplies its fields.
    """
    fused: dict[Any, dict[str, Any]] = {}
    for name, docs in lists.items():
        weight = float(weights.get(name, 1.0))
        seen: set[Any] = set()
        rank = 0
        for doc in docs:
            key = repr(doc.get("_id"))
            if key in seen:
                continue
            seen.add(key)
            rank += 1
            entry = fused.setdefault(key, {"doc": dict(doc), "value": 0.0, "per": {}})
            entry["value"] += weight / (RANK_CONSTANT + rank)
            entry["per"][name] = {
                "inputPipelineName": name,
                "rank": rank,
                "weight": weight,
                "value": doc.get("score"),
                "details": [],
            }
    ranked = sorted(fused.values(), key=lambda e: -e["value"])
    out = []
    for entry in ranked:
        doc = entry["doc"]
        doc["score"] = entry["value"]
        doc["score_details"] = {
            "value": entry["value"],
            "description": RRF_DESCRIPTION,
            "details": [
                entry["per"].get(n, {"inputPipelineName": n, "rank": 0, "weight": float(weights.get(n, 1.0))})
                for n in lists
            ],
        }
        if score_threshold is None or doc["score"] >= score_threshold:
            out.append(doc)
    return out[:k]
