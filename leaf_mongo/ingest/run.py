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
file (:mod:`leaf_mongo.ingest.resume`): a killed run over the same file version resumes after its last
written window and skips chunks already stored. Encoding and writing overlap: the main thread encodes
length-sorted batches (:mod:`leaf_mongo.ingest.windows`) while a writer thread commits them
(:mod:`leaf_mongo.ingest.writer`, the one place the protocol above is written).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pymongo import DeleteMany, MongoClient
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from leaf_mongo.connection import check_server, make_client, server_error
from leaf_mongo.errors import InputError, SpecMismatchError
from leaf_mongo.ingest.chunking import Chunker
from leaf_mongo.ingest.discovery import discover
from leaf_mongo.ingest.manifest import (
    ensure_source_index,
    forget_sources,
    known_versions,
    manifest_collection,
)
from leaf_mongo.ingest.pool import encoder_pool, pool_devices
from leaf_mongo.ingest.ray_runner import ingest_with_ray
from leaf_mongo.ingest.records import is_record_file
from leaf_mongo.ingest.report import IngestReport, OnEvent, no_events
from leaf_mongo.ingest.resume import Checkpoint, clear_all, load_checkpoint, progress_key
from leaf_mongo.ingest.sources import SkippedFile, SourceFile
from leaf_mongo.ingest.windows import FileJob, WindowReader
from leaf_mongo.ingest.writer import Commits, WindowEncoder, Writer
from leaf_mongo.models.encoders import VectorEncoder
from leaf_mongo.models.resolve import spec_from_settings
from leaf_mongo.settings import LeafMongoSettings, load_settings
from leaf_mongo.spec.index import ensure_fulltext_index, ensure_vector_index, wait_for_search_index
from leaf_mongo.spec.store import delete_spec, load_spec, save_spec
from leaf_mongo.spec.vector_spec import VectorSpec, resolved_teacher
from leaf_mongo.spec.vectors import bson_vector_size

HASH_CHUNK = 1 << 20

Action = Literal["create", "recreate", "update", "keep"]
"""What :meth:`Ingestor.decide` chooses to do to the collection."""


@dataclass(frozen=True)
class RunOptions:
    """How one run treats the given paths (the ``ingest`` keyword arguments)."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    prune: bool = False
    recreate: bool = False
    dry_run: bool = False
    wait_for_index: bool = True


@dataclass
class _Plan:
    """What a run found: files to write (with their content hashes), every file present, stored versions."""

    todo: list[tuple[SourceFile, str]]
    files: list[SourceFile]
    known: dict[str, str]


def _nothing_to_ingest(paths: list[Path], skipped: list[dict[str, str]]) -> str:
    where = ", ".join(str(p) for p in paths)
    if not skipped:
        return f"nothing to ingest: {where} holds no files; nothing was written"
    first = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3])
    more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
    return f"nothing to ingest under {where}: every file was skipped ({first}{more}); nothing was written"


def file_hash(path: Path) -> str:
    """sha256 of the bytes, streamed (files can be large)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(HASH_CHUNK):
            h.update(block)
    return h.hexdigest()


class Ingestor:
    """One ingest run against one collection; see the module docstring for the write protocol."""

    def __init__(
        self,
        settings: LeafMongoSettings,
        *,
        client: MongoClient[Any] | None = None,
        spec: VectorSpec | None = None,
        on_event: OnEvent | None = None,
    ) -> None:
        self.settings = settings
        self._own_client = client is None
        self.client: MongoClient[Any] = client or make_client(settings)
        self.collection: Collection[Any] = self.client[settings.database][settings.collection]
        self._spec = spec
        self.on_event: OnEvent = on_event or no_events

    @cached_property
    def stored_spec(self) -> VectorSpec | None:
        """The spec persisted beside the collection, read once."""
        return load_spec(self.collection)

    @property
    def spec(self) -> VectorSpec:
        if self._spec is None:
            # Reuse the stored teacher dimension when the teacher is the same: an unchanged re-run then
            # never loads a model.
            stored = self.stored_spec
            same = stored is not None and stored.teacher_model == resolved_teacher(self.settings)
            self._spec = spec_from_settings(
                self.settings, stored.full_dimensions if same and stored else None, stored=stored if same else None
            )
        return self._spec

    @cached_property
    def encoder(self) -> VectorEncoder:
        return VectorEncoder(
            self.spec,
            device=self.settings.device,
            cache_dir=self.settings.embedding_cache,
            teacher_backend=self.settings.teacher_backend,
            threads=self.settings.backend_threads,
        )

    @cached_property
    def chunker(self) -> Chunker:
        """Chunks by the document route's tokenizer and sequence limit (the tokenizer alone for autoEmbed, where
        the teacher runs in `leaf-mongo serve`, so that both cut and count tokens alike)."""
        size, overlap = self.settings.chunk_size, self.settings.chunk_overlap
        if self.spec.autoembed_model is not None:
            return Chunker.for_model_folder(self.spec.teacher_model, size, overlap)
        return Chunker.for_model(self.encoder.teacher, size, overlap)

    @property
    def max_record_bytes(self) -> int:
        return int(self.settings.max_file_mb * 1024 * 1024)

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    # -- spec and index -----------------------------------------------------------------------

    def _persist(self, action: Action, writing: bool) -> None:
        """Carry out what :meth:`decide` chose. The models load (and the query model is checked) before anything
        is written, so a run that cannot load them leaves the collection as it was. ``writing``: chunks will be
        written, so the teacher is needed."""
        if action != "keep" and self.spec.autoembed_model is None:  # autoEmbed: the service checks its pair
            # A query model that cannot be loaded, or of another space or dimension, would make every later
            # search fail: refuse now, before anything is written.
            self.encoder.check_query_model(load=True, prompt=False)
        if writing:
            _ = self.chunker  # loads the teacher (its tokenizer drives chunking)
        if action == "recreate":
            self.drop_all()
        db = self.collection.database
        if not db.list_collection_names(filter={"name": self.collection.name}):
            db.create_collection(self.collection.name)
        if action != "keep":
            save_spec(self.collection, self.spec, self.settings.index_name, self.settings.fulltext_index_name)

    def decide(self, *, recreate: bool) -> Action:
        """What the run will do to the collection (reads only; :meth:`_persist` does it). A stored spec with no
        chunks behind it (a first run that failed before writing any) never blocks another spec: it is replaced."""
        stored = self.stored_spec
        where = self.collection.full_name
        has_docs = self.collection.find_one({}, {"_id": 1}) is not None
        if stored is None:
            foreign = has_docs and self.collection.find_one({"content_hash": {"$exists": 0}}, {"_id": 1})
            if foreign and not recreate:
                raise SpecMismatchError(
                    f"{where} already holds documents that leaf-mongo did not write; choose another "
                    "collection (LEAF_MONGO_COLLECTION) or pass --recreate to replace it"
                )
            action: Action = "recreate" if foreign else "create"
        elif self.spec.storage_conflicts(stored):
            if has_docs and not recreate:
                self.spec.require_compatible(stored, where)
            action = "recreate"
        else:
            action = "update" if stored != self.spec else "keep"
        if action != "keep" and self.spec.autoembed_model is None:
            self.encoder.check_query_model(load=False)  # what can be known without loading a model
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
        if fulltext:  # both builds run at once; then both are waited on
            report.fulltext_index_action = ensure_fulltext_index(self.collection, fulltext, self.spec)
        report.index_status = self._wait(self.settings.index_name, report.index_action)
        if fulltext:
            report.fulltext_index_status = self._wait(fulltext, report.fulltext_index_action, fulltext)

    def _wait(self, name: str, action: str, label: str | None = None) -> str | None:
        def on_status(status: str) -> None:
            self.on_event("index_status", {"status": status, **({"index": label} if label else {})})

        entry = wait_for_search_index(
            self.collection,
            name,
            timeout=self.settings.index_wait_seconds,
            require_ready=action == "updated",
            on_status=on_status,
        )
        return entry.get("status")

    # -- the run ------------------------------------------------------------------------------

    def run(self, paths: Sequence[Path], options: RunOptions | None = None) -> IngestReport:
        options = options or RunOptions()
        start = time.perf_counter()
        report = IngestReport(dry_run=options.dry_run, namespace=self.collection.full_name)
        report.bytes_per_vector = bson_vector_size(self.spec.dtype, self.spec.dimensions)
        plan = self._plan([Path(p) for p in paths], options, report)
        if options.dry_run:
            report.files_ingested = [f.relpath for f, _ in plan.todo]
            if options.prune:
                report.files_pruned = sorted(self._stale_sources(plan.files, plan.known))
        else:
            self._apply(plan, options, report)
        report.seconds = time.perf_counter() - start
        return report

    def _plan(self, paths: list[Path], options: RunOptions, report: IngestReport) -> _Plan:
        """Checks, files discovered and hashed against the manifest, the spec reconciled: what to write.

        Nothing is written before the files are known and the models have loaded.
        """
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise InputError(f"no such file or folder: {', '.join(repr(m) for m in missing)}")
        check_server(self.client)
        found = list(
            discover(paths, include=options.include, exclude=options.exclude, max_file_bytes=self.max_record_bytes)
        )
        files = [f for f in found if isinstance(f, SourceFile)]
        report.files_skipped = [{"path": s.path, "reason": s.reason} for s in found if isinstance(s, SkippedFile)]
        if not files and not (options.prune and self.stored_spec is not None):
            raise InputError(_nothing_to_ingest(paths, report.files_skipped))
        action = self.decide(recreate=options.recreate)
        known = {} if action == "recreate" else known_versions(self.collection)
        todo: list[tuple[SourceFile, str]] = []
        for f in files:
            h = file_hash(f.path)
            if known.get(f.relpath) == h:
                report.files_unchanged.append(f.relpath)
            else:
                todo.append((f, h))
        if not options.dry_run:
            self._persist(action, writing=bool(todo))
        scan = {"files": len(todo), "skipped": len(report.files_skipped), "unchanged": len(report.files_unchanged)}
        self.on_event("scan", {**scan, "bytes": sum(f.size for f, _ in todo)})
        return _Plan(todo, files, known)

    def _apply(self, plan: _Plan, options: RunOptions, report: IngestReport) -> None:
        """Write the files, prune the sources that are gone, then the indexes."""
        if plan.todo:
            self._ingest_files(plan.todo, report)
        if options.prune:
            self._prune(plan.files, plan.known, report)
        if options.wait_for_index:
            self.ensure_index(report)

    def _stale_sources(self, files: Iterable[SourceFile], known: dict[str, str]) -> set[str]:
        present = {f.relpath for f in files}
        stored = set(known) | {s for s in self.collection.distinct("source") if isinstance(s, str)}
        return stored - present

    def _prune(self, files: list[SourceFile], known: dict[str, str], report: IngestReport) -> None:
        """Remove chunks (and manifest entries) of sources that no longer exist under the given paths."""
        stale = sorted(self._stale_sources(files, known))
        if not stale:
            return
        ensure_source_index(self.collection)
        result = self.collection.bulk_write([DeleteMany({"source": s}) for s in stale], ordered=False)
        forget_sources(self.collection, stale)
        clear_all(self.collection, stale)
        report.chunks_deleted += result.deleted_count
        report.files_pruned = stale

    def _jobs(self, todo: list[tuple[SourceFile, str]]) -> list[FileJob]:
        """Files to write, each from its checkpoint when a killed run left one for the same version."""
        chunker, jobs = self.chunker, []
        for file, h in todo:
            key = progress_key(
                h, self.spec.teacher_model, chunker.chunk_size, chunker.chunk_overlap, self.max_record_bytes
            )
            cp = load_checkpoint(self.collection, file.relpath, key) if is_record_file(file) else None
            jobs.append(FileJob(file, h, key, cp or Checkpoint(), resumed=cp is not None))
        return jobs

    def _ingest_files(self, todo: list[tuple[SourceFile, str]], report: IngestReport) -> None:
        ensure_source_index(self.collection)
        jobs = self._jobs(todo)
        writer = Writer(self.collection, report, self.settings.write_batch_size)
        commits = Commits(writer, self.encoder, report, self.on_event)
        writer.start()
        try:
            if self.settings.ray and self.spec.autoembed_model is None:
                address = None if self.settings.ray == "local" else self.settings.ray
                ingest_with_ray(commits, self.settings, jobs, self.max_record_bytes, address)
                return
            reader = WindowReader(
                self.chunker, self.spec, report, self.settings.window_size, self.max_record_bytes, self.on_event
            )
            with self._encoding() as parallel:
                encoder = WindowEncoder(self.collection, commits, self.settings.batch_size, parallel, report)
                for window in reader.windows(jobs):
                    encoder.process(window)
        finally:
            writer.close()

    @contextlib.contextmanager
    def _encoding(self) -> Iterator[int]:
        """How many batches go to the teacher at once: one, or one per worker of a multi-process pool."""
        devices = pool_devices(self.settings)
        if not devices:
            yield 1
            return
        with encoder_pool(self.encoder, devices):
            yield len(devices)


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
    on_event: OnEvent | None = None,
    **overrides: Any,
) -> IngestReport:
    """Ingest files and folders into the configured collection (see :class:`Ingestor`).

    ``overrides`` are settings fields (``collection=``, ``dtype=`` ...) applied on top of ``settings`` or the
    environment, like CLI flags.
    """
    settings = (settings or load_settings()).with_overrides(**overrides)
    options = RunOptions(include, exclude, prune, recreate, dry_run, wait_for_index)
    ingestor = Ingestor(settings, client=client, on_event=on_event)
    try:
        return ingestor.run([Path(p) for p in paths], options)
    except PyMongoError as exc:
        raise server_error(exc, f"ingest into {settings.database}.{settings.collection}") from exc
    finally:
        ingestor.close()
