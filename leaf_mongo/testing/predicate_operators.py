"""The ``$search`` operators that test values rather than score text: ``equals``, ``in``, ``range``, ``exists``.

mongot answers them from typed Lucene fields (token, number, boolean, date, objectId) and scores every
match a constant 1. Here they are evaluated on the stored documents, for the paths the index maps with a
type that fits the query value (an unmapped path matches nothing, like a Lucene field that does not
exist; a dynamic mapping maps every non-token type). Values compare as BSON does within a type: booleans
only equal booleans, numbers compare across int and double, a ``token`` field with the ``lowercase``
normalizer compares strings case-insensitively.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

from bson import ObjectId

from leaf_mongo.testing.docs import values_at
from leaf_mongo.testing.errors import unknown_error
from leaf_mongo.testing.search_context import Context, Matches, check_keys, details

ALL_KINDS = frozenset({"token", "number", "boolean", "date", "objectId"})


def equals(ctx: Context, spec: Mapping[str, Any]) -> Matches:
    check_keys(spec, {"path", "value", "score"}, "equals")
    _require(spec, ("path", "value"), "equals")
    path, value = spec["path"], spec["value"]
    if not _typed(ctx, path, _value_kinds(value, "equals"), "equals"):
        return {}
    return _predicate(ctx, path, _matcher(ctx, path, value), f"{path}:{value!r}")


def in_(ctx: Context, spec: Mapping[str, Any]) -> Matches:
    check_keys(spec, {"path", "value", "score"}, "in")
    _require(spec, ("path", "value"), "in")
    path, raw = spec["path"], spec["value"]
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise unknown_error('"in.value" must not be empty')
    kinds = set().union(*(_value_kinds(v, "in") for v in values))
    if len({k for k in kinds if k != "number"} | ({"number"} if "number" in kinds else set())) > 1:
        raise unknown_error('"in.value" must contain values of a single type')
    if not _typed(ctx, path, kinds, "in"):
        return {}
    tests = [_matcher(ctx, path, v) for v in values]
    return _predicate(ctx, path, lambda v: any(t(v) for t in tests), f"{path}:in")


def range_(ctx: Context, spec: Mapping[str, Any]) -> Matches:
    check_keys(spec, {"path", "gt", "gte", "lt", "lte", "score"}, "range")
    if "path" not in spec:
        raise unknown_error('"range.path" is required')
    bounds = {k: spec[k] for k in ("gt", "gte", "lt", "lte") if k in spec}
    if not bounds:
        raise unknown_error('"range" must have at least one of [gt, gte, lt, lte]')
    if "gt" in bounds and "gte" in bounds or "lt" in bounds and "lte" in bounds:
        raise unknown_error('"range" cannot combine gt with gte, or lt with lte')
    kinds = set().union(*(_value_kinds(v, "range") for v in bounds.values()))
    path = spec["path"]
    if not _typed(ctx, path, kinds, "range"):
        return {}
    numeric = kinds == {"number"}

    def inside(v: Any) -> bool:
        if isinstance(v, bool):
            return False
        if numeric:
            if not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)):
                return False
        elif not all(type(v) is type(b) for b in bounds.values()):
            return False
        return (
            ("gt" not in bounds or v > bounds["gt"])
            and ("gte" not in bounds or v >= bounds["gte"])
            and ("lt" not in bounds or v < bounds["lt"])
            and ("lte" not in bounds or v <= bounds["lte"])
        )

    return _predicate(ctx, path, inside, f"{path}:range")


def exists(ctx: Context, spec: Mapping[str, Any]) -> Matches:
    check_keys(spec, {"path", "score"}, "exists")
    path = spec.get("path")
    if not isinstance(path, str):
        raise unknown_error('"exists.path" is required and must be a string')
    indexed = path in ctx.ix.string_paths or path in ctx.ix.plan.typed or ctx.ix.plan.dynamic
    if not indexed:
        return {}
    return _predicate(ctx, path, lambda v: v is not None, f"exists:{path}")


def _require(spec: Mapping[str, Any], keys: tuple[str, ...], op: str) -> None:
    for key in keys:
        if key not in spec:
            raise unknown_error(f'"{op}.{key}" is required')


def _typed(ctx: Context, path: Any, kinds: set[str], op: str) -> bool:
    """Whether the index maps ``path`` with a type a value of ``kinds`` can match."""
    if not isinstance(path, str):
        raise unknown_error(f'"{op}.path" must be a string')
    return bool(ctx.ix.plan.typed.get(path, set()) & kinds) or (ctx.ix.plan.dynamic and "token" not in kinds)


def _predicate(ctx: Context, path: str, test: Callable[[Any], bool], desc: str) -> Matches:
    out: Matches = {}
    for doc_id in list(ctx.ix.all_ids()):
        doc = ctx.ix.doc_for(doc_id)
        if doc is not None and any(test(v) for v in values_at(doc, path)):
            out[doc_id] = (1.0, details(1.0, desc) if ctx.explain else None)
    return out


def _value_kinds(value: Any, op: str) -> set[str]:
    """The field types a query value can match (null matches any)."""
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, (int, float)):
        return {"number"}
    if isinstance(value, str):
        return {"token"}
    if isinstance(value, dt.datetime):
        return {"date"}
    if isinstance(value, ObjectId):
        return {"objectId"}
    if value is None:
        return set(ALL_KINDS)
    raise unknown_error(f'"{op}.value" has an unsupported type {type(value).__name__}')


def _matcher(ctx: Context, path: str, value: Any) -> Callable[[Any], bool]:
    lower = path in ctx.ix.plan.token_lowercase

    def same(v: Any) -> bool:
        if isinstance(value, bool) or isinstance(v, bool):
            return isinstance(v, bool) and isinstance(value, bool) and v == value
        if isinstance(value, str) and isinstance(v, str) and lower:
            return v.lower() == value.lower()
        if isinstance(value, (int, float)) and isinstance(v, (int, float)):
            return float(v) == float(value)
        return type(v) is type(value) and v == value

    return same
