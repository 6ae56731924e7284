"""What discovery and loading hand on: accepted and skipped files, loaded records, sections, formats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
"""Default size limit; the setting ``LEAF_MONGO_MAX_FILE_MB`` raises it. Record corpora (``.jsonl``,
``.jsonl.gz``, Parquet) are streamed, so for them it limits each record instead
(see :mod:`leaf_mongo.ingest.records`)."""

RECORD_FORMATS = ("jsonl", "parquet")

FORMATS: dict[str, str] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".rst": "rst",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
    ".parquet": "parquet",
}
"""File name suffix (lower case) -> format name stored in :attr:`LoadedRecord.format`."""


@dataclass(frozen=True)
class SourceFile:
    """A file that discovery accepted; ``relpath`` is its stable identity under ``root``."""

    path: Path
    """Absolute, resolved path of the content (the target when reached through a symlink)."""
    relpath: str
    """POSIX path relative to the root it was found under; the name for a file given directly."""
    root: Path
    """Resolved folder the file was found under (the parent folder for a file given directly)."""
    size: int

    @property
    def format(self) -> str:
        """Format name derived from the file name (see :data:`FORMATS`)."""
        fmt = format_for(self.relpath) or format_for(self.path.name)
        if fmt is None:  # discover never yields these; guard direct construction
            raise LoadError(f"unsupported file type {suffix_label(self.relpath)}")
        return fmt


@dataclass(frozen=True)
class SkippedFile:
    """A path that will not be ingested, and why (shown to the user, one line)."""

    path: str
    """The path as the user would write it: the given path joined with the relative path."""
    reason: str
    relpath: str | None = None
    """Relative path under its root when known, to match against :attr:`SourceFile.relpath`."""


@dataclass(frozen=True)
class LoadedRecord:
    """Plain text of one document (a whole file, or one line of a ``.jsonl`` corpus)."""

    text: str
    title: str | None
    record_id: str | None
    format: str


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path, so chunks can carry their headings."""

    headings: tuple[str, ...]
    text: str


class LoadError(Exception):
    """A file could not be decoded or parsed; ``reason`` is the one-line message to report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def format_for(name: str) -> str | None:
    """Format for a file name by its suffix (case-insensitive), or None when unsupported."""
    lower = name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):  # ".jsonl.gz" before ".gz"-less ones
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return FORMATS[suffix]
    return None


def suffix_label(name: str) -> str:
    suffix = PurePosixPath(name).suffix
    return suffix.lower() if suffix else "(no extension)"
