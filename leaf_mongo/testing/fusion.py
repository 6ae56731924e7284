"""``$rankFusion`` and ``$scoreFusion`` for the emulator, as the MongoDB manual documents them.

Both stages run each named input pipeline on the same collection, de-duplicate by ``_id`` (a document
appears once, as the first pipeline that returned it has it) and sort by the fused score:

- ``$rankFusion`` (reference/operator/aggregation/rankFusion): reciprocal rank fusion,
  ``score = Σ weight_p × 1 / (60 + rank_p)`` over the pipelines that returned the document (rank is
  1-based), weights default 1 and must be non-negative;
- ``$scoreFusion`` (reference/operator/aggregation/scoreFusion, MongoDB 8.2): each pipeline's score
  (``{$meta: "score"}`` of its ``$search``/``$vectorSearch``) normalized (``none``, ``sigmoid`` or
  ``minMaxScaler`` over that pipeline's results), weighted, and averaged over all input pipelines
  (a pipeline that did not return the document contributes 0); or, with ``combination.method:
  "expression"``, combined by an arithmetic ``combination.expression`` in which ``$$<pipeline name>`` is that
  pipeline's normalized score (mutually exclusive with ``weights``).

``{$meta: "score"}`` then reads the fused score and ``{$meta: "scoreDetails"}`` (with
``scoreDetails: true``) its per-pipeline breakdown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import mongomock
from bson import ObjectId, encode
from mongomock import aggregate as mongomock_aggregate

from leaf_mongo.testing.docs import copy_doc
from leaf_mongo.testing.errors import (
    MISSING_REQUIRED_FIELD,
    STAGE_NOT_ONE_FIELD,
    TYPE_MISMATCH,
    UNKNOWN_FIELD,
    CommandError,
    failed_to_parse,
)
from leaf_mongo.testing.meta import HIDDEN_FIELDS, SCORE_DETAILS_FIELD, SCORE_FIELD, SEARCH_DETAILS_FIELD

RANK_CONSTANT = 60  # "reciprocal rank fusion ... 1 / (60 + rank)"
SCORED_FIRST_STAGES = ("$search", "$vectorSearch", "$rankFusion", "$scoreFusion")
RANKED_FIRST_STAGES = (*SCORED_FIRST_STAGES, "$geoNear")
SELECTION_STAGES = frozenset(
    {"$search", "$vectorSearch", "$geoNear", "$match", "$sort", "$sample", "$limit", "$skip",
     "$rankFusion", "$scoreFusion"}
)  # fmt: skip
NORMALIZATIONS = ("none", "sigmoid", "minMaxScaler")

RunPipeline = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def _check_keys(doc: Mapping[str, Any], allowed: set[str], ctx: str) -> None:
    for key in doc:
        if key not in allowed:
            raise CommandError(f"BSON field '{ctx}.{key}' is an unknown field.", UNKNOWN_FIELD)


def _pipelines(stage: str, arg: Any, input_keys: set[str]) -> dict[str, list[dict[str, Any]]]:
    if not isinstance(arg, Mapping):
        raise failed_to_parse(f"{stage} must take a nested object")
    if "input" not in arg:
        raise CommandError(f"BSON field '{stage}.input' is missing but a required field", MISSING_REQUIRED_FIELD)
    inp = arg["input"]
    if not isinstance(inp, Mapping):
        raise failed_to_parse(f"{stage}.input must be an object")
    _check_keys(inp, input_keys, f"{stage}.input")
    pipelines = inp.get("pipelines")
    if not isinstance(pipelines, Mapping) or not pipelines:
        raise failed_to_parse(f"{stage} input must have at least one pipeline in input.pipelines")
    out: dict[str, list[dict[str, Any]]] = {}
    for name, pipeline in pipelines.items():
        if not isinstance(name, str) or not name or name.startswith("$") or "." in name or "\0" in name:
            raise failed_to_parse(
                f"{stage} pipeline names must be non-empty strings, must not start with '$' and must not "
                f"contain '.', got {name!r}"
            )
        if not isinstance(pipeline, list) or not pipeline:
            raise failed_to_parse(f"{stage} input pipeline {name!r} must be a non-empty array of stages")
        for s in pipeline:
            if not isinstance(s, Mapping) or len(s) != 1:
                raise CommandError(
                    "A pipeline stage specification object must contain exactly one field.", STAGE_NOT_ONE_FIELD
                )
            stage_name = next(iter(s))
            if stage_name not in SELECTION_STAGES:
                raise failed_to_parse(
                    f"{stage} input pipeline {name!r} has stage {stage_name}, which is not allowed: input "
                    "pipelines may only retrieve and order documents, not modify them"
                )
        out[name] = pipeline
    return out


def _weights(stage: str, arg: Mapping[str, Any], names: list[str], extra: set[str]) -> tuple[dict[str, float], Any]:
    combination = arg.get("combination", {})
    if not isinstance(combination, Mapping):
        raise failed_to_parse(f"{stage}.combination must be an object")
    _check_keys(combination, {"weights", *extra}, f"{stage}.combination")
    raw = combination.get("weights", {})
    if not isinstance(raw, Mapping):
        raise failed_to_parse(f"{stage}.combination.weights must be an object")
    weights = dict.fromkeys(names, 1.0)
    for name, value in raw.items():
        if name not in weights:
            raise failed_to_parse(
                f"{stage}.combination.weights has a weight for {name!r}, which is not an input pipeline "
                f"(pipelines: {', '.join(names)})"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise failed_to_parse(f"{stage} weight for pipeline {name!r} must be a non-negative number, got {value!r}")
        weights[name] = float(value)
    return weights, combination


def _score_details_flag(stage: str, arg: Mapping[str, Any]) -> bool:
    flag = arg.get("scoreDetails", False)
    if not isinstance(flag, bool):
        raise CommandError(f"BSON field '{stage}.scoreDetails' is the wrong type, expected type 'bool'", TYPE_MISMATCH)
    return flag


def _first_by_id(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[Any] = set()
    out = []
    for d in docs:
        key = _id_key(d.get("_id"))
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def _id_key(value: Any) -> Any:
    """A hashable key equal for equal ``_id`` values (type-tagged: 1 and "1" differ, as in BSON)."""
    if isinstance(value, (str, int, float, bytes, ObjectId)) and not isinstance(value, bool):
        return (type(value).__name__, value)
    return ("bson", encode({"v": value}))


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    """The output copy of a document (input pipelines hand over stored documents uncopied)."""
    return {k: copy_doc(v) for k, v in doc.items() if k not in HIDDEN_FIELDS}


def rank_fusion(arg: Any, run: RunPipeline, limit: int | None = None) -> list[dict[str, Any]]:
    """Documents of ``$rankFusion``, best first, with the score and details in the hidden meta fields.

    ``limit`` (a ``$limit`` right after the stage) only saves building documents that would be dropped.
    """
    _check_keys(arg if isinstance(arg, Mapping) else {}, {"input", "combination", "scoreDetails"}, "$rankFusion")
    pipelines = _pipelines("$rankFusion", arg, {"pipelines"})
    weights, _ = _weights("$rankFusion", arg, list(pipelines), set())
    details = _score_details_flag("$rankFusion", arg)
    for name, pipeline in pipelines.items():
        first = next(iter(pipeline[0]))
        if first not in RANKED_FIRST_STAGES and not any("$sort" in s for s in pipeline):
            raise failed_to_parse(
                f"$rankFusion input pipeline {name!r} must be ranked: begin with $search, $vectorSearch or "
                "$geoNear, or contain a $sort stage"
            )
    fused: dict[Any, dict[str, Any]] = {}
    order: list[Any] = []
    for name, pipeline in pipelines.items():
        for rank, doc in enumerate(_first_by_id(run(pipeline)), start=1):
            key = _id_key(doc.get("_id"))
            entry = fused.get(key)
            if entry is None:
                entry = fused[key] = {"doc": doc, "score": 0.0, "per": {}}
                order.append(key)
            entry["score"] += weights[name] * (1.0 / (RANK_CONSTANT + rank))
            entry["per"][name] = (rank, doc)
    ranked = sorted(order, key=lambda k: -fused[k]["score"])
    out = []
    for key in ranked[:limit] if limit else ranked:
        entry = fused[key]
        doc = _clean(entry["doc"])
        doc[SCORE_FIELD] = entry["score"]
        if details:
            doc[SCORE_DETAILS_FIELD] = {
                "value": entry["score"],
                "description": (
                    "value output by reciprocal rank fusion algorithm, computed as sum of (weight * (1 / (60 "
                    "+ rank))) across input pipelines from which this document is output, from:"
                ),
                "details": [_rank_detail(n, weights[n], entry["per"].get(n)) for n in pipelines],
            }
        out.append(doc)
    return out


def _rank_detail(name: str, weight: float, hit: tuple[int, dict[str, Any]] | None) -> dict[str, Any]:
    """One input pipeline's part of ``scoreDetails`` (rank 0: the pipeline did not return the document)."""
    if hit is None:
        return {"inputPipelineName": name, "rank": 0, "weight": weight}
    rank, doc = hit
    out: dict[str, Any] = {"inputPipelineName": name, "rank": rank, "weight": weight}
    if doc.get(SCORE_FIELD) is not None:
        out["value"] = doc[SCORE_FIELD]
    out["details"] = [doc[SEARCH_DETAILS_FIELD]] if doc.get(SEARCH_DETAILS_FIELD) else []
    return out


def _normalized(scores: list[float], method: str) -> list[float]:
    if method == "none":
        return scores
    if method == "sigmoid":
        return [1.0 / (1.0 + math.exp(-s)) for s in scores]
    lo, hi = min(scores, default=0.0), max(scores, default=0.0)
    return [1.0 if hi == lo else (s - lo) / (hi - lo) for s in scores]


def score_fusion(arg: Any, run: RunPipeline) -> list[dict[str, Any]]:
    """Documents of ``$scoreFusion`` (combination ``avg`` or ``expression``), best first."""
    _check_keys(arg if isinstance(arg, Mapping) else {}, {"input", "combination", "scoreDetails"}, "$scoreFusion")
    pipelines = _pipelines("$scoreFusion", arg, {"pipelines", "normalization"})
    normalization = arg["input"].get("normalization")
    if normalization is None:
        raise CommandError(
            "BSON field '$scoreFusion.input.normalization' is missing but a required field", MISSING_REQUIRED_FIELD
        )
    if normalization not in NORMALIZATIONS:
        raise failed_to_parse(f"$scoreFusion.input.normalization must be one of [{', '.join(NORMALIZATIONS)}]")
    weights, combination = _weights("$scoreFusion", arg, list(pipelines), {"method", "expression"})
    expression = _combination_expression(combination)
    details = _score_details_flag("$scoreFusion", arg)
    for name, pipeline in pipelines.items():
        if next(iter(pipeline[0])) not in SCORED_FIRST_STAGES:
            raise failed_to_parse(
                f"$scoreFusion input pipeline {name!r} must be scored: begin with $search or $vectorSearch "
                "(or add a $score stage, which the leaf-mongo emulator does not support)"
            )
    fused: dict[Any, dict[str, Any]] = {}
    order: list[Any] = []
    n = len(pipelines)
    for name, pipeline in pipelines.items():
        docs = _first_by_id(run(pipeline))
        raw = [float(d.get(SCORE_FIELD) or 0.0) for d in docs]
        for doc, r, s in zip(docs, raw, _normalized(raw, normalization), strict=True):
            key = _id_key(doc.get("_id"))
            entry = fused.get(key)
            if entry is None:
                entry = fused[key] = {"doc": _clean(doc), "sum": 0.0, "per": {}}
                order.append(key)
            entry["sum"] += weights[name] * s
            entry["per"][name] = {
                "inputPipelineName": name,
                "inputPipelineRawScore": r,
                "weight": weights[name],
                "value": s,
                "details": [doc[SEARCH_DETAILS_FIELD]] if doc.get(SEARCH_DETAILS_FIELD) else [],
            }
    for entry in fused.values():
        if expression is None:
            entry["score"] = entry["sum"] / n
        else:  # $$<name>: the pipeline's normalized score, 0 where it did not return the document
            scores = {name: entry["per"][name]["value"] if name in entry["per"] else 0.0 for name in pipelines}
            entry["score"] = _evaluate(expression, scores)
    ranked = sorted(order, key=lambda k: -fused[k]["score"])
    out = []
    for key in ranked:
        entry = fused[key]
        doc = entry["doc"]
        score = entry["score"]
        doc[SCORE_FIELD] = score
        if details:
            doc[SCORE_DETAILS_FIELD] = {
                "value": score,
                "description": "the value calculated by combining the scores (either normalized or raw) across "
                "input pipelines from which this document is output from:",
                "normalization": normalization,
                "combination": (
                    {"method": "average"}
                    if expression is None
                    else {"method": "custom expression", "expression": expression}
                ),
                "details": [entry["per"].get(p, {"inputPipelineName": p, "weight": weights[p]}) for p in pipelines],
            }
        out.append(doc)
    return out


def _combination_expression(combination: Mapping[str, Any]) -> Any:
    """``combination.expression`` of ``$scoreFusion`` (None for ``method: "avg"``, the default)."""
    method = combination.get("method", "avg")
    if method not in ("avg", "expression"):
        raise failed_to_parse("$scoreFusion.combination.method must be one of [avg, expression]")
    expression = combination.get("expression")
    if method == "expression":
        if expression is None:
            raise failed_to_parse(
                "$scoreFusion.combination.expression is required when combination.method is 'expression'"
            )
        if "weights" in combination:
            raise failed_to_parse("$scoreFusion.combination: weights and expression are mutually exclusive")
    elif expression is not None:
        raise failed_to_parse(
            "$scoreFusion.combination.expression is only used when combination.method is 'expression'"
        )
    return expression


def _evaluate(expression: Any, scores: dict[str, float]) -> float:
    """``combination.expression`` with each pipeline's score bound to ``$$<pipeline name>`` (mongomock's
    aggregation-expression evaluator); the result must be a number, as the fused score is."""
    try:
        value = mongomock_aggregate._Parser({}, user_vars=scores).parse(expression)
    except (mongomock.OperationFailure, NotImplementedError, KeyError, TypeError) as exc:
        raise failed_to_parse(f"$scoreFusion.combination.expression could not be evaluated: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise failed_to_parse(f"$scoreFusion.combination.expression must evaluate to a number, got {value!r}")
    return float(value)
