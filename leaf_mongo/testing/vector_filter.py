"""The ``$vectorSearch`` pre-filter, parsed the way mongot parses it before anything is evaluated.

Sources (github.com/mongodb/mongot, ``src/main/java/com/xgen/mongot/index/query/``):
``operators/value/Value.java`` (a value is a boolean, ObjectId, number, string,
date, UUID or null: an embedded document or an array is an error),
``operators/mql/SimpleClause.java`` (a document without ``$`` keys is the
short-form ``$eq``), ``operators/mql/InOperator.java`` / ``NinOperator.java``
(non-empty lists of non-null values of one type), ``operators/mql/
OpenRangeBoundComparisonOperator.java`` (range bounds are scalar points, not
null), ``operators/mql/ExistsOperator.java`` (a boolean). Matching itself is
done by mongomock on the documents once the filter has passed these checks.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import bson
from bson.binary import Binary

from leaf_mongo.testing.errors import bad_value, unknown_error

CLAUSE_OPERATORS = ("$and", "$or", "$nor")
FIELD_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$lt", "$gte", "$lte", "$in", "$nin", "$exists", "$not"})
RANGE_OPERATORS = frozenset({"$gt", "$lt", "$gte", "$lte"})
VALUE_TYPES = "boolean, objectId, number, string, date, uuid, or null"


def check_filter(flt: dict[str, Any], filter_paths: set[str]) -> None:
    """Raise what mongot raises for ``flt``: parse errors first, then unindexed paths."""
    _clause(flt, "filter")
    _check_paths(flt, filter_paths)


def _clause(doc: Any, ctx: str) -> None:
    if not isinstance(doc, dict):
        raise bad_value(f'"{ctx}" must be a document')
    for key, value in doc.items():
        if key in CLAUSE_OPERATORS:
            if not isinstance(value, list) or not value:
                raise bad_value(f"{key} must be a nonempty array")
            for i, sub in enumerate(value):
                _clause(sub, f"{ctx}.{key}[{i}]")
        elif key.startswith("$"):
            raise bad_value(f"Operator {key} is not supported in a $vectorSearch filter")
        elif isinstance(value, dict) and any(k.startswith("$") for k in value):
            _operators(value, f"{ctx}.{key}")
        else:
            _value_type(value, f"{ctx}.{key}")  # short-form $eq


def _operators(ops: dict[str, Any], ctx: str) -> None:
    for op, arg in ops.items():
        where = f"{ctx}.{op}"
        if not op.startswith("$"):
            raise bad_value(f'"{ctx}" unrecognized field "{op}"')
        if op not in FIELD_OPERATORS:
            raise bad_value(f"Operator {op} is not supported in a $vectorSearch filter (path '{ctx}')")
        if op in ("$eq", "$ne"):
            _value_type(arg, where)
        elif op in RANGE_OPERATORS:
            kind = _value_type(arg, where)
            if kind == "null":
                raise bad_value(f'"{where}" Type is not supported: NULL')
        elif op in ("$in", "$nin"):
            if not isinstance(arg, list):
                raise bad_value(f'"{where}" must be an array')
            if not arg:
                raise bad_value(f'"{where}" cannot be empty')
            kinds = {_value_type(v, f"{where}[{i}]") for i, v in enumerate(arg)}
            if "null" in kinds:
                raise bad_value(f'"{where}" value type cannot be null')
            if len(kinds) > 1:
                raise bad_value(f'"{where}" must have elements of the same type')
        elif op == "$exists":
            if not isinstance(arg, bool):
                raise bad_value(f'"{where}" must be a boolean')
        else:  # $not
            if not isinstance(arg, dict) or not arg or not all(k.startswith("$") for k in arg):
                raise bad_value(f'"{where}" must be a document of operators')
            _operators(arg, ctx)


def _value_type(value: Any, ctx: str) -> str:
    """mongot's ValueType of a BSON value, or the parse error it raises."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, bson.ObjectId):
        return "objectId"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dt.datetime):
        return "date"
    if isinstance(value, str):
        return "string"
    if isinstance(value, uuid.UUID):
        return "uuid"
    if isinstance(value, Binary):
        if value.subtype != 4:
            raise bad_value(f'"{ctx}" binary value must be UUID subtype 4')
        return "uuid"
    raise bad_value(f'"{ctx}" must be a {VALUE_TYPES}')


def _check_paths(flt: dict[str, Any], filter_paths: set[str]) -> None:
    for key, value in flt.items():
        if key in CLAUSE_OPERATORS:
            for sub in value:
                _check_paths(sub, filter_paths)
        elif key not in filter_paths:
            raise unknown_error(f"Path '{key}' needs to be indexed as {_filter_type(value)}")


def _filter_type(value: Any) -> str:
    """Name of the index type mongot asks for ("token" for strings, reference §4)."""
    sample = value
    if isinstance(value, dict):
        sample = next(iter(value.values()), None)
    if isinstance(sample, list):
        sample = sample[0] if sample else None
    if isinstance(sample, str):
        return "token"
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, (int, float)):
        return "number"
    if isinstance(sample, dt.datetime):
        return "date"
    if isinstance(sample, bson.ObjectId):
        return "objectId"
    return "filter"
