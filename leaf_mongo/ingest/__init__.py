"""Ingest: files → records → chunks → teacher vectors → MongoDB, idempotent and crash-safe.

The modules follow the data: ``sources`` (shared types) → ``discovery`` / ``formats`` → ``records`` →
``loaders`` → ``chunking`` → ``windows`` → ``writer`` (the commit protocol) → ``ray_runner`` / ``pool`` →
``run`` (:class:`Ingestor`, :func:`ingest`). ``manifest`` and ``resume`` hold the convergence state.
"""

from leaf_mongo.ingest.manifest import MANIFEST_COLLECTION, SOURCE_INDEX
from leaf_mongo.ingest.report import Event, IngestReport
from leaf_mongo.ingest.run import Ingestor, RunOptions, file_hash, ingest
from leaf_mongo.ingest.windows import chunk_id

__all__ = [
    "MANIFEST_COLLECTION",
    "SOURCE_INDEX",
    "Event",
    "IngestReport",
    "Ingestor",
    "RunOptions",
    "chunk_id",
    "file_hash",
    "ingest",
]
