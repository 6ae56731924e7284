"""Convergence state of a collection: which version of each source file is complete (the manifest), and the
index that makes replacing, discarding and pruning a file's chunks cheap.

The manifest entry is the last write of a file (after its chunks, after the deletes of its other versions), so
it never claims a version that is not wholly stored; progress inside a file is :mod:`leaf_mongo.ingest.resume`.
"""

from __future__ import annotations

import time
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from leaf_mongo.ingest.resume import clear_checkpoint
from leaf_mongo.ingest.windows import FileJob

MANIFEST_COLLECTION = "leaf_mongo_files"
SOURCE_INDEX = "leaf_mongo_source"
"""B-tree index on (source, content_hash): replacing, discarding and pruning a file's chunks filter on them, and
without it every finished file costs a collection scan on a real server (hours at millions of chunks)."""
INDEX_OPTIONS_CONFLICT = 85
"""Server code for an index on the same key under another name: that index serves as well."""


def manifest_collection(collection: Collection[Any]) -> Collection[Any]:
    return collection.database[MANIFEST_COLLECTION]


def manifest_id(collection: Collection[Any], source: str) -> str:
    return f"{collection.name}\x00{source}"


def known_versions(collection: Collection[Any]) -> dict[str, str]:
    """source → content hash of its completely written version."""
    entries = manifest_collection(collection).find({"collection": collection.name}, {"source": 1, "content_hash": 1})
    return {m["source"]: m["content_hash"] for m in entries}


def ensure_source_index(collection: Collection[Any]) -> None:
    """Idempotent (``createIndexes`` with the same key and name is a no-op)."""
    try:
        collection.create_index([("source", 1), ("content_hash", 1)], name=SOURCE_INDEX)
    except OperationFailure as exc:
        if exc.code != INDEX_OPTIONS_CONFLICT:
            raise


def finalize_file(collection: Collection[Any], job: FileJob) -> int:
    """After every chunk of the version is written: drop other versions, then set the manifest entry.

    Returns the number of chunks deleted. Runs on the writer thread, strictly after the version's writes.
    """
    source = job.file.relpath
    deleted = collection.delete_many(
        {"source": source, "$or": [{"content_hash": {"$ne": job.content_hash}}, {"chunk": {"$gte": job.chunks}}]}
    )
    mid = manifest_id(collection, source)
    manifest_collection(collection).replace_one(
        {"_id": mid},
        {
            "_id": mid,
            "collection": collection.name,
            "source": source,
            "content_hash": job.content_hash,
            "chunks": job.chunks,
            "size": job.file.size,
            "ingested_at": time.time(),
        },
        upsert=True,
    )
    clear_checkpoint(collection, source)
    return int(deleted.deleted_count)


def forget_sources(collection: Collection[Any], sources: list[str]) -> None:
    """Drop the manifest entries of pruned sources."""
    ids = [manifest_id(collection, s) for s in sources]
    manifest_collection(collection).delete_many({"_id": {"$in": ids}})
