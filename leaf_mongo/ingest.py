"""Idempotent, crash-safe ingestion: files → chunks → teacher vectors → MongoDB.

How a file is written, so that a kill at any moment converges on re-run:

1. Its chunks are upserted under ids derived from (source, chunk number, file content hash): writing the
   same version twice replaces, never duplicates.
2. Only after every chunk of the new version is written are the chunks of other versions of that source
   deleted, and then the file's manifest entry (``leaf_mongo_files``) is set to the new hash.

A file whose manifest entry already has its hash is skipped without loading any model, which is what makes
a re-run of an unchanged folder cheap. A crash before step 2 leaves the manifest on the old version, so the
next run redoes the file; a crash between the deletes and the manifest update redoes it too (same ids).

Encoding and writing overlap: the main thread encodes large batches with the teacher while a writer thread
sends unordered bulk upserts, so the CPU stays busy with the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pymongo import DeleteMany, MongoClient, ReplaceOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, PyMongoError

from leaf_mongo.connection import check_server, make_client, server_error
from leaf_mongo.encoders import VectorEncoder
from leaf_mongo.errors import LeafMongoError, ServerError, SpecMismatchError
from leaf_mongo.index import ensure_fulltext_index, ensure_vector_index, wait_for_search_index, wait_for_vector_index
from leaf_mongo.loaders import LoadError, SkippedFile, SourceFile, discover, load
from leaf_mongo.settings import LeafMongoSettings, load_settings
from leaf_mongo.spec import VectorSpec, resolved_teacher, spec_from_settings
from leaf_mongo.spec_store import delete_spec, load_spec, save_spec
from leaf_mongo.vectors import bson_vector_size, to_binary

MANIFEST_COLLECTION = "leaf_mongo_files"
_UNSET = object()
HASH_CHUNK = 1 << 20

Event = Literal["scan", "file_start", "file_done", "chunks_encoded", "index_status"]


@dataclass
class IngestReport:
    """What a run did; ``to_json()`` is the ``--json`` output."""

    files_ingested: list[str] = field(default_factory=list)
    files_unchanged: list[str] = field(default_factory=list)
    files_skipped: list[dict[str, str]] = field(default_factory=list)
    files_pruned: list[str] = field(default_factory=list)
    chunks_written: int = 0
    chunks_deleted: int = 0
    seconds: float = 0.0
    encode_seconds: float = 0.0
    index_action: str = "none"
    index_status: str | None = None
    fulltext_index_action: str = "none"
    fulltext_index_status: str | None = None
    bytes_per_vector: int = 0
    dry_run: bool = False
    namespace: str = ""

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_written / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "dry_run": self.dry_run,
            "files_ingested": len(self.files_ingested),
            "files_unchanged": len(self.files_unchanged),
            "files_skipped": self.files_skipped,
            "files_pruned": len(self.files_pruned),
            "ingested": self.files_ingested,
            "pruned": self.files_pruned,
            "chunks_written": self.chunks_written,
            "chunks_deleted": self.chunks_deleted,
            "seconds": round(self.seconds, 3),
            "encode_seconds": round(self.encode_seconds, 3),
            "chunks_per_second": round(self.chunks_per_second, 2),
            "bytes_per_vector": self.bytes_per_vector,
            "index_action": self.index_action,
            "index_status": self.index_status,
            "fulltext_index_action": self.fulltext_index_action,
            "fulltext_index_status": self.fulltext_index_status,
        }


@dataclass
class _Pending:
    """A file whose chunks are being encoded; finalized once all of them are written."""

    file: SourceFile
    content_hash: str
    chunks: int
    last_seq: int


def file_hash(path: Path) -> str:
    """sha256 of the bytes, streamed (files can be large)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(HASH_CHUNK):
            h.update(block)
    return h.hexdigest()


def chunk_id(source: str, chunk: int, content_hash: str) -> str:
    """Deterministic ``_id``: the same chunk of the same file version always gets the same id."""
    return hashlib.sha1(f"{source}\x00{chunk}\x00{content_hash}".encode()).hexdigest()


def manifest_collection(collection: Collection[Any]) -> Collection[Any]:
    return collection.database[MANIFEST_COLLECTION]


def _manifest_id(collection: Collection[Any], source: str) -> str:
    return f"{collection.name}\x00{source}"


class _Writer(threading.Thread):
    """Background bulk writer; runs file finalization strictly after that file's chunk writes."""

    def __init__(self, collection: Collection[Any], report: IngestReport, batch: int) -> None:
        super().__init__(name="leaf-mongo-writer", daemon=True)
        self.collection = collection
        self.manifest = manifest_collection(collection)
        self.report = report
        self.batch = batch
        self.queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(maxsize=8)
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
                else:
                    self._finalize(payload)
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

    def _finalize(self, pending: _Pending) -> None:
        source = pending.file.relpath
        deleted = self.collection.delete_many({"source": source, "content_hash": {"$ne": pending.content_hash}})
        self.manifest.replace_one(
            {"_id": _manifest_id(self.collection, source)},
            {
                "_id": _manifest_id(self.collection, source),
                "collection": self.collection.name,
                "source": source,
                "content_hash": pending.content_hash,
                "chunks": pending.chunks,
                "size": pending.file.size,
                "ingested_at": time.time(),
            },
            upsert=True,
        )
        with self.lock:
            self.report.chunks_deleted += deleted.deleted_count

    def close(self) -> None:
        self.queue.put(None)
        self.join()
        if self.error:
            raise self.error


class Ingestor:
    """One ingest run against one collection; see the module docstring for the write protocol."""

    def __init__(
        self,
        settings: LeafMongoSettings,
        *,
        client: MongoClient[Any] | None = None,
        spec: VectorSpec | None = None,
        on_event: Callable[[Event, dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self._own_client = client is None
        self.client: MongoClient[Any] = client or make_client(settings)
        self.collection: Collection[Any] = self.client[settings.database][settings.collection]
        self._spec = spec
        self.on_event = on_event or (lambda _e, _d: None)
        self._encoder: VectorEncoder | None = None
        self._stored: VectorSpec | None | object = _UNSET

    @property
    def spec(self) -> VectorSpec:
        if self._spec is None:
            # Reuse the stored teacher dimension when the teacher is the same: an unchanged re-run then
            # never loads a model.
            stored = self._stored_spec()
            same = stored is not None and stored.teacher_model == resolved_teacher(self.settings)
            self._spec = spec_from_settings(
                self.settings, stored.full_dimensions if same and stored else None, stored=stored if same else None
            )
        return self._spec

    def _stored_spec(self) -> VectorSpec | None:
        if self._stored is _UNSET:
            self._stored = load_spec(self.collection)
        return self._stored  # type: ignore[return-value]

    @property
    def encoder(self) -> VectorEncoder:
        if self._encoder is None:
            self._encoder = VectorEncoder(
                self.spec,
                device=self.settings.device,
                cache_dir=self.settings.embedding_cache,
                teacher_backend=self.settings.teacher_backend,
                threads=self.settings.backend_threads,
            )
        return self._encoder

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    # -- spec and index -----------------------------------------------------------------------

    def prepare(self, *, recreate: bool, dry_run: bool) -> str:
        """Reconcile the stored spec with the requested one; returns what happens to the collection."""
        stored = self._stored_spec()
        where = self.collection.full_name
        if stored is None:
            if self.collection.estimated_document_count() and self.collection.find_one(
                {"content_hash": {"$exists": 0}}
            ):
                if not recreate:
                    raise SpecMismatchError(
                        f"{where} already holds documents that leaf-mongo did not write; choose another "
                        "collection (LEAF_MONGO_COLLECTION) or pass --recreate to replace it"
                    )
                action = "recreate"
            else:
                action = "create"
        elif self.spec.storage_conflicts(stored):
            if not recreate:
                self.spec.require_compatible(stored, where)
            action = "recreate"
        else:
            action = "update" if stored != self.spec else "keep"
        if action != "keep":
            # A query model of another space (or dimension) would make every later search fail: refuse now,
            # before anything is written.
            self.encoder.check_query_model(load=False)
        if dry_run:
            return action
        if action == "recreate":
            self.drop_all()
        db = self.collection.database
        if not db.list_collection_names(filter={"name": self.collection.name}):
            db.create_collection(self.collection.name)
        if action != "keep":
            save_spec(self.collection, self.spec, self.settings.index_name, self.settings.fulltext_index_name)
        return action

    def drop_all(self) -> None:
        """--recreate: the chunks, their manifest and spec, and the search index go together."""
        for name in (self.settings.index_name, self.settings.fulltext_index_name):
            with contextlib.suppress(PyMongoError):  # missing index, or no search: dropping the collection matters
                self.collection.drop_search_index(name)
        self.collection.drop()
        manifest_collection(self.collection).delete_many({"collection": self.collection.name})
        delete_spec(self.collection)

    def ensure_index(self, report: IngestReport) -> None:
        """The vector index, then (when the spec has full-text paths) the ``search`` index; both waited on."""
        report.index_action = ensure_vector_index(self.collection, self.settings.index_name, self.spec)
        fulltext = self.settings.fulltext_index_name if self.spec.fulltext_fields else None
        if fulltext:
            report.fulltext_index_action = ensure_fulltext_index(self.collection, fulltext, self.spec)
        entry = wait_for_vector_index(
            self.collection,
            self.settings.index_name,
            timeout=self.settings.index_wait_seconds,
            require_ready=report.index_action == "updated",
            on_status=lambda s: self.on_event("index_status", {"status": s}),
        )
        report.index_status = entry.get("status")
        if fulltext:
            entry = wait_for_search_index(
                self.collection,
                fulltext,
                timeout=self.settings.index_wait_seconds,
                require_ready=report.fulltext_index_action == "updated",
                on_status=lambda s: self.on_event("index_status", {"status": s, "index": fulltext}),
            )
            report.fulltext_index_status = entry.get("status")

    # -- the run ------------------------------------------------------------------------------

    def run(
        self,
        paths: Sequence[Path],
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        prune: bool = False,
        recreate: bool = False,
        dry_run: bool = False,
        wait_for_index: bool = True,
    ) -> IngestReport:
        start = time.perf_counter()
        report = IngestReport(dry_run=dry_run, namespace=self.collection.full_name)
        report.bytes_per_vector = bson_vector_size(self.spec.dtype, self.spec.dimensions)
        for p in paths:
            if not Path(p).exists():
                raise LeafMongoError(f"path {str(p)!r} does not exist")
        check_server(self.client)
        action = self.prepare(recreate=recreate, dry_run=dry_run)

        found = list(
            discover(
                [Path(p) for p in paths],
                include=include,
                exclude=exclude,
                max_file_bytes=int(self.settings.max_file_mb * 1024 * 1024),
            )
        )
        files = [f for f in found if isinstance(f, SourceFile)]
        report.files_skipped = [{"path": s.path, "reason": s.reason} for s in found if isinstance(s, SkippedFile)]
        self.on_event("scan", {"files": len(files), "skipped": len(report.files_skipped)})

        known = (
            {}
            if action == "recreate"
            else {
                m["source"]: m["content_hash"]
                for m in manifest_collection(self.collection).find(
                    {"collection": self.collection.name}, {"source": 1, "content_hash": 1}
                )
            }
        )
        todo: list[tuple[SourceFile, str]] = []
        for f in files:
            h = file_hash(f.path)
            if known.get(f.relpath) == h:
                report.files_unchanged.append(f.relpath)
            else:
                todo.append((f, h))

        if dry_run:
            report.files_ingested = [f.relpath for f, _ in todo]
            if prune:
                report.files_pruned = sorted(self._stale_sources(files, known))
            report.seconds = time.perf_counter() - start
            return report

        if todo:
            self._ingest_files(todo, report)
        if prune:
            self._prune(files, known, report)
        if wait_for_index:
            self.ensure_index(report)
        report.seconds = time.perf_counter() - start
        return report

    def _stale_sources(self, files: Iterable[SourceFile], known: dict[str, str]) -> set[str]:
        present = {f.relpath for f in files}
        stored = set(known) | {s for s in self.collection.distinct("source") if isinstance(s, str)}
        return stored - present

    def _prune(self, files: list[SourceFile], known: dict[str, str], report: IngestReport) -> None:
        """Remove chunks (and manifest entries) of sources that no longer exist under the given paths."""
        stale = sorted(self._stale_sources(files, known))
        if not stale:
            return
        result = self.collection.bulk_write([DeleteMany({"source": s}) for s in stale], ordered=False)
        manifest_collection(self.collection).delete_many(
            {"_id": {"$in": [_manifest_id(self.collection, s) for s in stale]}}
        )
        report.chunks_deleted += result.deleted_count
        report.files_pruned = stale

    def _chunker(self) -> Any:
        from leaf_mongo.chunking import Chunker

        teacher = self.encoder.teacher
        return Chunker.for_model(teacher, self.settings.chunk_size, self.settings.chunk_overlap)

    def _documents(self, file: SourceFile, content_hash: str, chunker: Any) -> list[dict[str, Any]]:
        records = load(file)
        chunks = chunker.chunk(records, file.format)
        docs = []
        for c in chunks:
            docs.append(
                {
                    "_id": chunk_id(file.relpath, c.index, content_hash),
                    self.spec.text_field: c.text,
                    "source": file.relpath,
                    "chunk": c.index,
                    "content_hash": content_hash,
                    "title": c.title,
                    "headings": list(c.headings),
                    "record_id": c.record_id,
                    "format": file.format,
                }
            )
        return docs

    def _ingest_files(self, todo: list[tuple[SourceFile, str]], report: IngestReport) -> None:
        chunker = self._chunker()
        writer = _Writer(self.collection, report, self.settings.write_batch_size)
        writer.start()
        batch_size = self.settings.batch_size
        buffer: list[dict[str, Any]] = []  # chunk docs waiting for vectors
        waiting: list[_Pending] = []  # files with chunks not yet sent to the writer
        queued = 0  # chunks handed to the encoder so far (a file is done once its last one is sent)
        sent = 0
        try:
            for file, h in todo:
                self.on_event("file_start", {"path": file.relpath})
                try:
                    docs = self._documents(file, h, chunker)
                except LoadError as exc:
                    report.files_skipped.append({"path": str(file.root / file.relpath), "reason": exc.reason})
                    self.on_event("file_done", {"path": file.relpath, "skipped": True})
                    continue
                if not docs:
                    report.files_skipped.append(
                        {"path": str(file.root / file.relpath), "reason": "no text after chunking"}
                    )
                    self.on_event("file_done", {"path": file.relpath, "skipped": True})
                    continue
                buffer.extend(docs)
                queued += len(docs)
                waiting.append(_Pending(file, h, len(docs), queued))
                report.files_ingested.append(file.relpath)
                while len(buffer) >= batch_size:
                    self._encode_and_send(buffer[:batch_size], writer, report)
                    sent += batch_size
                    del buffer[:batch_size]
                    waiting = self._finalize_sent(waiting, sent, writer)
            if buffer:
                self._encode_and_send(buffer, writer, report)
                sent += len(buffer)
                buffer.clear()
            self._finalize_sent(waiting, sent, writer)
        finally:
            writer.close()

    def _finalize_sent(self, waiting: list[_Pending], sent: int, writer: _Writer) -> list[_Pending]:
        """Queue finalization (after the writes, same queue) for files whose last chunk has been sent."""
        for p in waiting:
            if p.last_seq <= sent:
                writer.put("finalize", p)
                self.on_event("file_done", {"path": p.file.relpath, "chunks": p.chunks})
        return [p for p in waiting if p.last_seq > sent]

    def _encode_and_send(self, docs: list[dict[str, Any]], writer: _Writer, report: IngestReport) -> None:
        t0 = time.perf_counter()
        emb = self.encoder.embed_documents([d[self.spec.text_field] for d in docs], batch_size=min(len(docs), 64))
        vectors = self.encoder.stored_vectors(emb)
        report.encode_seconds += time.perf_counter() - t0
        full = self.spec.full_precision_field
        out = []
        for d, v, e in zip(docs, vectors, emb, strict=True):
            doc = {**d, self.spec.embedding_field: v}
            if full:
                doc[full] = to_binary(e, "float32")
            out.append(doc)
        writer.put("docs", out)
        self.on_event("chunks_encoded", {"n": len(docs)})


def ingest(
    paths: Sequence[str | Path],
    settings: LeafMongoSettings | None = None,
    *,
    client: MongoClient[Any] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    prune: bool = False,
    recreate: bool = False,
    dry_run: bool = False,
    wait_for_index: bool = True,
    on_event: Callable[[Event, dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> IngestReport:
    """Ingest files and folders into the configured collection (see :class:`Ingestor`).

    ``overrides`` are settings fields (``collection=``, ``dtype=`` ...) applied on top of ``settings`` or the
    environment, like CLI flags.
    """
    settings = (settings or load_settings()).with_overrides(**overrides)
    ingestor = Ingestor(settings, client=client, on_event=on_event)
    try:
        return ingestor.run(
            [Path(p) for p in paths],
            include=include,
            exclude=exclude,
            prune=prune,
            recreate=recreate,
            dry_run=dry_run,
            wait_for_index=wait_for_index,
        )
    except PyMongoError as exc:
        raise server_error(exc, f"ingest into {settings.database}.{settings.collection}") from None
    finally:
        ingestor.close()
