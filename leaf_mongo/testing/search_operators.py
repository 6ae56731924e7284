"""The ``$search`` operator tree: which operators exist, how one is dispatched, and how they combine.

Each operator yields {doc id: (score, details)} (:data:`~leaf_mongo.testing.search_context.Matches`),
combined as mongot's query factories combine Lucene queries: ``compound`` sums ``must`` and ``should``
scores, ``filter`` and ``mustNot`` do not score, only-``mustNot`` matches every other document, only
``should`` clauses need at least one match (``CompoundQueryFactory.java``); every operator's ``score``
option then boosts or replaces its scores. The leaf operators live in
:mod:`~leaf_mongo.testing.text_operators` (``text``, ``phrase``, ``wildcard``, scored by tantivy) and
:mod:`~leaf_mongo.testing.predicate_operators` (``equals``, ``in``, ``range``, ``exists``, constant 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from leaf_mongo.testing.errors import not_implemented, unknown_error
from leaf_mongo.testing.predicate_operators import equals, exists, in_, range_
from leaf_mongo.testing.search_context import Context, Matches, check_keys, details
from leaf_mongo.testing.text_operators import phrase, text, wildcard

Operator = Callable[[Context, Mapping[str, Any]], Matches]
UNSUPPORTED_OPERATORS = frozenset(
    {"autocomplete", "embeddedDocument", "geoShape", "geoWithin", "knnBeta", "moreLikeThis", "near",
     "queryString", "regex", "span", "hasAncestor", "hasRoot", "vectorSearch"}
)  # fmt: skip
COMPOUND_CLAUSES = ("must", "should", "filter", "mustNot")


def evaluate(ctx: Context, op: Any) -> Matches:
    """The matches of one operator document (``{<name>: {...}}``), its ``score`` option applied."""
    if not isinstance(op, Mapping) or len(op) != 1:
        raise unknown_error('"$search" operator must be a document with exactly one operator')
    name, spec = next(iter(op.items()))
    if name in UNSUPPORTED_OPERATORS:
        raise not_implemented(f"$search operator {name!r} is not supported by the leaf-mongo emulator")
    if name not in OPERATORS:
        raise unknown_error(f'"{name}" is not a valid operator')
    if not isinstance(spec, Mapping):
        raise unknown_error(f'"{name}" must be a document')
    return _apply_score(OPERATORS[name](ctx, spec), spec.get("score"), name)


def compound(ctx: Context, spec: Mapping[str, Any]) -> Matches:
    check_keys(spec, {*COMPOUND_CLAUSES, "minimumShouldMatch", "score"}, "compound")
    parts: dict[str, list[Matches]] = {}
    for clause in COMPOUND_CLAUSES:
        if clause in spec:
            raw = spec[clause]
            ops = raw if isinstance(raw, list) else [raw]
            if not ops:
                raise unknown_error(f'"compound.{clause}" must not be empty')
            parts[clause] = [evaluate(ctx, o) for o in ops]
    if not parts:
        raise unknown_error('"compound" must have at least one of [must, mustNot, should, filter]')
    msm = spec.get("minimumShouldMatch", 0)
    if isinstance(msm, bool) or not isinstance(msm, int) or msm < 0:
        raise unknown_error('"compound.minimumShouldMatch" must be a non-negative integer')
    should = parts.get("should", [])
    if msm > len(should):
        return {}
    required = parts.get("must", []) + parts.get("filter", [])
    if not required and should and msm == 0:
        msm = 1  # only SHOULD clauses: at least one must match (Lucene BooleanQuery)
    if required:
        candidates = set(required[0])
        for m in required[1:]:
            candidates &= set(m)
    elif should:
        candidates = set().union(*should)
    else:
        candidates = set(ctx.ix.all_ids())  # only mustNot: every document not excluded
    for m in parts.get("mustNot", []):
        candidates -= set(m)
    out: Matches = {}
    for doc_id in candidates:
        matched_should = [m[doc_id] for m in should if doc_id in m]
        if len(matched_should) < msm:
            continue
        scored = [m[doc_id] for m in parts.get("must", [])] + matched_should
        value = float(sum(s for s, _ in scored))
        explained = None
        if ctx.explain:
            explained = details(value, "sum of:", [d for _, d in scored if d is not None])
        out[doc_id] = (value, explained)
    return out


def _apply_score(matches: Matches, score: Any, op: str) -> Matches:
    """The ``score`` option of an operator: ``boost.value`` multiplies, ``constant.value`` replaces."""
    if score is None:
        return matches
    if not isinstance(score, Mapping) or len(score) != 1:
        raise unknown_error(f'"{op}.score" must have exactly one of [boost, constant]')
    kind, opts = next(iter(score.items()))
    if kind not in ("boost", "constant") or not isinstance(opts, Mapping) or "value" not in opts:
        raise not_implemented(f'"{op}.score.{kind}" is not supported by the leaf-mongo emulator')
    value = opts["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise unknown_error(f'"{op}.score.{kind}.value" must be a positive number')
    out: Matches = {}
    for doc_id, (s, d) in matches.items():
        new = s * float(value) if kind == "boost" else float(value)
        explained = None
        if d is not None:
            explained = details(new, f"{kind} {value}", [d] if d else None)
        out[doc_id] = (new, explained)
    return out


OPERATORS: dict[str, Operator] = {
    "text": text,
    "phrase": phrase,
    "wildcard": wildcard,
    "compound": compound,
    "equals": equals,
    "in": in_,
    "range": range_,
    "exists": exists,
}
