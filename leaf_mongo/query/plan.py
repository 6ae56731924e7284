"""The plan of one search, pure and public: per-call options resolved against the retriever's defaults, and the
aggregation pipeline (or, for client-side fusion, the two pipelines) they make.

No I/O: the retriever reads the spec and runs the pipelines; benchmarks and tests replay exactly what it sends
with :func:`build_pipeline`. Stage builders themselves are :mod:`leaf_mongo.query.pipelines`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from leaf_mongo.errors import LeafMongoError
from leaf_mongo.models.encoders import VectorEncoder, encode_lock
from leaf_mongo.query import pipelines as pl
from leaf_mongo.query.filters import validate_pre_filter
from leaf_mongo.query.pipelines import MAX_NUM_CANDIDATES, num_candidates_for
from leaf_mongo.query.results import rescore_field
from leaf_mongo.settings import SearchMode
from leaf_mongo.spec.vector_spec import VectorSpec

SEARCH_MODES: tuple[SearchMode, ...] = ("vector", "fulltext", "hybrid")
WEIGHTS = ((pl.VECTOR_PIPELINE, "vector_weight"), (pl.FULLTEXT_PIPELINE, "fulltext_weight"))
"""Fusion input pipeline name → the per-call option (and retriever field) holding its weight."""


@dataclass
class QueryState:
    """What one spec read yields; cached for the life of a retriever."""

    spec: VectorSpec
    encoder: VectorEncoder
    where: str
    indexes: dict[str, dict[str, Any]]
    checked: set[str] = field(default_factory=set)
    server_embeds: bool = False
    """An autoEmbed collection queried by text: mongot embeds the query (through `leaf-mongo serve`)."""

    def encode(self, text: str) -> tuple[np.ndarray | None, Any]:
        """Normalized float query embedding (for rescoring) and the BSON query vector of the stored dtype; or,
        when the server embeds, no embedding and ``{"text": ...}`` (the ``$vectorSearch`` ``query``)."""
        if self.server_embeds:
            return None, {"text": text}
        with encode_lock(self.encoder.query_model_name):
            emb = self.encoder.embed_queries([text])[0]
        return emb, self.encoder.query_vector_from_embedding(emb)


@dataclass(frozen=True)
class QueryPlan:
    """The retriever-level settings the stages need (index names, candidate and fusion depths, rescoring)."""

    index_name: str
    fulltext_index_name: str
    num_candidates_factor: int = 20
    fusion_depth_factor: int = 2
    rescore: bool = False
    rescore_candidates: int | None = None


@dataclass(frozen=True)
class SearchOptions:
    """The options of one search, after per-call overrides."""

    k: int
    num_candidates: int
    exact: bool
    pre_filter: dict[str, Any] | None
    post_filter_pipeline: list[dict[str, Any]]
    score_threshold: float | None
    search_mode: SearchMode = "vector"
    weights: tuple[tuple[str, float], ...] = ()


PER_CALL = tuple(f.name for f in fields(SearchOptions) if f.name != "weights") + tuple(a for _, a in WEIGHTS)
"""Options ``invoke`` / ``ainvoke`` accept per call (the weights as ``vector_weight`` / ``fulltext_weight``)."""


def resolve_options(
    defaults: Mapping[str, Any], overrides: Mapping[str, Any], plan: QueryPlan, spec: VectorSpec, where: str
) -> SearchOptions:
    """Per-call ``overrides`` over the retriever's ``defaults`` (both keyed by :data:`PER_CALL` names), checked
    as the retriever's own fields are (per-call values do not go through pydantic)."""
    unknown = set(overrides) - set(PER_CALL)
    if unknown:
        raise TypeError(f"unexpected search options {sorted(unknown)}; allowed: {', '.join(PER_CALL)}")
    opt = {**defaults, **overrides}
    k = int(opt["k"])
    if not 1 <= k <= MAX_NUM_CANDIDATES:
        raise LeafMongoError(f"k must be in 1..{MAX_NUM_CANDIDATES}, got {k}")
    pre = opt["pre_filter"]
    if "pre_filter" in overrides and pre is not None:
        validate_pre_filter(pre, spec.filter_fields, where)
    mode = opt["search_mode"]
    if mode not in SEARCH_MODES:
        raise LeafMongoError(f"search_mode must be one of {', '.join(SEARCH_MODES)}; got {mode!r}")
    weights = []
    for name, attr in WEIGHTS:
        w = opt[attr]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0:
            raise LeafMongoError(f"{attr} must be a non-negative number, got {w!r}")
        weights.append((name, float(w)))
    return SearchOptions(
        k=k,
        num_candidates=num_candidates_for(k, opt["num_candidates"], plan.num_candidates_factor),
        exact=bool(opt["exact"]),
        pre_filter=dict(pre) if pre else None,
        post_filter_pipeline=list(opt["post_filter_pipeline"] or []),
        score_threshold=opt["score_threshold"],
        search_mode=mode,
        weights=tuple(weights),
    )


def build_pipeline(
    spec: VectorSpec, plan: QueryPlan, options: SearchOptions, query_vector: Any, query: str = "", where: str = ""
) -> list[dict[str, Any]]:
    """The aggregation pipeline for one query: ``$vectorSearch``, ``$search`` or one ``$rankFusion`` of both."""
    o = options
    if o.search_mode == "fulltext":
        return pl.fulltext_pipeline(
            spec,
            index=plan.fulltext_index_name,
            query=query,
            limit=o.k,
            pre_filter=o.pre_filter,
            score_threshold=o.score_threshold,
            post=o.post_filter_pipeline,
        )
    if o.search_mode == "hybrid":
        depth = pl.fusion_depth(o.k, plan.fusion_depth_factor)
        return pl.rank_fusion_pipeline(
            spec,
            vector_index=plan.index_name,
            fulltext_index=plan.fulltext_index_name,
            query=query,
            query_vector=query_vector,
            k=o.k,
            depth=depth,
            num_candidates=max(o.num_candidates, num_candidates_for(depth, None, plan.num_candidates_factor)),
            weights=dict(o.weights),
            exact=o.exact,
            pre_filter=o.pre_filter,
            score_threshold=o.score_threshold,
            post=o.post_filter_pipeline,
        )
    keep = rescore_field(spec, where) if plan.rescore else None
    limit, num_candidates = o.k, o.num_candidates
    if keep is not None:  # fetch the rescoring candidates, with their full-precision vectors
        limit = max(o.k, min(plan.rescore_candidates or o.num_candidates, MAX_NUM_CANDIDATES))
        num_candidates = max(num_candidates, limit)
    return pl.vector_pipeline(
        spec,
        index=plan.index_name,
        query_vector=query_vector,
        limit=limit,
        num_candidates=num_candidates,
        exact=o.exact,
        pre_filter=o.pre_filter,
        score_threshold=o.score_threshold if keep is None else None,
        post=o.post_filter_pipeline,
        keep=keep,
    )


def side_pipelines(
    spec: VectorSpec, plan: QueryPlan, options: SearchOptions, query_vector: Any, query: str, where: str = ""
) -> dict[str, list[dict[str, Any]]]:
    """Client-side fusion: the vector and the full-text pipeline, run separately (same depth each)."""
    depth = pl.fusion_depth(options.k, plan.fusion_depth_factor)
    side = SearchOptions(
        k=depth,
        num_candidates=num_candidates_for(depth, None, plan.num_candidates_factor),
        exact=options.exact,
        pre_filter=options.pre_filter,
        post_filter_pipeline=options.post_filter_pipeline,
        score_threshold=None,
    )
    return {
        pl.VECTOR_PIPELINE: build_pipeline(spec, plan, side, query_vector, where=where),
        pl.FULLTEXT_PIPELINE: build_pipeline(spec, plan, replace(side, search_mode="fulltext"), None, query, where),
    }
