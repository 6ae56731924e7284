"""The ``$vectorSearch`` engine: argument validation as mongot does it, pre-filter checks, exact top-k.

Scores come from :mod:`leaf_mongo.testing.vectors` (per-path numpy matrices);
the pre-filter is checked against the index's ``filter`` paths and operators
(reference §4) and then evaluated with mongomock's matcher.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import bson
from mongomock import helpers as mm_helpers
from mongomock.filtering import filter_applies

from leaf_mongo.testing.errors import CommandError, bad_value
from leaf_mongo.testing.state import BackendState, MockCollection, _is_int
from leaf_mongo.testing.vectors import matrix_for, parse_query_vector, score_matrix, top_k

SCORE_FIELD = "__leaf_emulator_vector_search_score"
FILTER_OPERATORS = frozenset(
    {"$eq", "$ne", "$gt", "$lt", "$gte", "$lte", "$in", "$nin", "$exists", "$not", "$nor", "$and", "$or"}
)
VECTOR_SEARCH_KEYS = frozenset(
    {"index", "path", "queryVector", "numCandidates", "limit", "filter", "exact", "explainOptions"}
)


def vector_search(state: BackendState, db: str, coll: MockCollection, spec: Any) -> list[dict[str, Any]]:
    """Documents for a ``$vectorSearch`` stage, best first, each carrying its score in ``SCORE_FIELD``."""
    if not isinstance(spec, dict):
        raise CommandError("$vectorSearch must take a nested object", 9)
    for key in spec:
        if key not in VECTOR_SEARCH_KEYS:
            raise CommandError(f"BSON field '$vectorSearch.{key}' is an unknown field.", 40415)
    for key in ("index", "path", "queryVector", "limit"):
        if key not in spec:
            raise CommandError(f'"$vectorSearch.{key}" is required', 9)
    index_name, path = spec["index"], spec["path"]
    if not isinstance(index_name, str):
        raise CommandError('"$vectorSearch.index" must be a string', 14)
    if not isinstance(path, str):
        raise CommandError('"$vectorSearch.path" must be a string', 14)
    limit = spec["limit"]
    if not _is_int(limit) or int(limit) < 1:
        raise bad_value(f'"$vectorSearch.limit" must be a positive integer, got {limit!r}')
    limit = int(limit)
    exact = spec.get("exact", False)
    if not isinstance(exact, bool):
        raise CommandError('"$vectorSearch.exact" must be a boolean', 14)
    if exact:
        if "numCandidates" in spec:
            raise bad_value('"numCandidates" must be omitted when "exact" is set to true')
    else:
        if "numCandidates" not in spec:
            raise bad_value("numCandidates is required for approximate vector search")
        nc = spec["numCandidates"]
        if not _is_int(nc) or not 1 <= int(nc) <= 10_000:
            raise bad_value(f'"$vectorSearch.numCandidates" must be within bounds [1, 10000], got {nc!r}')
        if limit > int(nc):
            raise bad_value("limit should be less than or equal to numCandidates")
    query = parse_query_vector(spec["queryVector"])
    flt = spec.get("filter")
    if flt is not None and not isinstance(flt, dict):
        raise CommandError('"$vectorSearch.filter" must be a document', 14)

    idx = state._search_indexes.get((db, coll.name), {}).get(index_name)
    if idx is None or idx.type != "vectorSearch":
        return []  # "the index does not exist, respond with empty information" (mongot)
    if not idx.queryable:
        raise CommandError(f"cannot query vector index {index_name} while in state {idx.internal_state}", 8)
    vfield = idx.vector_fields().get(path)
    if vfield is None:
        raise CommandError(f"{path} is not indexed as vector", 8)
    if query.kind == "bit" and vfield.similarity != "euclidean":
        raise CommandError(
            "Binary vectors can only be used with fields indexed with Euclidean similarity but indexed "
            f"similarity is {vfield.similarity}",
            8,
        )
    if query.dim != vfield.num_dimensions:
        raise CommandError(
            f"vector field is indexed with {vfield.num_dimensions} dimensions but queried with {query.dim}", 8
        )
    if vfield.similarity == "cosine" and query.kind != "bit" and not query.values.any():
        raise CommandError("Cosine similarity cannot be calculated against a zero vector.", 8)
    if flt:
        _check_filter(flt, idx.filter_paths())

    matrix = matrix_for(vfield, state._vectors.get((db, coll.name), {}).get(path), query)
    if matrix is None or matrix.used == 0:
        return []
    scores = score_matrix(vfield, matrix, query)
    docs = coll._store._documents
    allowed = None
    if flt:
        spec_f = mm_helpers.patch_datetime_awareness_in_document(flt)
        allowed = {key for key, doc in docs.items() if filter_applies(spec_f, doc)}
    out: list[dict[str, Any]] = []
    for key, score in top_k(scores, matrix.keys, limit, allowed):
        doc = copy.deepcopy(docs[key])
        doc[SCORE_FIELD] = score
        out.append(doc)
    return out


def _check_filter(flt: dict[str, Any], filter_paths: set[str]) -> None:
    """Reject what mongot rejects in a ``$vectorSearch`` pre-filter (reference §4)."""
    for key, value in flt.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, list) or not value:
                raise bad_value(f"{key} must be a nonempty array")
            for sub in value:
                if not isinstance(sub, dict):
                    raise bad_value(f"{key} entries must be documents")
                _check_filter(sub, filter_paths)
        elif key.startswith("$"):
            raise bad_value(f"Operator {key} is not supported in a $vectorSearch filter")
        else:
            if key not in filter_paths:
                raise CommandError(f"Path '{key}' needs to be indexed as {_filter_type(value)}", 8)
            if isinstance(value, dict) and any(k.startswith("$") for k in value):
                _check_operators(key, value)


def _check_operators(path: str, ops: dict[str, Any]) -> None:
    for op, arg in ops.items():
        if op not in FILTER_OPERATORS or op in ("$and", "$or", "$nor"):
            raise bad_value(f"Operator {op} is not supported in a $vectorSearch filter (path '{path}')")
        if op == "$not":
            if not isinstance(arg, dict):
                raise bad_value("$not needs a document of operators")
            _check_operators(path, arg)
        if op in ("$in", "$nin") and not isinstance(arg, list):
            raise bad_value(f"{op} needs an array")


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
