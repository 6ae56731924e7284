"""The ``$vectorSearch`` engine: argument validation as mongot does it, pre-filter checks, exact top-k.

Scores come from :mod:`leaf_mongo.testing.vector_store` (per-path numpy matrices);
the pre-filter is checked against the index's ``filter`` paths and operators
(reference §4) and then evaluated with mongomock's matcher.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mongomock import helpers as mm_helpers
from mongomock.filtering import filter_applies

from leaf_mongo.testing.autoembed_query import embed_query_text, parse_query_input
from leaf_mongo.testing.autoembed_store import AutoEmbedVectors
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
from leaf_mongo.testing.search_index import SearchIndex
from leaf_mongo.testing.state import BackendState
from leaf_mongo.testing.stored_source import stored_document, stores_anything
from leaf_mongo.testing.vector_filter import check_filter
from leaf_mongo.testing.vector_store import (
    ParsedVector,
    VectorField,
    matrix_for,
    parse_query_vector,
    score_matrix,
    top_k,
)

# Fields mongot knows but the emulator does not implement: refused rather than silently ignored.
# Any other unknown field is ignored, as mongot parses with unknown fields allowed
# (server/command/search/VectorSearchCommand.java: allowUnknownFields(true)).
UNSUPPORTED_KEYS = {
    "parentFilter": "nested vector search (nestedRoot indexes, parentFilter)",
    "nestedOptions": "nested vector search (nestedRoot indexes, nestedOptions)",
}


@dataclass(frozen=True)
class VectorQuery:
    """A ``$vectorSearch`` argument once it has passed mongot's checks."""

    index: str
    path: str
    limit: int
    vector: ParsedVector | None  # None when the query is text (``query``) for an autoEmbed index to embed
    filter: dict[str, Any] | None
    return_stored_source: bool
    text: str | None = None
    model: str | None = None


def vector_search(
    state: BackendState, db: str, coll: MockCollection, arg: Any, copy_docs: bool = True
) -> list[dict[str, Any]]:
    """Documents for a ``$vectorSearch`` stage, best first, each carrying its score in the hidden meta fields."""
    q = parse_stage(arg)
    idx = state._search_indexes.get((db, coll.name), {}).get(q.index)
    if idx is None or idx.type != "vectorSearch":
        return []  # "the index does not exist, respond with empty information" (mongot)
    if q.text is not None:
        q = dataclasses.replace(q, vector=embed_query_text(state, idx, q.path, q.text, q.model))
    vfield, stored = _check_against_index(q, idx)
    assert q.vector is not None
    store = state._vectors.get((db, coll.name), {}).get(vfield.store or q.path)
    if isinstance(store, AutoEmbedVectors):
        store.catch_up()  # documents the provider failed on are retried before the index is read
    matrix = matrix_for(vfield, store, q.vector)
    if matrix is None or matrix.used == 0:
        return []
    scores = score_matrix(vfield, matrix, q.vector)
    docs = stored_documents(coll)
    allowed = None
    if q.filter:
        spec_f = mm_helpers.patch_datetime_awareness_in_document(q.filter)
        allowed = {key for key, doc in docs.items() if filter_applies(spec_f, doc)}
    out: list[dict[str, Any]] = []
    for key, score in top_k(scores, matrix.keys, q.limit, allowed):
        if q.return_stored_source:
            doc = stored_document(docs[key], stored)
        elif copy_docs:
            doc = copy_doc(docs[key])
        else:
            doc = dict(docs[key])
        doc[VECTOR_SCORE_FIELD] = score
        doc[SCORE_FIELD] = score  # {$meta: "score"} reads any search stage's score
        out.append(doc)
    return out


def parse_stage(arg: Any) -> VectorQuery:
    """Check a ``$vectorSearch`` argument on its own, as mongot does before it looks at the index."""
    if not isinstance(arg, dict):
        raise failed_to_parse("$vectorSearch must take a nested object")
    for key, what in UNSUPPORTED_KEYS.items():
        if key in arg:
            raise not_implemented(f"{what} is not supported by the leaf-mongo emulator (emulator limitation)")
    for key in ("index", "path", "limit"):
        if key not in arg:
            raise failed_to_parse(f'"$vectorSearch.{key}" is required')
    text, model = parse_query_input(arg)
    index_name, path = arg["index"], arg["path"]
    if not isinstance(index_name, str):
        raise CommandError('"$vectorSearch.index" must be a string', TYPE_MISMATCH)
    if not index_name:
        raise bad_value('"index" cannot be empty')  # VectorSearchQuery.java: stringField().mustNotBeEmpty()
    if not isinstance(path, str):
        raise CommandError('"$vectorSearch.path" must be a string', TYPE_MISMATCH)
    limit = arg["limit"]
    if not is_int(limit) or int(limit) < 1:
        raise bad_value(f'"$vectorSearch.limit" must be a positive integer, got {limit!r}')
    limit = int(limit)
    exact = arg.get("exact", False)
    if not isinstance(exact, bool):
        raise CommandError('"$vectorSearch.exact" must be a boolean', TYPE_MISMATCH)
    if exact:
        if "numCandidates" in arg:
            raise bad_value('"numCandidates" must be omitted when "exact" is set to true')
    else:
        _check_num_candidates(arg, limit)
    vector = parse_query_vector(arg["queryVector"]) if text is None else None
    flt = arg.get("filter")
    if flt is not None and not isinstance(flt, dict):
        raise CommandError('"$vectorSearch.filter" must be a document', TYPE_MISMATCH)
    return_stored = arg.get("returnStoredSource", False)
    if not isinstance(return_stored, bool):
        raise CommandError('"returnStoredSource" must be a boolean', TYPE_MISMATCH)
    return VectorQuery(index_name, path, limit, vector, flt, return_stored, text, model)


def _check_num_candidates(arg: dict[str, Any], limit: int) -> None:
    if "numCandidates" not in arg:
        raise bad_value("numCandidates is required for approximate vector search")
    nc = arg["numCandidates"]
    if not is_int(nc) or not 1 <= int(nc) <= 10_000:
        raise bad_value(f'"$vectorSearch.numCandidates" must be within bounds [1, 10000], got {nc!r}')
    if limit > int(nc):
        raise bad_value("limit should be less than or equal to numCandidates")


def _check_against_index(q: VectorQuery, idx: SearchIndex) -> tuple[VectorField, Any]:
    """The vector field ``q`` searches and the index's ``storedSource``, or mongot's error for the pair."""
    if not idx.queryable:
        raise unknown_error(f"cannot query vector index {q.index} while in state {idx.internal_state}")
    vfield = idx.vector_fields().get(q.path)
    if vfield is None or q.vector is None:
        raise unknown_error(f"{q.path} is not indexed as vector")
    if q.vector.kind == "bit" and vfield.similarity != "euclidean":
        raise unknown_error(
            "Binary vectors can only be used with fields indexed with Euclidean similarity but indexed "
            f"similarity is {vfield.similarity}"
        )
    if q.vector.dim != vfield.num_dimensions:
        raise unknown_error(
            f"vector field is indexed with {vfield.num_dimensions} dimensions but queried with {q.vector.dim}"
        )
    if vfield.similarity == "cosine" and q.vector.kind != "bit" and not q.vector.values.any():
        raise unknown_error("Cosine similarity cannot be calculated against a zero vector.")
    if q.filter:
        check_filter(q.filter, idx.filter_paths())
    stored = (idx.active_normalized or {}).get("storedSource", False)
    if q.return_stored_source and not stores_anything(stored):
        raise unknown_error("storedSource is not configured for this index.")
    return vfield, stored
