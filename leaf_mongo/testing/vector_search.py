"""The ``$vectorSearch`` engine: argument validation as mongot does it, pre-filter checks, exact top-k.

Scores come from :mod:`leaf_mongo.testing.vector_store` (per-path numpy matrices);
the pre-filter is checked against the index's ``filter`` paths and operators
(reference §4) and then evaluated with mongomock's matcher.
"""

from __future__ import annotations

from typing import Any

from mongomock import helpers as mm_helpers
from mongomock.filtering import filter_applies

from leaf_mongo.testing.docs import MockCollection, copy_doc, is_int, stored_documents
from leaf_mongo.testing.errors import (
    TYPE_MISMATCH,
    CommandError,
    bad_value,
    failed_to_parse,
    not_implemented,
    unknown_error,
)
from leaf_mongo.testing.meta import SCORE_FIELD, VECTOR_SCORE_FIELD
from leaf_mongo.testing.state import BackendState
from leaf_mongo.testing.stored_source import stored_document, stores_anything
from leaf_mongo.testing.vector_filter import check_filter
from leaf_mongo.testing.vector_store import matrix_for, parse_query_vector, score_matrix, top_k

# Fields mongot knows but the emulator does not implement: refused rather than silently ignored.
# Any other unknown field is ignored, as mongot parses with unknown fields allowed
# (server/command/search/VectorSearchCommand.java: allowUnknownFields(true)).
UNSUPPORTED_KEYS = {
    "parentFilter": "nested vector search (nestedRoot indexes, parentFilter)",
    "nestedOptions": "nested vector search (nestedRoot indexes, nestedOptions)",
    "query": "auto-embedding queries (query.text with an autoEmbed index)",
    "model": "auto-embedding queries (model with an autoEmbed index)",
}


def vector_search(
    state: BackendState, db: str, coll: MockCollection, spec: Any, copy_docs: bool = True
) -> list[dict[str, Any]]:
    """Documents for a ``$vectorSearch`` stage, best first, each carrying its score in the hidden meta fields."""
    if not isinstance(spec, dict):
        raise failed_to_parse("$vectorSearch must take a nested object")
    for key, what in UNSUPPORTED_KEYS.items():
        if key in spec:
            raise not_implemented(f"{what} is not supported by the leaf-mongo emulator (emulator limitation)")
    for key in ("index", "path", "queryVector", "limit"):
        if key not in spec:
            raise failed_to_parse(f'"$vectorSearch.{key}" is required')
    index_name, path = spec["index"], spec["path"]
    if not isinstance(index_name, str):
        raise CommandError('"$vectorSearch.index" must be a string', TYPE_MISMATCH)
    if not index_name:
        raise bad_value('"index" cannot be empty')  # VectorSearchQuery.java: stringField().mustNotBeEmpty()
    if not isinstance(path, str):
        raise CommandError('"$vectorSearch.path" must be a string', TYPE_MISMATCH)
    limit = spec["limit"]
    if not is_int(limit) or int(limit) < 1:
        raise bad_value(f'"$vectorSearch.limit" must be a positive integer, got {limit!r}')
    limit = int(limit)
    exact = spec.get("exact", False)
    if not isinstance(exact, bool):
        raise CommandError('"$vectorSearch.exact" must be a boolean', TYPE_MISMATCH)
    if exact:
        if "numCandidates" in spec:
            raise bad_value('"numCandidates" must be omitted when "exact" is set to true')
    else:
        if "numCandidates" not in spec:
            raise bad_value("numCandidates is required for approximate vector search")
        nc = spec["numCandidates"]
        if not is_int(nc) or not 1 <= int(nc) <= 10_000:
            raise bad_value(f'"$vectorSearch.numCandidates" must be within bounds [1, 10000], got {nc!r}')
        if limit > int(nc):
            raise bad_value("limit should be less than or equal to numCandidates")
    query = parse_query_vector(spec["queryVector"])
    flt = spec.get("filter")
    if flt is not None and not isinstance(flt, dict):
        raise CommandError('"$vectorSearch.filter" must be a document', TYPE_MISMATCH)
    return_stored = spec.get("returnStoredSource", False)
    if not isinstance(return_stored, bool):
        raise CommandError('"returnStoredSource" must be a boolean', TYPE_MISMATCH)

    idx = state._search_indexes.get((db, coll.name), {}).get(index_name)
    if idx is None or idx.type != "vectorSearch":
        return []  # "the index does not exist, respond with empty information" (mongot)
    if not idx.queryable:
        raise unknown_error(f"cannot query vector index {index_name} while in state {idx.internal_state}")
    vfield = idx.vector_fields().get(path)
    if vfield is None:
        raise unknown_error(f"{path} is not indexed as vector")
    if query.kind == "bit" and vfield.similarity != "euclidean":
        raise unknown_error(
            "Binary vectors can only be used with fields indexed with Euclidean similarity but indexed "
            f"similarity is {vfield.similarity}"
        )
    if query.dim != vfield.num_dimensions:
        raise unknown_error(
            f"vector field is indexed with {vfield.num_dimensions} dimensions but queried with {query.dim}"
        )
    if vfield.similarity == "cosine" and query.kind != "bit" and not query.values.any():
        raise unknown_error("Cosine similarity cannot be calculated against a zero vector.")
    if flt:
        check_filter(flt, idx.filter_paths())
    stored = (idx.active_normalized or {}).get("storedSource", False)
    if return_stored and not stores_anything(stored):
        raise unknown_error("storedSource is not configured for this index.")

    matrix = matrix_for(vfield, state._vectors.get((db, coll.name), {}).get(path), query)
    if matrix is None or matrix.used == 0:
        return []
    scores = score_matrix(vfield, matrix, query)
    docs = stored_documents(coll)
    allowed = None
    if flt:
        spec_f = mm_helpers.patch_datetime_awareness_in_document(flt)
        allowed = {key for key, doc in docs.items() if filter_applies(spec_f, doc)}
    out: list[dict[str, Any]] = []
    for key, score in top_k(scores, matrix.keys, limit, allowed):
        doc = (
            stored_document(docs[key], stored)
            if return_stored
            else (copy_doc(docs[key]) if copy_docs else dict(docs[key]))
        )
        doc[VECTOR_SCORE_FIELD] = score
        doc[SCORE_FIELD] = score  # {$meta: "score"} reads any search stage's score
        out.append(doc)
    return out
