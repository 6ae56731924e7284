"""Documents as the emulator holds them: mongomock's store, copies, and the values at a dotted path.

mongomock keeps a collection's documents in ``collection._store._documents`` (store key -> document) and
filters them with ``collection._iter_documents``; neither is public API, so :func:`stored_documents` and
:func:`matching_documents` are the only places outside :mod:`leaf_mongo.testing.id_lookup` (which
subclasses mongomock's collection) that read them.

:func:`values_at` is the one reading of "the values at a path" shared by ``$search`` (mongot indexes every
value at a path, arrays included) and ``$lookup`` (``localField``). It follows mongod's
``document_path_support::visitAllValuesAtPath`` (``src/mongo/db/pipeline/document_path_support.cpp``): an
array on the way is looked through for sub-documents, an array at the end contributes its elements, and
arrays directly inside arrays are not expanded (``{a: [[{b: 1}]]}`` has no value at ``a.b``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from mongomock import helpers as mm_helpers

# mongomock ships pymongo-shaped stubs that do not describe its internals (_store, _iter_documents).
MockCollection = Any


def store_key(_id: Any) -> Any:
    """Key mongomock uses for a document in its store (dicts are not hashable)."""
    return mm_helpers.hashdict(_id) if isinstance(_id, dict) else _id


def stored_documents(coll: MockCollection) -> dict[Any, dict[str, Any]]:
    """The collection's documents by store key: mongomock's own dict, neither copied nor to be modified."""
    documents: dict[Any, dict[str, Any]] = coll._store._documents
    return documents


def matching_documents(coll: MockCollection, query: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Stored documents that match ``query`` (mongomock's matcher; ``_id`` equality by key, see id_lookup)."""
    spec = mm_helpers.patch_datetime_awareness_in_document(query)
    documents: Iterator[dict[str, Any]] = coll._iter_documents(spec)
    return documents


def copy_doc(value: Any) -> Any:
    """A copy of a stored document deep enough for pipeline stages to modify (dicts and lists are new;
    scalars, BSON binaries and ObjectIds are immutable and shared): ~10x faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: copy_doc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_doc(v) for v in value]
    return value


def values_at(doc: Mapping[str, Any], path: str) -> list[Any]:
    """Every value at a dotted path, looking through arrays of sub-documents (see the module docstring)."""
    current: list[Any] = [doc]
    for part in path.split("."):
        nxt: list[Any] = []
        for item in current:
            items = item if isinstance(item, list) else [item]
            for it in items:
                if isinstance(it, Mapping) and part in it:
                    nxt.append(it[part])
        current = nxt
    out: list[Any] = []
    for v in current:
        out.extend(v if isinstance(v, list) else [v])
    return out


def is_int(value: Any) -> bool:
    """An integral number as the server reads one: an int or a whole double, never a boolean."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
