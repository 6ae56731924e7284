"""Streaming readers for record corpora (``.jsonl``, ``.jsonl.gz``, Parquet), in bounded memory.

A record corpus is one file holding many documents (a BEIR ``corpus.jsonl``, a Hugging Face dataset's
Parquet shards). Ingest reads it a window at a time instead of whole, so memory does not grow with the
corpus. The size limit (``LEAF_MONGO_MAX_FILE_MB``) is meant for single documents, so here it applies per
record: a record too large, or one that is not a valid BEIR record, is reported as a :class:`BadRecord`
with its reason and the rest of the file goes in. Only a problem with the file as a whole (unreadable,
not gzip, not Parquet) raises :class:`~leaf_mongo.ingest.loaders.LoadError`.

Every item carries its ordinal (lines for JSONL, rows for Parquet, counting bad ones), which is what a
resumed run skips up to.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from leaf_mongo.ingest.formats import valid_unicode
from leaf_mongo.ingest.sources import LoadedRecord, LoadError, SourceFile

__all__ = ["RECORD_FORMATS", "BadRecord", "RecordItem", "is_record_file", "iter_records"]

RECORD_FORMATS = frozenset({"jsonl", "parquet"})
"""Formats holding many records per file: streamed, size-limited per record, resumable inside the file."""

_READ_BLOCK = 1 << 16
_PARQUET_BATCH = 1024


@dataclass(frozen=True)
class BadRecord:
    """A record left out, and why (``where`` is "line 12" or "row 12")."""

    where: str
    reason: str


@dataclass(frozen=True)
class RecordItem:
    """One position of the stream: ``ordinal`` counts from 0; ``done`` is how far into the file it is
    (bytes of the file, compressed for gzip; rows for Parquet) and ``total`` the file's extent in that unit."""

    ordinal: int
    record: LoadedRecord | BadRecord
    done: int
    total: int


def is_record_file(file: SourceFile) -> bool:
    return file.format in RECORD_FORMATS


def iter_records(file: SourceFile, max_record_bytes: int, start: int = 0) -> Iterator[RecordItem]:
    """Records of a record file in order; items before ordinal ``start`` are read but not parsed
    (except for the ``_id`` duplicate check, which must see every record to give the same answer)."""
    if file.format == "parquet":
        yield from _parquet(file, max_record_bytes, start)
    elif file.format == "jsonl":
        yield from _jsonl(file, max_record_bytes, start)
    else:
        raise LoadError(f"{file.format} is not a record format")


class _SeenIds:
    """Record ids seen so far, as 8-byte digests (about 70 bytes per record in a Python set)."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def add(self, record_id: str) -> bool:
        """False when the id was already seen."""
        key = hashlib.blake2b(record_id.encode("utf-8", "replace"), digest_size=8).digest()
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def _open_jsonl(file: SourceFile) -> tuple[IO[bytes], IO[bytes]]:
    """(stream to read lines from, raw file whose position tells progress)."""
    try:
        raw = file.path.open("rb")
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from None
    head = raw.read(2)
    raw.seek(0)
    if file.relpath.lower().endswith(".gz") or head == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")), cast(IO[bytes], raw)
    return cast(IO[bytes], raw), cast(IO[bytes], raw)


def _read_line(stream: IO[bytes], limit: int) -> tuple[bytes, bool]:
    """One line of at most ``limit`` bytes kept in memory; (line, too_long). b"" at the end."""
    line = stream.readline(limit + 1)
    if len(line) <= limit or line.endswith(b"\n"):
        return line, False
    while line and not line.endswith(b"\n"):  # discard the rest without holding it
        line = stream.readline(_READ_BLOCK)
    return b"x", True


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _jsonl(file: SourceFile, max_record_bytes: int, start: int) -> Iterator[RecordItem]:
    stream, raw = _open_jsonl(file)
    seen = _SeenIds()
    total = file.size
    number = 0
    ordinal = -1
    try:
        with raw, stream:
            while True:
                try:
                    line, too_long = _read_line(stream, max_record_bytes)
                except (OSError, EOFError, zlib.error) as exc:
                    raise LoadError(f"not a valid gzip file ({exc})") from None
                if not line:
                    break
                number += 1
                if not too_long and not line.strip():
                    continue
                ordinal += 1
                where = f"line {number}"
                if too_long:
                    item: LoadedRecord | BadRecord = BadRecord(
                        where, f"record too large (> limit {_mb(max_record_bytes)}; raise LEAF_MONGO_MAX_FILE_MB)"
                    )
                else:
                    item = _parse_line(line, where, seen, parse=ordinal >= start)
                yield RecordItem(ordinal, item, raw.tell(), total)
    except LoadError:
        raise
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from None


_ID_ONLY = LoadedRecord("", None, None, "jsonl")


def _parse_line(line: bytes, where: str, seen: _SeenIds, parse: bool) -> LoadedRecord | BadRecord:
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "not valid UTF-8"
        return BadRecord(where, f"not valid JSON ({msg})")
    if not isinstance(obj, dict):
        return BadRecord(where, "not a JSON object")
    return _record(obj, where, seen, parse)


def _record(obj: dict[str, Any], where: str, seen: _SeenIds, parse: bool) -> LoadedRecord | BadRecord:
    body = obj.get("text")
    if not isinstance(body, str):
        return BadRecord(where, 'record has no "text" string')
    raw_id = obj.get("_id", obj.get("id"))
    record_id = None if raw_id is None else str(raw_id)
    if record_id is not None and not seen.add(record_id):
        return BadRecord(where, f"duplicate _id {record_id!r}")
    if not parse:
        return _ID_ONLY
    title = obj.get("title")
    body, title = valid_unicode(body), valid_unicode(title) if isinstance(title, str) else None
    title = title.strip() if isinstance(title, str) and title.strip() else None
    return LoadedRecord(body, title, record_id, "jsonl")


def _parquet(file: SourceFile, max_record_bytes: int, start: int) -> Iterator[RecordItem]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise LoadError("Parquet support needs pyarrow: pip install 'leaf-mongo[parquet]'") from None
    try:
        pf = pq.ParquetFile(file.path)
    except Exception as exc:
        raise LoadError(f"not a valid Parquet file ({' '.join(str(exc).split())})") from None
    names = set(pf.schema_arrow.names)
    if "text" not in names:
        raise LoadError('Parquet file has no "text" column')
    columns = [c for c in ("_id", "id", "title", "text") if c in names]
    total = pf.metadata.num_rows
    seen = _SeenIds()
    ordinal = -1
    try:
        for batch in pf.iter_batches(batch_size=_PARQUET_BATCH, columns=columns):
            for row in batch.to_pylist():
                ordinal += 1
                where = f"row {ordinal + 1}"
                size = sum(len(v.encode("utf-8", "replace")) for v in row.values() if isinstance(v, str))
                if size > max_record_bytes:
                    item: LoadedRecord | BadRecord = BadRecord(
                        where, f"record too large ({_mb(size)} > limit {_mb(max_record_bytes)})"
                    )
                else:
                    if row.get("_id") is None:
                        row.pop("_id", None)
                    item = _record(row, where, seen, parse=ordinal >= start)
                yield RecordItem(ordinal, item, ordinal + 1, total)
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(f"cannot read Parquet data ({' '.join(str(exc).split())})") from None
