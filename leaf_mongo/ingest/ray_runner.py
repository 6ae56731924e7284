"""``leaf-mongo ingest --ray [ADDRESS]``: reading, chunking and teacher encoding as one Ray Data pipeline.

The driver discovers and hashes files and reads the manifest and checkpoints exactly as the local path does.
The pipeline then runs on the cluster: a reader actor per file streams its windows (the same
:class:`~leaf_mongo.ingest.windows.WindowReader`, so the same chunks, numbering and length-sorted batches) and
teacher actors (``map_batches``, one GPU each when the cluster has GPUs) encode one batch per call, the same
batches a local run encodes, so vectors match. Rows come back to the driver in order and go through the
same commit protocol (:class:`~leaf_mongo.ingest.writer.Commits`): same deterministic ids, idempotent
upserts, checkpoints strictly after writes, finalization after a file's last chunk. What differs: chunks a
killed run already wrote after its last checkpoint are encoded again (at most a window; the upserts make that
harmless).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np

from leaf_mongo.errors import LeafMongoError
from leaf_mongo.ingest.chunking import Chunker
from leaf_mongo.ingest.records import is_record_file
from leaf_mongo.ingest.report import IngestReport, no_events
from leaf_mongo.ingest.windows import FileJob, WindowReader, length_batches
from leaf_mongo.ingest.writer import Commits
from leaf_mongo.models.encoders import VectorEncoder
from leaf_mongo.settings import LeafMongoSettings
from leaf_mongo.spec.vector_spec import VectorSpec

_REPORT_STATE = ("files_ingested", "files_skipped", "records_read", "records_skipped")
"""What a remote reader found, sent back to the driver's report in its last row."""


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

        self.settings, self.spec, self.max_record_bytes = settings, spec, max_record_bytes
        teacher = VectorEncoder(spec, device="cpu").teacher  # the document route's tokenizer, as ingest uses
        self.chunker = Chunker.for_model(teacher, settings.chunk_size, settings.chunk_overlap)

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:

        for payload in batch["job"]:
            job: FileJob = pickle.loads(payload)
            report = IngestReport()
            reader = WindowReader(
                self.chunker, self.spec, report, self.settings.window_size, self.max_record_bytes, no_events
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
            state = {k: getattr(report, k) for k in _REPORT_STATE}
            tail = {"docs": [], "commits": [], "finished": [], "failed": [], "report": state}
            yield {"row": np.array([pickle.dumps(tail)], dtype=object)}


class _Teacher:
    """Ray actor: one teacher per device; each call encodes exactly one batch (as a local run would)."""

    def __init__(self, settings: LeafMongoSettings, spec: VectorSpec, device: str | None) -> None:

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


def ingest_with_ray(
    commits: Commits, settings: LeafMongoSettings, jobs: list[FileJob], max_record_bytes: int, address: str | None
) -> None:
    """Run the jobs through a Ray Data pipeline; the driver commits every row (see the module docstring)."""
    ray = _ray()
    spec = commits.spec
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
        fn_constructor_args=(settings, spec, max_record_bytes),
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
    commits.begin(jobs)  # marks each version as started, as the local path does
    for item in ds.iter_rows():
        _commit_row(pickle.loads(item["row"]), commits)


def _commit_row(row: dict[str, Any], commits: Commits) -> None:
    if row["docs"]:
        commits.send(row["docs"], row["emb"])
    for job, chunks in row["finished"]:
        job.chunks = chunks
    commits.end_window(row["commits"], row["failed"], [job for job, _ in row["finished"]])
    report = commits.report
    for key, value in row.get("report", {}).items():
        setattr(report, key, getattr(report, key) + value)
