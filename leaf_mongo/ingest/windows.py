"""Files → windows of chunk documents (no vectors yet) → length-sorted teacher batches.

Records are read a window at a time (``LEAF_MONGO_WINDOW_SIZE`` chunks; windows may span small files), so
memory stays flat however large a record corpus is. Inside a window, chunks are sorted by length before
they are cut into teacher batches: a batch then pads to nearly its own length, which is most of the gap
between ingest and raw ``encode`` throughput. Chunk ids are derived from (source, chunk number, content hash),
so writing the same version twice replaces, never duplicates. Writing is :mod:`leaf_mongo.ingest.writer`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from leaf_mongo.ingest.chunking import Chunker
from leaf_mongo.ingest.loaders import load
from leaf_mongo.ingest.records import BadRecord, is_record_file, iter_records
from leaf_mongo.ingest.report import IngestReport, OnEvent
from leaf_mongo.ingest.resume import Checkpoint
from leaf_mongo.ingest.sources import LoadedRecord, LoadError, SourceFile
from leaf_mongo.spec.vector_spec import VectorSpec

_GROUP_RECORDS = 256
"""Records chunked together (the chunker tokenizes in batches); a window ends on a group boundary."""
_GROUP_BYTES = 4 << 20
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
    return hashlib.sha1(f"{source}\x00{chunk}\x00{content_hash}".encode()).hexdigest()


class WindowReader:
    """Turns the files to ingest into windows of chunk documents (no vectors yet)."""

    def __init__(
        self,
        chunker: Chunker,
        spec: VectorSpec,
        report: IngestReport,
        window_size: int,
        max_record_bytes: int,
        on_event: OnEvent,
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
            records = load(job.file)  # one text file: its records are its sections, not corpus records
            self.on_event("records_read", {"path": path, "n": len(records), "done": job.file.size, "records": False})
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
                read = {"path": path, "n": len(group), "done": item.done - done, "records": True}
                self.on_event("records_read", read)
                done = item.done
                yield group, ordinal + 1
                group, size = [], 0
        if bad > _MAX_BAD_REPORTED:
            more = f"{bad - _MAX_BAD_REPORTED} more bad records skipped"
            self.report.files_skipped.append({"path": where, "reason": more})
        self.report.records_read += len(group)
        rest = max(job.file.size - done, 0)
        self.on_event("records_read", {"path": path, "n": len(group), "done": rest, "records": True})
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
