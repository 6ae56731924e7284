"""Pre-filters: validated once, applied to both sides of a search.

The ``$vectorSearch`` filter language is a subset of MQL (reference §4). The same filter restricts the
full-text side as ``$search`` ``compound.filter`` clauses on the same fields (``equals``, ``in``,
``range``, ``exists``, nested ``compound`` for ``$and``/``$or``/``$nor``/``$not``), so a hybrid search never
fuses a filtered list with an unfiltered one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from leaf_mongo.errors import FilterError

FIELD_OPERATORS = ("$eq", "$ne", "$gt", "$lt", "$gte", "$lte", "$in", "$nin", "$exists", "$not")
LOGICAL_OPERATORS = ("$and", "$or", "$nor")
ALLOWED_OPERATORS = FIELD_OPERATORS + LOGICAL_OPERATORS  # the whole $vectorSearch filter language (reference §4)
RANGE_OPERATORS = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}


def _allowed_list() -> str:
    return " ".join(ALLOWED_OPERATORS)


def check_filter_operators(flt: Any, path: str = "pre_filter") -> None:
    """Reject what ``$vectorSearch`` rejects in a filter, without knowing the declared fields.

    Runs at construction (and per call), so a bad operator never costs a model load or a round trip.
    """
    if not isinstance(flt, Mapping):
        raise FilterError(f"{path} must be a JSON object / dict, got {type(flt).__name__}")
    for key, value in flt.items():
        if not isinstance(key, str):
            raise FilterError(f"{path}: keys must be strings, got {key!r}")
        if key in LOGICAL_OPERATORS:
            if not isinstance(value, (list, tuple)) or not value:
                raise FilterError(f"{path}: {key} needs a non-empty list of filters")
            for i, sub in enumerate(value):
                check_filter_operators(sub, f"{path}.{key}[{i}]")
        elif key.startswith("$"):
            raise FilterError(
                f"{path}: operator {key!r} is not supported by $vectorSearch filters "
                f"(at top level only $and $or $nor); allowed operators: {_allowed_list()}"
            )
        else:
            _check_field_value(key, value, path)


def _check_field_value(field: str, value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        ops = list(value)
        if not ops or not all(isinstance(op, str) and op.startswith("$") for op in ops):
            raise FilterError(
                f"{path}: field {field!r} is compared with an embedded document; $vectorSearch filters take "
                f"a value or operators ({_allowed_list()})"
            )
        for op in ops:
            arg = value[op]
            if op not in FIELD_OPERATORS:
                raise FilterError(
                    f"{path}: operator {op!r} on field {field!r} is not supported by $vectorSearch filters; "
                    f"allowed operators: {_allowed_list()}"
                )
            if op == "$not":
                if not isinstance(arg, Mapping):
                    raise FilterError(f"{path}: $not on field {field!r} needs a document of operators")
                _check_field_value(field, arg, path)
            elif op in ("$in", "$nin") and not isinstance(arg, (list, tuple)):
                raise FilterError(f"{path}: {op} on field {field!r} needs a list")
            elif op == "$exists" and not isinstance(arg, bool):
                raise FilterError(f"{path}: $exists on field {field!r} needs true or false")


def filter_fields_used(flt: Mapping[str, Any]) -> list[str]:
    """The document fields a (structurally valid) filter refers to."""
    out: list[str] = []
    for key, value in flt.items():
        if key in LOGICAL_OPERATORS:
            for sub in value:
                out.extend(filter_fields_used(sub))
        else:
            out.append(key)
    return out


def validate_pre_filter(flt: Mapping[str, Any], filter_fields: Sequence[str], where: str = "the collection") -> None:
    """Operators and fields: only fields declared as ``filter`` in the index can be filtered on."""
    check_filter_operators(flt)
    allowed = ", ".join(filter_fields) or "(none)"
    for field in filter_fields_used(flt):
        if field not in filter_fields:
            raise FilterError(
                f"pre_filter field {field!r} is not a filter field of {where}; allowed: {allowed} "
                "(declare more with LEAF_MONGO_FILTER_FIELDS and re-run ingest)"
            )


# ---------------------------------------------------------------------------------------------- $search


def search_filter_clauses(flt: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A validated pre-filter as ``$search`` operators for ``compound.filter`` (all must hold)."""
    out: list[dict[str, Any]] = []
    for key, value in flt.items():
        if key == "$and":
            out.append({"compound": {"filter": [_one(sub) for sub in value]}})
        elif key == "$or":
            out.append({"compound": {"should": [_one(sub) for sub in value], "minimumShouldMatch": 1}})
        elif key == "$nor":
            out.append({"compound": {"mustNot": [_one(sub) for sub in value]}})
        else:
            out.extend(_field_clauses(key, value))
    return out


def _one(flt: Mapping[str, Any]) -> dict[str, Any]:
    clauses = search_filter_clauses(flt)
    return clauses[0] if len(clauses) == 1 else {"compound": {"filter": clauses}}


def _equals(path: str, value: Any) -> dict[str, Any]:
    if isinstance(value, (list, tuple, Mapping)):
        raise FilterError(f"pre_filter: field {path!r} compared with an array or document cannot be searched")
    return {"equals": {"path": path, "value": value}}


def _field_clauses(path: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, Mapping):
        return [_equals(path, value)]
    out: list[dict[str, Any]] = []
    bounds = {RANGE_OPERATORS[op]: arg for op, arg in value.items() if op in RANGE_OPERATORS}
    if bounds:
        out.append({"range": {"path": path, **bounds}})
    for op, arg in value.items():
        if op == "$eq":
            out.append(_equals(path, arg))
        elif op == "$ne":
            out.append({"compound": {"mustNot": [_equals(path, arg)]}})
        elif op == "$in":
            out.append({"in": {"path": path, "value": list(arg)}})
        elif op == "$nin":
            out.append({"compound": {"mustNot": [{"in": {"path": path, "value": list(arg)}}]}})
        elif op == "$exists":
            exists = {"exists": {"path": path}}
            out.append(exists if arg else {"compound": {"mustNot": [exists]}})
        elif op == "$not":
            inner = _field_clauses(path, arg)
            out.append({"compound": {"mustNot": [inner[0] if len(inner) == 1 else {"compound": {"filter": inner}}]}})
    return out
