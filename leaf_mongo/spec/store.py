"""The spec persisted beside the collection, so later runs and retrievers can detect a mismatch.

It lives in a small side collection (``leaf_mongo_specs``, one document per vector collection) rather than
in the chunk collection, so LangChain tools that scan the chunks never see it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from leaf_mongo._version import __version__
from leaf_mongo.spec.vector_spec import VectorSpec

SPEC_COLLECTION = "leaf_mongo_specs"


def spec_collection(database: Any) -> Any:
    """The side collection (works for pymongo sync/async databases and Motor)."""
    return database[SPEC_COLLECTION]


def _spec_from(doc: dict[str, Any] | None) -> VectorSpec | None:
    return VectorSpec.from_document(doc["spec"]) if doc and "spec" in doc else None


def load_spec(collection: Any) -> VectorSpec | None:
    """The spec stored for a pymongo ``Collection`` (None when nothing was ingested yet)."""
    return _spec_from(spec_collection(collection.database).find_one({"_id": collection.name}))


async def aload_spec(collection: Any) -> VectorSpec | None:
    """Async twin of :func:`load_spec` for ``AsyncCollection`` and Motor collections."""
    return _spec_from(await spec_collection(collection.database).find_one({"_id": collection.name}))


def save_spec(collection: Any, spec: VectorSpec, index_name: str, fulltext_index_name: str | None = None) -> None:
    """Store (or replace) the spec of ``collection`` (and the names of its indexes)."""

    now = dt.datetime.now(dt.timezone.utc)
    spec_collection(collection.database).update_one(
        {"_id": collection.name},
        {
            "$set": {
                "spec": spec.to_document(),
                "index_name": index_name,
                "fulltext_index_name": fulltext_index_name if spec.fulltext_fields else None,
                "leaf_mongo": __version__,
                "updated_at": now,
            },
            "$setOnInsert": {"created_at": now},
        },
        upsert=True,
    )


def delete_spec(collection: Any) -> None:
    spec_collection(collection.database).delete_one({"_id": collection.name})
