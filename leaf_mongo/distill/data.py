"""Training texts: document chunks and titles (loaded and chunked as ingest does), queries, hold-out splits,
and their teacher vectors through the embedding cache."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leaf_mongo.distill.config import TEACHER_BLOCK, DistillError
from leaf_mongo.ingest.discovery import discover
from leaf_mongo.ingest.loaders import load
from leaf_mongo.ingest.sources import LoadError, SkippedFile, SourceFile
from leaf_mongo.models.cache import open_cache
from leaf_mongo.models.encoders import SideEncoder
from leaf_mongo.models.layout import Task


def collect_documents(
    paths: Sequence[Path],
    chunker: Any,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_file_bytes: int = 10 * 1024 * 1024,
) -> tuple[list[str], list[str], list[dict[str, str]]]:
    """Chunk texts and record titles of every supported file under ``paths`` (each deduplicated, in order),
    and what was skipped."""
    for p in paths:
        if not Path(p).exists():
            raise DistillError(f"path {str(p)!r} does not exist")
    found = discover([Path(p) for p in paths], include=include, exclude=exclude, max_file_bytes=max_file_bytes)
    texts: dict[str, None] = {}
    titles: dict[str, None] = {}
    skipped: list[dict[str, str]] = []
    for f in found:
        if isinstance(f, SkippedFile):
            skipped.append({"path": f.path, "reason": f.reason})
            continue
        assert isinstance(f, SourceFile)
        try:
            records = load(f)
            chunks = chunker.chunk(records, f.format)
        except LoadError as exc:
            skipped.append({"path": str(f.root / f.relpath), "reason": exc.reason})
            continue
        texts.update(dict.fromkeys(c.text for c in chunks if c.text.strip()))
        titles.update(dict.fromkeys(r.title.strip() for r in records if r.title and r.title.strip()))
    return list(texts), list(titles), skipped


def read_query_ids(paths: Sequence[Path]) -> set[str]:
    """Query ids from qrels TSVs (first column; a ``query-id`` header is skipped) or plain id lists."""
    ids: set[str] = set()
    for p in paths:
        for line in Path(p).read_text(encoding="utf-8").splitlines():
            first = line.split("\t")[0].strip()
            if first and first not in {"query-id", "query_id", "qid"}:
                ids.add(first)
    return ids


def read_queries(paths: Sequence[Path], ids: set[str] | None = None) -> list[str]:
    """Query texts (deduplicated, in order) from BEIR ``queries.jsonl[.gz]`` (``_id``, ``text``) or text files.

    A ``.txt`` file is a query log, one query a line (no ids, so ``ids`` cannot filter it).
    """
    texts: dict[str, None] = {}
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise DistillError(f"queries file {str(p)!r} does not exist")
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        lines = raw.decode("utf-8").splitlines()
        if ".jsonl" not in path.name and ".json" not in path.name:
            if ids is not None:
                raise DistillError(f"{path}: --query-ids needs a queries .jsonl with _id fields")
            texts.update(dict.fromkeys(s.strip() for s in lines if s.strip()))
            continue
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DistillError(f"{path} line {number}: not valid JSON ({exc.msg})") from None
            text = obj.get("text", obj.get("query")) if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise DistillError(f'{path} line {number}: no "text" string')
            qid = obj.get("_id", obj.get("id"))
            if ids is not None and str(qid) not in ids:
                continue
            if text.strip():
                texts[text.strip()] = None
    return list(texts)


def holdout_split(n: int, fraction: float, seed: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices. At least ``min(50, n // 10)`` texts are held out (when ``fraction > 0``) so
    the alignment figure for a few hundred queries is not a mean over a handful."""
    if n == 0 or fraction <= 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    k = max(round(n * fraction), min(50, n // 10), 1 if n >= 2 else 0)
    perm = np.random.default_rng([seed, salt]).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def fingerprint_of(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\x00")
    return h.hexdigest()


# -- teacher ----------------------------------------------------------------------------------


def teacher_embeddings(
    teacher_name: str,
    texts: Sequence[str],
    prompt: str,
    cache_dir: Path,
    device: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    task: Task = "document",
) -> np.ndarray:
    """Raw teacher outputs through the embedding cache, block by block, as ingest computes them.

    Through the task API (``encode_document`` / ``encode_query``, so a Router teacher takes the route of the
    texts' task) with ``prompt`` applied exactly once. Documents use ingest's cache key (the teacher as given, the
    applied document prompt), so chunks an ingest embedded cost nothing here; query-route vectors get a key of
    their own (a Router's query route differs from its document route for the same text and prompt).
    """

    cache = open_cache(cache_dir)
    side = SideEncoder(teacher_name, task, device=device)
    key = teacher_name if task == "document" else f"{teacher_name}#query-route"

    def compute(batch: list[str]) -> np.ndarray:
        return side.encode(batch, prompt, batch_size=64)

    parts = []
    for start in range(0, len(texts), TEACHER_BLOCK):
        parts.append(cache.encode(key, prompt, list(texts[start : start + TEACHER_BLOCK]), compute))
        if on_progress:
            on_progress(min(start + TEACHER_BLOCK, len(texts)), len(texts))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)
