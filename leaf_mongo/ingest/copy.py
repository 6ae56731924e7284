"""Copy an ingested collection between deployments (the local store, a server, Atlas) without re-embedding.

What travels: every chunk as stored (text, metadata, vectors), the manifest entries of the collection's files
(so an ingest into the target skips what is already there), the B-tree index on (source, content_hash), the
``vectorSearch`` and ``search`` indexes (built from the spec, as ingest builds them), and last the spec itself.

Why it is idempotent and resumable: chunk ids are derived from (source, chunk number, file content hash)
(:func:`leaf_mongo.ingest.windows.chunk_id`) and the spec must be equal on both sides, so a chunk id present in
the target is that very chunk with those very vectors. A run writes only the ids the target lacks, deletes the
target's chunks the source no longer has, and a run killed anywhere is finished by the next one. The spec is
written last, so a target a copy has not finished is never presented as complete. In-flight ingest progress
(``leaf_mongo_progress``) is not copied: a file the source had not finished is ingested again into the target.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pymongo import DeleteMany, ReplaceOne
from pymongo.collection import Collection

from leaf_mongo.errors import InputError, SpecMismatchError
from leaf_mongo.ingest.manifest import ensure_source_index, manifest_collection, manifest_id
from leaf_mongo.spec.index import ensure_fulltext_index, ensure_vector_index, wait_for_search_index
from leaf_mongo.spec.store import load_spec, spec_collection

OnEvent = Callable[[str, dict[str, Any]], None]


@dataclass
class CopyReport:
    """What a copy did; ``to_json()`` for ``--json``."""

    source: str
    target: str
    chunks: int = 0
    written: int = 0
    deleted: int = 0
    manifest_entries: int = 0
    indexes: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def copy_collection(source: Collection[Any], target: Collection[Any], *, batch_size: int = 500,
                    index_wait: float = 180.0, on_event: OnEvent | None = None) -> CopyReport:  # fmt: skip
    """Make ``target`` hold what ``source`` holds (see the module docstring); safe to re-run after any kill."""
    started = time.monotonic()
    emit = on_event or (lambda event, data: None)
    report = CopyReport(source.full_name, target.full_name)
    spec_doc = _check_specs(source, target)
    present = {doc["_id"] for doc in target.find({}, {"_id": 1})}
    seen: set[Any] = set()
    for batch in _batches(source.find({}), batch_size):
        seen.update(doc["_id"] for doc in batch)
        todo = [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in batch if doc["_id"] not in present]
        if todo:
            target.bulk_write(todo, ordered=False)
        report.chunks += len(batch)
        report.written += len(todo)
        emit("chunks_copied", {"chunks": report.chunks, "written": report.written})
    extra = list(present - seen)
    for start in range(0, len(extra), batch_size):
        target.delete_many({"_id": {"$in": extra[start : start + batch_size]}})
    report.deleted = len(extra)
    report.manifest_entries = _copy_manifest(source, target)
    ensure_source_index(target)
    report.indexes = _copy_indexes(target, spec_doc, index_wait, emit)
    saved = {k: v for k, v in spec_doc.items() if k != "_id"}
    spec_collection(target.database).replace_one({"_id": target.name}, {"_id": target.name, **saved}, upsert=True)
    report.seconds = round(time.monotonic() - started, 3)
    emit("finished", report.to_json())
    return report


def _check_specs(source: Collection[Any], target: Collection[Any]) -> dict[str, Any]:
    """The source's stored spec document; refused when the target holds chunks of another spec."""
    spec = load_spec(source)
    doc = spec_collection(source.database).find_one({"_id": source.name})
    if spec is None or doc is None:
        raise InputError(f"{source.full_name} holds no leaf-mongo collection (no stored spec): ingest into it first")
    other = load_spec(target)
    conflicts = spec.storage_conflicts(other) if other is not None else []
    if conflicts and target.estimated_document_count() > 0:
        raise SpecMismatchError(
            f"{target.full_name} holds vectors made with another spec ({'; '.join(conflicts)}): copy into another "
            "collection (--to-collection) or drop that one first"
        )
    return dict(doc)


def _batches(cursor: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for doc in cursor:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _copy_manifest(source: Collection[Any], target: Collection[Any]) -> int:
    """The target's manifest entries for this collection become the source's (renamed to the target)."""
    entries = []
    for entry in manifest_collection(source).find({"collection": source.name}):
        entry.update(_id=manifest_id(target, entry["source"]), collection=target.name)
        entries.append(entry)
    ops: list[Any] = [DeleteMany({"collection": target.name, "_id": {"$nin": [e["_id"] for e in entries]}})]
    ops += [ReplaceOne({"_id": e["_id"]}, e, upsert=True) for e in entries]
    manifest_collection(target).bulk_write(ops, ordered=True)
    return len(entries)


def _copy_indexes(target: Collection[Any], spec_doc: dict[str, Any], wait: float, emit: OnEvent) -> dict[str, str]:
    """The vectorSearch (and search) index of the spec, created or updated on the target and waited for."""
    from leaf_mongo.spec.vector_spec import VectorSpec

    spec = VectorSpec.from_document(spec_doc["spec"])
    actions = {spec_doc["index_name"]: ensure_vector_index(target, spec_doc["index_name"], spec)}
    if spec_doc.get("fulltext_index_name"):
        name = spec_doc["fulltext_index_name"]
        actions[name] = ensure_fulltext_index(target, name, spec)
    for name in actions:

        def status(state: str, name: str = name) -> None:
            emit("index_status", {name: state})

        wait_for_search_index(target, name, timeout=wait, on_status=status)
    return dict(actions)
