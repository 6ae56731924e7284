"""The ingest write path: files → windows of chunks → length-bucketed teacher batches → bulk upserts.

Records are read a window at a time (``LEAF_MONGO_WINDOW_SIZE`` chunks; windows may span small files), so
memory stays flat however large a record corpus is. Inside a window, chunks are sorted by length before
they are cut into teacher batches: a batch then pads to nearly its own length, which is most of the gap
between ingest and raw ``encode`` throughput. The main thread encodes while a writer thread sends
unordered bulk upserts; everything that must follow writes (a file's progress checkpoint, its
finalization) goes through the writer's queue after them, so it happens strictly after those writes.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymongo import ReplaceOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from leaf_mongo.errors import ServerError
from leaf_mongo.loaders import LoadedRecord, LoadError, SourceFile, load
from leaf_mongo.records import BadRecord, is_record_file, iter_records
from leaf_mongo.resume import Checkpoint, clear_checkpoint, save_checkpoint
from leaf_mongo.vectors import to_binary

if TYPE_CHECKING:
    from leaf_mongo.chunking import Chunker
    from leaf_mongo.encoders import VectorEncoder
    from leaf_mongo.ingest import IngestReport
    from leaf_mongo.spec import VectorSpec

_GROUP_RECORDS = 256
"""Records chunked together (the chunker tokenizes in batches); a window ends on a group boundary."""
_GROUP_BYTES = 4 << 20
_NONE = object()
_MAX_BAD_REPORTED = 20
"""Bad records reported one by one per file; the rest are counted."""


@dataclass
class FileJob:
    """One file version being ingested, from ``start`` (a resumed run's checkpoint, else the beginning)."""

    file: SourceFile
    content_hash: str
    key: str
    start: Checkpoint
    resumed: bool = False
    chunks: int = 0
    """Chunk count of the whole file once it is read."""
    failed: bool = False


@dataclass
class Window:
    docs: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[FileJob] = field(default_factory=list)
    """Files with chunks in this window (their ids may already exist when resumed)."""
    commits: list[tuple[FileJob, Checkpoint]] = field(default_factory=list)
    finished: list[FileJob] = field(default_factory=list)


def chunk_id(source: str, chunk: int, content_hash: str) -> str:
    import hashlib

    return hashlib.sha1(f"{source}\x00{chunk}\x00{content_hash}".encode()).hexdigest()


class Writer(threading.Thread):
    """Background writer: chunk upserts, then checkpoints and file finalization, in queue order."""

    def __init__(
        self,
        collection: Collection[Any],
        report: IngestReport,
        batch: int,
        finalize: Callable[[FileJob], int],
    ) -> None:
        super().__init__(name="leaf-mongo-writer", daemon=True)
        self.collection = collection
        self.report = report
        self.batch = batch
        self.finalize = finalize
        self.queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.lock = threading.Lock()

    def put(self, kind: str, payload: Any) -> None:
        if self.error:
            raise self.error
        self.queue.put((kind, payload))

    def run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error:
                continue  # drain without writing after a failure
            try:
                kind, payload = item
                if kind == "docs":
                    self._write_docs(payload)
                elif kind == "checkpoint":
                    job, cp = payload
                    save_checkpoint(self.collection, job.file.relpath, job.key, cp)
                elif kind == "discard":  # a file that failed mid-stream: drop what this version wrote
                    res = self.collection.delete_many(
                        {"source": payload.file.relpath, "content_hash": payload.content_hash}
                    )
                    clear_checkpoint(self.collection, payload.file.relpath)
                    with self.lock:
                        self.report.chunks_written -= res.deleted_count
                else:
                    deleted = self.finalize(payload)
                    with self.lock:
                        self.report.chunks_deleted += deleted
            except BaseException as exc:  # surfaced to the main thread
                self.error = exc

    def _write_docs(self, docs: list[dict[str, Any]]) -> None:
        for i in range(0, len(docs), self.batch):
            part = docs[i : i + self.batch]
            ops = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in part]
            try:
                self.collection.bulk_write(ops, ordered=False)
            except BulkWriteError as exc:
                errs = exc.details.get("writeErrors", [])
                first = errs[0].get("errmsg") if errs else exc
                raise ServerError(f"writing chunks failed for {len(errs)} document(s): {first}") from None
            with self.lock:
                self.report.chunks_written += len(part)

    def close(self) -> None:
        self.queue.put(None)
        self.join()
        if self.error:
            raise self.error


class WindowReader:
    """Turns the files to ingest into windows of chunk documents (no vectors yet)."""

    def __init__(
        self,
        chunker: Chunker,
        spec: VectorSpec,
        report: IngestReport,
        window_size: int,
        max_record_bytes: int,
        on_event: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.chunker = chunker
        self.spec = spec
        self.report = report
        self.window_size = window_size
        self.max_record_bytes = max_record_bytes
        self.on_event = on_event

    def windows(self, jobs: list[FileJob]) -> Iterator[Window]:
        window = Window()
        for job in jobs:
            self.on_event("file_start", {"path": job.file.relpath})
            next_chunk = job.start.next_chunk
            window.jobs.append(job)
            try:
                for group, next_record in self._groups(job):
                    docs = self._documents(job, group, next_chunk)
                    next_chunk += len(docs)
                    window.docs.extend(docs)
                    if len(window.docs) >= self.window_size:
                        window.commits.append((job, Checkpoint(next_record, next_chunk)))
                        yield window
                        window = Window(jobs=[job])
            except LoadError as exc:
                job.failed = True
                window.docs = [d for d in window.docs if d["source"] != job.file.relpath]
                self._skip(job, exc.reason)
                continue
            job.chunks = next_chunk
            if next_chunk == 0:
                self._skip(job, "no text after chunking")
                continue
            window.finished.append(job)
            self.report.files_ingested.append(job.file.relpath)
        if window.docs or window.finished or any(j.failed for j in window.jobs):
            yield window

    def _skip(self, job: FileJob, reason: str) -> None:
        self.report.files_skipped.append({"path": str(job.file.root / job.file.relpath), "reason": reason})
        self.on_event("file_done", {"path": job.file.relpath, "skipped": True})

    def _groups(self, job: FileJob) -> Iterator[tuple[list[LoadedRecord], int]]:
        """Groups of records, each with the ordinal of the record after it (a resumed run's start)."""
        path = job.file.relpath
        if not is_record_file(job.file):
            records = load(job.file)
            self.report.records_read += len(records)
            self.on_event("records_read", {"path": path, "n": len(records), "done": job.file.size})
            yield records, 1
            return
        group: list[LoadedRecord] = []
        size = bad = 0
        where = str(job.file.root / path)
        ordinal = job.start.next_record - 1
        done = 0
        for item in iter_records(job.file, self.max_record_bytes, start=job.start.next_record):
            if item.ordinal < job.start.next_record:
                continue
            ordinal, rec = item.ordinal, item.record
            if isinstance(rec, BadRecord):
                bad += 1
                self.report.records_skipped += 1
                if bad <= _MAX_BAD_REPORTED:
                    reason = f"{rec.where}: {rec.reason} (record skipped)"
                    self.report.files_skipped.append({"path": where, "reason": reason})
            else:
                group.append(rec)
                size += len(rec.text)
            if len(group) >= _GROUP_RECORDS or size >= _GROUP_BYTES:
                self.report.records_read += len(group)
                self.on_event("records_read", {"path": path, "n": len(group), "done": item.done - done})
                done = item.done
                yield group, ordinal + 1
                group, size = [], 0
        if bad > _MAX_BAD_REPORTED:
            more = f"{bad - _MAX_BAD_REPORTED} more bad records skipped"
            self.report.files_skipped.append({"path": where, "reason": more})
        self.report.records_read += len(group)
        self.on_event("records_read", {"path": path, "n": len(group), "done": max(job.file.size - done, 0)})
        if group:
            yield group, ordinal + 1

    def _documents(self, job: FileJob, records: list[LoadedRecord], offset: int) -> list[dict[str, Any]]:
        file = job.file
        fmt = "jsonl" if is_record_file(file) else file.format
        text_field = self.spec.text_field
        docs = []
        for c in self.chunker.chunk(records, fmt):
            index = offset + c.index
            docs.append(
                {
                    "_id": chunk_id(file.relpath, index, job.content_hash),
                    text_field: c.text,
                    "source": file.relpath,
                    "chunk": index,
                    "content_hash": job.content_hash,
                    "title": c.title,
                    "headings": list(c.headings),
                    "record_id": c.record_id,
                    "format": file.format,
                }
            )
        return docs


def length_batches(docs: list[dict[str, Any]], text_field: str, batch_size: int) -> list[list[dict[str, Any]]]:
    """Chunks sorted longest first (stable) and cut into batches: each batch pads to about its own length."""
    ordered = sorted(docs, key=lambda d: -len(d[text_field]))
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


class WindowEncoder:
    """Encodes windows batch by batch and hands the results to the writer."""

    def __init__(
        self,
        collection: Collection[Any],
        encoder: VectorEncoder,
        spec: VectorSpec,
        writer: Writer,
        report: IngestReport,
        batch_size: int,
        parallel: int,
        on_event: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.collection = collection
        self.encoder = encoder
        self.spec = spec
        self.writer = writer
        self.report = report
        self.batch_size = batch_size
        self.parallel = max(parallel, 1)
        self.on_event = on_event
        self.begun: set[int] = set()

    def process(self, window: Window) -> None:
        for job in window.jobs:
            if id(job) not in self.begun:
                self.begun.add(id(job))
                # Marks the version as started, so a run killed before its first checkpoint still resumes.
                if not job.resumed and is_record_file(job.file):
                    self.writer.put("checkpoint", (job, job.start))
        docs = self._missing(window)
        batches = length_batches(docs, self.spec.text_field, self.batch_size)
        for i in range(0, len(batches), self.parallel):
            self._encode_and_send(batches[i : i + self.parallel])
        for job, cp in window.commits:
            if not job.failed and is_record_file(job.file):
                self.writer.put("checkpoint", (job, cp))
        for job in window.jobs:
            if job.failed and id(job) in self.begun:
                self.begun.discard(id(job))
                if is_record_file(job.file):
                    self.writer.put("discard", job)
        for job in window.finished:
            self.writer.put("finalize", job)
            self.on_event("file_done", {"path": job.file.relpath, "chunks": job.chunks})

    def _missing(self, window: Window) -> list[dict[str, Any]]:
        """The window's chunks minus those a killed run already wrote: same id (so same file version and chunk
        number) and same text. One ``_id`` query per window, so a re-run never encodes a stored chunk again."""
        if not window.docs:
            return []
        field = self.spec.text_field
        ids = [d["_id"] for d in window.docs]
        have = {d["_id"]: d.get(field) for d in self.collection.find({"_id": {"$in": ids}}, {field: 1})}
        return [d for d in window.docs if have.get(d["_id"], _NONE) != d[field]]

    def _encode_and_send(self, batches: list[list[dict[str, Any]]]) -> None:
        t0 = time.perf_counter()
        texts = [d[self.spec.text_field] for b in batches for d in b]
        emb = self.encoder.embed_documents(texts, batch_size=self.batch_size)
        vectors = self.encoder.stored_vectors(emb)
        self.report.encode_seconds += time.perf_counter() - t0
        full = self.spec.full_precision_field
        k = 0
        for batch in batches:
            out = []
            for d in batch:
                doc = {**d, self.spec.embedding_field: vectors[k]}
                if full:
                    doc[full] = to_binary(emb[k], "float32")
                out.append(doc)
                k += 1
            self.writer.put("docs", out)
            self.report.chunks_encoded += len(batch)
            self.on_event("chunks_encoded", {"n": len(batch)})
