"""The vector spec and what derives from it without a model: stored and query vectors, the persisted spec,
the search index definitions, and the published profiles.

Pure contract, below ``models/``: resolving settings into a spec, which may need to read a model, lives in
:mod:`leaf_mongo.models.resolve`.
"""

from leaf_mongo.spec.index import (
    check_fulltext_index,
    check_vector_index,
    ensure_fulltext_index,
    ensure_vector_index,
    fulltext_index_definition,
    vector_index_definition,
    wait_for_search_index,
    wait_for_vector_index,
)
from leaf_mongo.spec.profiles import PROFILES, QUERY_PROMPT, Profile
from leaf_mongo.spec.store import aload_spec, delete_spec, load_spec, save_spec
from leaf_mongo.spec.vector_spec import FULLTEXT_FIELDS, MAX_DIMENSIONS, SPEC_VERSION, VectorSpec, resolved_teacher

__all__ = [
    "FULLTEXT_FIELDS",
    "MAX_DIMENSIONS",
    "PROFILES",
    "QUERY_PROMPT",
    "SPEC_VERSION",
    "Profile",
    "VectorSpec",
    "aload_spec",
    "check_fulltext_index",
    "check_vector_index",
    "delete_spec",
    "ensure_fulltext_index",
    "ensure_vector_index",
    "fulltext_index_definition",
    "load_spec",
    "resolved_teacher",
    "save_spec",
    "vector_index_definition",
    "wait_for_search_index",
    "wait_for_vector_index",
]
