"""LEAF embedding models for MongoDB vector search.

Documents are embedded once by a large teacher model; queries are embedded on the spot, on a CPU, by a small
"leaf" model distilled into the teacher's space. One :class:`VectorSpec` drives the index definition, the
stored vectors and the query vectors.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from leaf_mongo._version import __version__ as __version__
from leaf_mongo.errors import (
    FilterError,
    InputError,
    LeafMongoError,
    ModelLoadError,
    SearchIndexError,
    ServerError,
    SettingsError,
    SpecMismatchError,
)
from leaf_mongo.ingest import IngestReport, ingest
from leaf_mongo.models.encoders import VectorEncoder
from leaf_mongo.models.resolve import spec_from_settings
from leaf_mongo.redact import redact_uri
from leaf_mongo.settings import LeafMongoSettings, load_settings
from leaf_mongo.spec import VectorSpec
from leaf_mongo.spec.index import (
    ensure_fulltext_index,
    ensure_vector_index,
    fulltext_index_definition,
    vector_index_definition,
    wait_for_search_index,
    wait_for_vector_index,
)
from leaf_mongo.spec.profiles import PROFILES, QUERY_PROMPT, Profile
from leaf_mongo.spec.store import aload_spec, load_spec, save_spec

# LangChain-based parts load on first access. (The ingest function is imported eagerly: a lazy import of a
# function named like its module would hand out the module once ``leaf_mongo.ingest`` is imported.)
_LAZY = {
    "LeafRetriever": "leaf_mongo.query.retriever",
    "LeafEmbeddings": "leaf_mongo.query.embeddings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'leaf_mongo' has no attribute {name!r}")


__all__ = [
    "PROFILES",
    "QUERY_PROMPT",
    "FilterError",
    "InputError",
    "LeafMongoError",
    "LeafMongoSettings",
    "LeafEmbeddings",
    "LeafRetriever",
    "IngestReport",
    "ModelLoadError",
    "Profile",
    "SearchIndexError",
    "ServerError",
    "SettingsError",
    "SpecMismatchError",
    "VectorEncoder",
    "VectorSpec",
    "aload_spec",
    "ensure_fulltext_index",
    "ensure_vector_index",
    "fulltext_index_definition",
    "ingest",
    "load_settings",
    "load_spec",
    "redact_uri",
    "save_spec",
    "spec_from_settings",
    "vector_index_definition",
    "wait_for_search_index",
    "wait_for_vector_index",
]
