"""Turn each discovered file into plain text records: :func:`load`.

Finding files is :mod:`leaf_mongo.ingest.discovery`, the shared types are :mod:`leaf_mongo.ingest.sources`
and the per-format parsers :mod:`leaf_mongo.ingest.formats`; this module decodes bytes and dispatches. Loading raises
:class:`LoadError` with a one-line reason a user can act on, so the caller reports the file as skipped and goes on.
"""

from __future__ import annotations

import codecs
import gzip

from leaf_mongo.ingest.formats import first_heading, html_to_text, load_jsonl, load_pdf, markdown_sections, rst_sections
from leaf_mongo.ingest.records import BadRecord, iter_records
from leaf_mongo.ingest.sources import (
    LoadedRecord,
    LoadError,
    SourceFile,
)

__all__ = ["load"]


def _decode(data: bytes) -> str:
    """Strict UTF-8 (BOM allowed; UTF-16 with a BOM too), newlines normalised to ``\\n``."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not data.startswith(codecs.BOM_UTF32_LE):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise LoadError(f"not valid UTF-16 text (offset {exc.start})") from None
    else:
        if b"\x00" in data:
            raise LoadError("binary content")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            offset = exc.start + (3 if data.startswith(codecs.BOM_UTF8) else 0)
            raise LoadError(f"not valid UTF-8 text (byte 0x{data[offset]:02x} at offset {offset})") from None
    if "\x00" in text:
        raise LoadError("binary content")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _require_text(text: str) -> str:
    if not text.strip():
        raise LoadError("no text")
    return text


def _read(file: SourceFile) -> bytes:
    try:
        return file.path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from None


def load(file: SourceFile) -> list[LoadedRecord]:
    """Read one discovered file into records (one per file; one per line for ``.jsonl``).

    Raises :class:`LoadError` with a one-line reason when the file cannot be decoded or parsed,
    so the caller can report it as skipped and carry on.
    """
    fmt = file.format
    if fmt == "pdf":
        return [load_pdf(_read(file))]
    if fmt == "parquet":
        return _load_parquet(file)
    if fmt == "jsonl":
        data = _read(file)
        if file.relpath.lower().endswith(".gz") or data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise LoadError(f"not a valid gzip file ({exc})") from None
        return load_jsonl(_decode(data))
    text = _require_text(_decode(_read(file)))
    if fmt == "markdown":
        return [LoadedRecord(text, first_heading(markdown_sections(text)), None, fmt)]
    if fmt == "rst":
        return [LoadedRecord(text, first_heading(rst_sections(text)), None, fmt)]
    if fmt == "html":
        body, title = html_to_text(text)
        return [LoadedRecord(_require_text(body), title, None, fmt)]
    return [LoadedRecord(text, None, None, fmt)]


def _load_parquet(file: SourceFile) -> list[LoadedRecord]:
    """A whole Parquet corpus, strict like ``.jsonl``: any bad row refuses the file."""

    records: list[LoadedRecord] = []
    for item in iter_records(file, max_record_bytes=1 << 62):
        if isinstance(item.record, BadRecord):
            raise LoadError(f"{item.record.where}: {item.record.reason}")
        records.append(item.record)
    if not records:
        raise LoadError("no text")
    return records
