"""The ingest commit protocol, written once: chunk upserts, then checkpoints, discards and file finalization, in
the order that makes a kill at any moment converge on re-run.

1. A file version is *begun*: for record corpora a checkpoint at its start, so a run killed before its first
   window still resumes.
2. Its chunks are upserted under deterministic ids (unordered bulk writes on a writer thread).
3. After a window's chunks, its checkpoints; a file that failed mid-stream is *discarded* (what this version
   wrote is deleted); a finished file is *finalized* (:func:`leaf_mongo.ingest.manifest.finalize_file`).

Everything after step 2 goes through the writer's queue behind the writes it depends on, so it happens strictly
after them. :class:`Commits` is what both ways of encoding (the local :class:`WindowEncoder` and the Ray
runner) call; neither touches the writer's queue directly.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import numpy as np
from pymongo import ReplaceOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from leaf_mongo.errors import ServerError
from leaf_mongo.ingest.manifest import finalize_file
from leaf_mongo.ingest.records import is_record_file
from leaf_mongo.ingest.report import IngestReport, OnEvent
from leaf_mongo.ingest.resume import Checkpoint, clear_checkpoint, save_checkpoint
from leaf_mongo.ingest.windows import FileJob, Window, length_batches
from leaf_mongo.models.encoders import VectorEncoder
from leaf_mongo.spec.vectors import to_binary

_NONE = object()


class Writer(threading.Thread):
    """Background writer: chunk upserts, then checkpoints and file finalization, in queue order."""

    def __init__(self, collection: Collection[Any], report: IngestReport, batch: int) -> None:
        super().__init__(name="leaf-mongo-writer", daemon=True)
        self.collection = collection
        self.report = report
        self.batch = batch
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
                self._apply(*item)
            except BaseException as exc:  # surfaced to the main thread
                self.error = exc

    def _apply(self, kind: str, payload: Any) -> None:
        if kind == "docs":
            self._write_docs(payload)
        elif kind == "checkpoint":
            job, cp = payload
            save_checkpoint(self.collection, job.file.relpath, job.key, cp)
        elif kind == "discard":  # a file that failed mid-stream: drop what this version wrote
            res = self.collection.delete_many({"source": payload.file.relpath, "content_hash": payload.content_hash})
            clear_checkpoint(self.collection, payload.file.relpath)
            with self.lock:
                self.report.chunks_written -= res.deleted_count
        else:
            deleted = finalize_file(self.collection, payload)
            with self.lock:
                self.report.chunks_deleted += deleted

    def _write_docs(self, docs: list[dict[str, Any]]) -> None:
        for i in range(0, len(docs), self.batch):
            part = docs[i : i + self.batch]
            ops = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in part]
            try:
                self.collection.bulk_write(ops, ordered=False)
            except BulkWriteError as exc:
                errs = exc.details.get("writeErrors", [])
                first = errs[0].get("errmsg") if errs else exc
                raise ServerError(f"writing chunks failed for {len(errs)} document(s): {first}") from exc
            with self.lock:
                self.report.chunks_written += len(part)

    def close(self) -> None:
        self.queue.put(None)
        self.join()
        if self.error:
            raise self.error


class Commits:
    """The commit protocol (module docstring) over one :class:`Writer`: the narrow surface both encoding paths
    use, holding the encoder only to turn float embeddings into stored vectors."""

    def __init__(self, writer: Writer, encoder: VectorEncoder, report: IngestReport, on_event: OnEvent) -> None:
        self.writer = writer
        self.encoder = encoder
        self.spec = encoder.spec
        self.report = report
        self.on_event = on_event
        self._begun: set[tuple[str, str]] = set()

    @staticmethod
    def _key(job: FileJob) -> tuple[str, str]:
        # Jobs may come back from another process (Ray) as copies: identify them by value.
        return job.file.relpath, job.content_hash

    def begin(self, jobs: list[FileJob]) -> None:
        """Step 1 for jobs not yet begun."""
        for job in jobs:
            if self._key(job) in self._begun:
                continue
            self._begun.add(self._key(job))
            if not job.resumed and is_record_file(job.file):
                self.writer.put("checkpoint", (job, job.start))

    def send_text_only(self, docs: list[dict[str, Any]]) -> None:
        """Step 2 for an autoEmbed collection: the chunks alone (mongot embeds their text)."""
        self.writer.put("docs", list(docs))
        self.report.chunks_encoded += len(docs)
        self.on_event("chunks_encoded", {"n": len(docs)})

    def send(self, docs: list[dict[str, Any]], embeddings: np.ndarray) -> None:
        """Step 2: one encoded batch, its stored vectors (and full-precision copies) attached."""
        vectors = self.encoder.stored_vectors(embeddings)
        full = self.spec.full_precision_field
        out = []
        for d, v, e in zip(docs, vectors, embeddings, strict=True):
            doc = {**d, self.spec.embedding_field: v}
            if full:
                doc[full] = to_binary(e, "float32")
            out.append(doc)
        self.writer.put("docs", out)
        self.report.chunks_encoded += len(out)
        self.on_event("chunks_encoded", {"n": len(out)})

    def end_window(
        self, commits: list[tuple[FileJob, Checkpoint]], failed: list[FileJob], finished: list[FileJob]
    ) -> None:
        """Step 3, after the window's chunks: checkpoints, discards of failed files, finalization."""
        for job, cp in commits:
            if not job.failed and is_record_file(job.file):
                self.writer.put("checkpoint", (job, cp))
        for job in failed:
            if self._key(job) in self._begun:
                self._begun.discard(self._key(job))
                if is_record_file(job.file):
                    self.writer.put("discard", job)
        for job in finished:
            self.writer.put("finalize", job)
            self.on_event("file_done", {"path": job.file.relpath, "chunks": job.chunks})


class WindowEncoder:
    """The local path: encodes each window's missing chunks batch by batch and commits them."""

    def __init__(
        self, collection: Collection[Any], commits: Commits, batch_size: int, parallel: int, report: IngestReport
    ) -> None:
        self.collection = collection
        self.commits = commits
        self.encoder = commits.encoder
        self.spec = commits.spec
        self.batch_size = batch_size
        self.parallel = max(parallel, 1)
        self.report = report

    def process(self, window: Window) -> None:
        self.commits.begin(window.jobs)
        batches = length_batches(self._missing(window), self.spec.text_field, self.batch_size)
        for i in range(0, len(batches), self.parallel):
            self._encode_and_send(batches[i : i + self.parallel])
        self.commits.end_window(window.commits, [j for j in window.jobs if j.failed], window.finished)

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
        if self.spec.autoembed_model is not None:  # no teacher here: mongot asks `leaf-mongo serve` for vectors
            for batch in batches:
                self.commits.send_text_only(batch)
            return
        t0 = time.perf_counter()
        texts = [d[self.spec.text_field] for b in batches for d in b]
        emb = self.encoder.embed_documents(texts, batch_size=self.batch_size)
        self.report.encode_seconds += time.perf_counter() - t0
        k = 0
        for batch in batches:
            self.commits.send(batch, emb[k : k + len(batch)])
            k += len(batch)
