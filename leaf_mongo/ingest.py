"""Idempotent, crash-safe ingestion: files → chunks → teacher vectors → MongoDB.

How a file is written, so that a kill at any moment converges on re-run:

1. Its chunks are upserted under ids derived from (source, chunk number, file content hash): writing the
   same version twice replaces, never duplicates.
2. Only after every chunk of the new version is written are the chunks of other versions of that source
   deleted, and then the file's manifest entry (``leaf_mongo_files``) is set to the new hash.

A file whose manifest entry already has its hash is skipped without loading any model, which is what makes
a re-run of an unchanged folder cheap. A crash before step 2 leaves the manifest on the old version, so the
next run redoes the file; a crash between the deletes and the manifest update redoes it too (same ids).

Record corpora (``.jsonl``, ``.jsonl.gz``, Parquet) are streamed a window at a time and checkpointed inside the
file (:mod:`leaf_mongo.resume`): a killed run over the same file version resumes after its last written window
and skips chunks already stored. Encoding and writing overlap (:mod:`leaf_mongo.pipeline`): the main thread
encodes length-sorted batches with the teacher while a writer thread sends unordered bulk upserts.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pymongo import DeleteMany, MongoClient
from pymongo.collection import Collection
from pymongo.errors import OperationFailure, PyMongoError

from leaf_mongo.connection import check_server, make_client, server_error
from leaf_mongo.encoders import VectorEncoder
from leaf_mongo.errors import LeafMongoError, SpecMismatchError
from leaf_mongo.index import ensure_fulltext_index, ensure_vector_index, wait_for_search_index, wait_for_vector_index
from leaf_mongo.loaders import SkippedFile, SourceFile, discover
from leaf_mongo.pipeline import FileJob, WindowEncoder, WindowReader, Writer, chunk_id
from leaf_mongo.records import is_record_file
from leaf_mongo.resume import Checkpoint, clear_all, clear_checkpoint, load_checkpoint, progress_key
from leaf_mongo.settings import LeafMongoSettings, load_settings
from leaf_mongo.spec import VectorSpec, resolved_teacher, spec_from_settings
from leaf_mongo.spec_store import delete_spec, load_spec, save_spec
from leaf_mongo.vectors import bson_vector_size

MANIFEST_COLLECTION = "leaf_mongo_files"
SOURCE_INDEX = "leaf_mongo_source"
"""B-tree index on (source, content_hash): replacing, discarding and pruning a file's chunks filter on them, and
without it every finished file costs a collection scan on a real server (hours at millions of chunks)."""
_UNSET = object()
HASH_CHUNK = 1 << 20

Event = Literal["scan", "file_start", "records_read", "file_done", "chunks_encoded", "index_status"]

__all__ = ["MANIFEST_COLLECTION", "IngestReport", "Ingestor", "chunk_id", "file_hash", "ingest"]


@dataclass
class IngestReport:
    """What a run did; ``to_json()`` is the ``--json`` output."""

    files_ingested: list[str] = field(default_factory=list)
    files_unchanged: list[str] = field(default_factory=list)
    files_skipped: list[dict[str, str]] = field(default_factory=list)
    files_pruned: list[str] = field(default_factory=list)
    chunks_written: int = 0
    chunks_encoded: int = 0
    """Chunks sent through the teacher (less than written chunks' share of the file when a run resumed)."""
    chunks_deleted: int = 0
    records_read: int = 0
    records_skipped: int = 0
    seconds: float = 0.0
    encode_seconds: float = 0.0
    index_action: str = "none"
    index_status: str | None = None
    fulltext_index_action: str = "none"
    fulltext_index_status: str | None = None
    bytes_per_vector: int = 0
    dry_run: bool = False
    namespace: str = ""

    def to_state(self) -> dict[str, Any]:
        """What a remote reader found (Ray path), for :meth:`merge_state` in the driver."""
        keys = ("files_ingested", "files_skipped", "records_read", "records_skipped")
        return {k: getattr(self, k) for k in keys}

    def merge_state(self, state: dict[str, Any]) -> None:
        self.files_ingested += state["files_ingested"]
        self.files_skipped += state["files_skipped"]
        self.records_read += state["records_read"]
        self.records_skipped += state["records_skipped"]

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
            "chunks_encoded": self.chunks_encoded,
            "chunks_deleted": self.chunks_deleted,
            "records_read": self.records_read,
            "records_skipped": self.records_skipped,
            "seconds": round(self.seconds, 3),
            "encode_seconds": round(self.encode_seconds, 3),
            "chunks_per_second": round(self.chunks_per_second, 2),
            "bytes_per_vector": self.bytes_per_vector,
            "index_action": self.index_action,
            "index_status": self.index_status,
            "fulltext_index_action": self.fulltext_index_action,
            "fulltext_index_status": self.fulltext_index_status,
        }


def file_hash(path: Path) -> str:
    """sha256 of the bytes, streamed (files can be large)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(HASH_CHUNK):
            h.update(block)
    return h.hexdigest()


def manifest_collection(collection: Collection[Any]) -> Collection[Any]:
    return collection.database[MANIFEST_COLLECTION]


def _manifest_id(collection: Collection[Any], source: str) -> str:
    return f"{collection.name}\x00{source}"


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
        clear_all(self.collection)
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
        self.on_event(
            "scan",
            {"files": len(todo), "skipped": len(report.files_skipped), "unchanged": len(report.files_unchanged),
             "bytes": sum(f.size for f, _ in todo)},
        )  # fmt: skip

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
        self.ensure_source_index()
        result = self.collection.bulk_write([DeleteMany({"source": s}) for s in stale], ordered=False)
        manifest_collection(self.collection).delete_many(
            {"_id": {"$in": [_manifest_id(self.collection, s) for s in stale]}}
        )
        clear_all(self.collection, stale)
        report.chunks_deleted += result.deleted_count
        report.files_pruned = stale

    def _chunker(self) -> Any:
        from leaf_mongo.chunking import Chunker

        teacher = self.encoder.teacher
        return Chunker.for_model(teacher, self.settings.chunk_size, self.settings.chunk_overlap)

    def _jobs(self, todo: list[tuple[SourceFile, str]], chunker: Any) -> list[FileJob]:
        """Files to write, each from its checkpoint when a killed run left one for the same version."""
        jobs = []
        for file, h in todo:
            key = progress_key(
                h, self.spec.teacher_model, chunker.chunk_size, chunker.chunk_overlap, self.max_record_bytes
            )
            cp = load_checkpoint(self.collection, file.relpath, key) if is_record_file(file) else None
            jobs.append(FileJob(file, h, key, cp or Checkpoint(), resumed=cp is not None))
        return jobs

    @property
    def max_record_bytes(self) -> int:
        return int(self.settings.max_file_mb * 1024 * 1024)

    def ensure_source_index(self) -> None:
        """Idempotent (``createIndexes`` with the same key and name is a no-op); an index the user made on the
        same key under another name (IndexOptionsConflict, code 85) serves as well."""
        try:
            self.collection.create_index([("source", 1), ("content_hash", 1)], name=SOURCE_INDEX)
        except OperationFailure as exc:
            if exc.code != 85:
                raise

    def _ingest_files(self, todo: list[tuple[SourceFile, str]], report: IngestReport) -> None:
        self.ensure_source_index()
        chunker = self._chunker()
        jobs = self._jobs(todo, chunker)
        if self.settings.ray:
            from leaf_mongo.ray_ingest import ingest_with_ray

            ingest_with_ray(self, jobs, report, None if self.settings.ray == "local" else self.settings.ray)
            return
        writer = Writer(self.collection, report, self.settings.write_batch_size, self._finalize)
        reader = WindowReader(
            chunker,
            self.spec,
            report,
            self.settings.window_size,
            self.max_record_bytes,
            self.on_event,  # type: ignore[arg-type]
        )
        writer.start()
        try:
            with self._encoding() as parallel:
                encoder = WindowEncoder(
                    self.collection, self.encoder, self.spec, writer, report, self.settings.batch_size, parallel,
                    self.on_event,  # type: ignore[arg-type]
                )  # fmt: skip
                for window in reader.windows(jobs):
                    encoder.process(window)
        finally:
            writer.close()

    @contextlib.contextmanager
    def _encoding(self) -> Any:
        """How many batches go to the teacher at once: one, or one per worker of a multi-process pool."""
        from leaf_mongo.parallel import encoder_pool, pool_devices

        devices = pool_devices(self.settings)
        if not devices:
            yield 1
            return
        with encoder_pool(self.encoder, devices):
            yield len(devices)

    def _finalize(self, job: FileJob) -> int:
        """Writer thread, after every chunk of the version is written: drop other versions, then the manifest."""
        source = job.file.relpath
        deleted = self.collection.delete_many(
            {"source": source, "$or": [{"content_hash": {"$ne": job.content_hash}}, {"chunk": {"$gte": job.chunks}}]}
        )
        mid = _manifest_id(self.collection, source)
        manifest_collection(self.collection).replace_one(
            {"_id": mid},
            {
                "_id": mid,
                "collection": self.collection.name,
                "source": source,
                "content_hash": job.content_hash,
                "chunks": job.chunks,
                "size": job.file.size,
                "ingested_at": time.time(),
            },
            upsert=True,
        )
        clear_checkpoint(self.collection, source)
        return int(deleted.deleted_count)


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
