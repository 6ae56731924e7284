"""Corrections to mongomock's query and expression evaluation where it differs from mongod (applied on import).

mongomock is the emulator's storage and matcher; where it answers differently from mongod the emulator must
not pass that on. Each correction below is one mongod behaviour, found by MongoDB's own driver specification
tests (``scripts/driver_spec_suite.py``):

* ``{$type: "null"}`` (or 10) matches a field that holds null (mongomock raised NotImplementedError);
* a field missing from a document, read by an aggregation comparison (``$eq``, ``$ne``, ``$gt``, ...), is
  *missing*: equal only to another missing value and lower than every value, null included (mongomock
  raised KeyError, e.g. for ``{$expr: {$eq: ["$name", "$$name"]}}`` over a document without ``name``);
* ``$sum``, ``$avg``, ``$min``, ``$max``, ``$first``, ``$last`` given one expression (``{$sum: {$map: ...}}``)
  apply to the array it evaluates to (mongomock iterated the expression document's keys: a sum of 0);
* ``$replaceWith`` is ``$replaceRoot`` with the new root given directly (mongomock had only the latter);
* ``$setField``, ``$getField`` and ``$unsetField`` (field names with ``$`` or ``.``) are refused as an
  emulator limitation rather than reported as unknown expressions.
"""

from __future__ import annotations

from typing import Any

from mongomock import aggregate as mm_aggregate
from mongomock import filtering as mm_filtering

__all__ = ["apply"]

FIELD_NAME_OPERATORS = ("$setField", "$getField", "$unsetField")


class _Missing:
    """A field absent from the document, as an aggregation expression sees it."""


MISSING = _Missing()


def _is_null(value: Any) -> bool:
    return value is None


def _compare(self: Any, operator: str, values: Any) -> Any:
    assert len(values) == 2, "Comparison requires two expressions"
    a, b = (_parse_or_missing(self, v) for v in values)
    if a is MISSING or b is MISSING:
        rank_a, rank_b = int(a is not MISSING), int(b is not MISSING)  # missing sorts below everything
        if operator == "$eq":
            return a is b
        if operator == "$ne":
            return a is not b
        if operator in mm_filtering.SORTING_OPERATOR_MAP:
            return mm_filtering.SORTING_OPERATOR_MAP[operator](rank_a, rank_b)
    return _ORIGINAL_COMPARE(self, operator, [_literal(a), _literal(b)])


def _parse_or_missing(parser: Any, expression: Any) -> Any:
    try:
        return parser.parse(expression)
    except KeyError:
        return MISSING


def _literal(value: Any) -> Any:
    return {"$literal": value}


def _project_operator(self: Any, operator: str, values: Any) -> Any:
    if operator in mm_aggregate._GROUPING_OPERATOR_MAP and isinstance(values, (str, dict)):
        try:
            parsed = self.parse(values)
        except KeyError:  # a missing field: nothing to accumulate
            parsed = []
        items = parsed if isinstance(parsed, list) else [parsed]
        return mm_aggregate._GROUPING_OPERATOR_MAP[operator](items)
    return _ORIGINAL_PROJECT(self, operator, values)


def _parse(self: Any, expression: Any) -> Any:
    if isinstance(expression, dict):
        for name in FIELD_NAME_OPERATORS:
            if name in expression:
                raise NotImplementedError(
                    f"{name} (field names with '$' or '.', MongoDB 5.0+) is not supported by the leaf-mongo "
                    "emulator (emulator limitation)"
                )
    return _ORIGINAL_PARSE(self, expression)


_ORIGINAL_COMPARE = mm_aggregate._Parser._handle_comparison_operator
_ORIGINAL_PARSE = mm_aggregate._Parser.parse
_ORIGINAL_PROJECT = mm_aggregate._Parser._handle_project_operator


def _replace_with(in_collection: Any, database: Any, options: Any) -> Any:
    return mm_aggregate._handle_replace_root_stage(in_collection, database, {"newRoot": options})


def apply() -> None:
    """Install the corrections (idempotent)."""
    mm_aggregate._PIPELINE_HANDLERS["$replaceWith"] = _replace_with
    mm_filtering.TYPE_MAP["null"] = _is_null
    mm_aggregate._Parser._handle_comparison_operator = _compare  # type: ignore[method-assign]
    mm_aggregate._Parser.parse = _parse  # type: ignore[method-assign]
    mm_aggregate._Parser._handle_project_operator = _project_operator  # type: ignore[method-assign]


apply()
