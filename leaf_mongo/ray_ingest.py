"""``leaf-mongo ingest --ray [ADDRESS]``: reading, chunking and teacher encoding as one Ray Data pipeline.

The driver discovers and hashes files and reads the manifest and checkpoints exactly as the local path does.
The pipeline then runs on the cluster: a reader actor per file streams its windows (the same
:class:`~leaf_mongo.pipeline.WindowReader`, so the same chunks, numbering and length-sorted batches) and
teacher actors (``map_batches``, one GPU each when the cluster has GPUs) encode one batch per call, the same
batches a local run encodes, so vectors match. Rows come back to the driver in order and go through the
local :class:`~leaf_mongo.pipeline.Writer`: same deterministic ids, idempotent upserts, checkpoints strictly
after writes, finalization after a file's last chunk. What differs: chunks a killed run already wrote after its
last checkpoint are encoded again (at most a window; the upserts make that harmless).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from leaf_mongo.errors import LeafMongoError
from leaf_mongo.pipeline import FileJob, Writer, length_batches
from leaf_mongo.records import is_record_file

if TYPE_CHECKING:
    from leaf_mongo.ingest import Ingestor, IngestReport
    from leaf_mongo.settings import LeafMongoSettings
    from leaf_mongo.spec import VectorSpec


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise LeafMongoError("--ray needs Ray: pip install 'leaf-mongo[ray]'") from None
    return ray


class _Reader:
    """Ray actor: turns one file job into batch rows (docs without vectors, plus what the driver must do)."""

    def __init__(self, settings: LeafMongoSettings, spec: VectorSpec, max_record_bytes: int) -> None:
        from leaf_mongo.chunking import Chunker
        from leaf_mongo.encoders import VectorEncoder

        self.settings, self.spec, self.max_record_bytes = settings, spec, max_record_bytes
        teacher = VectorEncoder(spec, device="cpu").teacher  # the document route's tokenizer, as ingest uses
        self.chunker = Chunker.for_model(teacher, settings.chunk_size, settings.chunk_overlap)

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        from leaf_mongo.ingest import IngestReport
        from leaf_mongo.pipeline import WindowReader

        for payload in batch["job"]:
            job: FileJob = pickle.loads(payload)
            report = IngestReport()
            reader = WindowReader(
                self.chunker, self.spec, report, self.settings.window_size, self.max_record_bytes, lambda e, d: None
            )
            for window in reader.windows([job]):
                rows: list[dict[str, Any]] = [
                    {"docs": b, "commits": [], "finished": [], "failed": []}
                    for b in length_batches(window.docs, self.spec.text_field, self.settings.batch_size)
                ]
                if not rows:
                    rows.append({"docs": [], "commits": [], "finished": [], "failed": []})
                last = rows[-1]
                last["commits"] = [(j, cp) for j, cp in window.commits if is_record_file(j.file) and not j.failed]
                last["finished"] = [(j, j.chunks) for j in window.finished]
                last["failed"] = [j for j in window.jobs if j.failed]
                yield {"row": np.array([pickle.dumps(r) for r in rows], dtype=object)}
            tail = {"docs": [], "commits": [], "finished": [], "failed": [], "report": report.to_state()}
            yield {"row": np.array([pickle.dumps(tail)], dtype=object)}


class _Teacher:
    """Ray actor: one teacher per device; each call encodes exactly one batch (as a local run would)."""

    def __init__(self, settings: LeafMongoSettings, spec: VectorSpec, device: str | None) -> None:
        from leaf_mongo.encoders import VectorEncoder

        self.encoder = VectorEncoder(
            spec, device=device, teacher_backend=settings.teacher_backend, threads=settings.backend_threads
        )
        batch_size = settings.batch_size
        self.text_field = spec.text_field
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for payload in batch["row"]:
            row = pickle.loads(payload)
            texts = [d[self.text_field] for d in row["docs"]]
            emb = self.encoder.embed_documents(texts, batch_size=self.batch_size) if texts else None
            row["emb"] = emb
            out.append(pickle.dumps(row))
        return {"row": np.array(out, dtype=object)}


def ingest_with_ray(ingestor: Ingestor, jobs: list[FileJob], report: IngestReport, address: str | None) -> None:
    """Run the jobs through a Ray Data pipeline; the driver writes (see the module docstring)."""
    ray = _ray()
    settings, spec = ingestor.settings, ingestor.spec
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # keeps --json output clean
    if not ray.is_initialized():
        ray.init(address=address or None, log_to_driver=False, configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # rows reach the writer in window order
    ctx.enable_progress_bars = False
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    actors = settings.workers or gpus or max(int(resources.get("CPU", 1)) - 1, 1)
    ds = ray.data.from_items([{"job": pickle.dumps(j)} for j in jobs], override_num_blocks=max(len(jobs), 1))
    ds = ds.map_batches(
        _Reader,
        fn_constructor_args=(settings, spec, ingestor.max_record_bytes),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=0.5,
    )
    ds = ds.map_batches(
        _Teacher,
        fn_constructor_args=(settings, spec, "cuda" if gpus else "cpu"),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0,
        num_cpus=0 if gpus else 1,
    )
    writer = Writer(ingestor.collection, report, settings.write_batch_size, ingestor._finalize)
    writer.start()
    full = spec.full_precision_field
    try:
        for job in jobs:  # marks each version as started, as the local path does
            if is_record_file(job.file) and not job.resumed:
                writer.put("checkpoint", (job, job.start))
        for item in ds.iter_rows():
            row = pickle.loads(item["row"])
            _write_row(row, ingestor, writer, report, full)
    finally:
        writer.close()


def _write_row(row: dict[str, Any], ingestor: Ingestor, writer: Writer, report: IngestReport, full: str | None) -> None:
    from leaf_mongo.vectors import to_binary

    spec = ingestor.spec
    if row["docs"]:
        vectors = ingestor.encoder.stored_vectors(row["emb"])
        out = []
        for d, v, e in zip(row["docs"], vectors, row["emb"], strict=True):
            doc = {**d, spec.embedding_field: v}
            if full:
                doc[full] = to_binary(e, "float32")
            out.append(doc)
        writer.put("docs", out)
        report.chunks_encoded += len(out)
        ingestor.on_event("chunks_encoded", {"n": len(out)})
    for job, cp in row["commits"]:
        writer.put("checkpoint", (job, cp))
    for job in row["failed"]:
        if is_record_file(job.file):
            writer.put("discard", job)
    for job, chunks in row["finished"]:
        job.chunks = chunks
        writer.put("finalize", job)
        ingestor.on_event("file_done", {"path": job.file.relpath, "chunks": chunks})
    if "report" in row:
        report.merge_state(row["report"])
