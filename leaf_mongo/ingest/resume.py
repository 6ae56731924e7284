"""Progress inside a file, so a killed run resumes where the last durably written window ended.

One document per (collection, source) in ``leaf_mongo_progress`` says: every chunk of the file version
``key`` up to chunk ``next_chunk`` (the chunks of records before ``next_record``) is written. The writer
thread saves it strictly after those chunk writes, so it never claims more than is stored. ``key`` hashes
the content hash with everything that decides chunk numbering (teacher, chunk size and overlap, record size
limit): a changed file or changed chunking starts over, and the finished file's manifest entry replaces
the progress document. Chunks written after the last checkpoint are found by ``_id`` (ids are deterministic)
and not encoded again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pymongo.collection import Collection

PROGRESS_COLLECTION = "leaf_mongo_progress"


@dataclass(frozen=True)
class Checkpoint:
    next_record: int = 0
    next_chunk: int = 0


def progress_key(content_hash: str, teacher: str, chunk_size: int, chunk_overlap: int, max_record_bytes: int) -> str:
    raw = f"{content_hash}\x00{teacher}\x00{chunk_size}\x00{chunk_overlap}\x00{max_record_bytes}"
    return hashlib.sha1(raw.encode()).hexdigest()


def progress_collection(collection: Collection[Any]) -> Collection[Any]:
    return collection.database[PROGRESS_COLLECTION]


def _pid(collection: Collection[Any], source: str) -> str:
    return f"{collection.name}\x00{source}"


def load_checkpoint(collection: Collection[Any], source: str, key: str) -> Checkpoint | None:
    """The saved progress of this file version, or None (not started, or another version)."""
    doc = progress_collection(collection).find_one({"_id": _pid(collection, source)})
    if doc is None or doc.get("key") != key:
        return None
    return Checkpoint(int(doc["next_record"]), int(doc["next_chunk"]))


def save_checkpoint(collection: Collection[Any], source: str, key: str, checkpoint: Checkpoint) -> None:
    pid = _pid(collection, source)
    progress_collection(collection).replace_one(
        {"_id": pid},
        {
            "_id": pid,
            "collection": collection.name,
            "source": source,
            "key": key,
            "next_record": checkpoint.next_record,
            "next_chunk": checkpoint.next_chunk,
        },
        upsert=True,
    )


def clear_checkpoint(collection: Collection[Any], source: str) -> None:
    progress_collection(collection).delete_one({"_id": _pid(collection, source)})


def clear_all(collection: Collection[Any], sources: list[str] | None = None) -> None:
    """Forget progress of every file of ``collection`` (``--recreate``), or of ``sources`` (``--prune``)."""
    flt: dict[str, Any] = {"collection": collection.name}
    if sources is not None:
        flt["source"] = {"$in": sources}
    progress_collection(collection).delete_many(flt)
