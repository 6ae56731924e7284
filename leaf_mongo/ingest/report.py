"""What an ingest run reports (``--json``), and the progress events it emits on the way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Event = Literal["scan", "file_start", "records_read", "file_done", "chunks_encoded", "index_status"]
OnEvent = Callable[[Event, dict[str, Any]], None]
"""Progress callback: the CLI draws its bars from these; the Python API may pass its own."""


def no_events(_event: Event, _data: dict[str, Any]) -> None:
    """The default :data:`OnEvent`: progress is not reported."""


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
    """Records of record corpora (JSONL, Parquet); a text file is a file, not records."""
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
