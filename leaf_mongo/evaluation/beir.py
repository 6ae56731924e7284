"""BEIR folders: corpus, one split's queries and qrels, and seeded subsamples for notebooks and tests."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leaf_mongo.errors import LeafMongoError


@dataclass
class BeirDataset:
    """A BEIR folder reduced to what an evaluation may use: the corpus file, and one split's queries."""

    name: str
    root: Path
    corpus_path: Path
    queries: dict[str, str]
    """Texts of the split's query ids only (nothing else is read from ``queries.jsonl``)."""
    qrels: dict[str, dict[str, int]]
    split: str = "test"
    sampled: bool = False
    corpus_docs: int | None = None

    @property
    def tag(self) -> str:
        """Short name for collection names: dataset name, plus a fingerprint of a sampled corpus."""
        base = slug(self.name, 24) or "dataset"
        if not self.sampled:
            return base
        return f"{base}-s{digest(self.corpus_path.parent.name)[:6]}"


def slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")


def digest(*parts: object) -> str:
    return hashlib.sha1("\x00".join(map(str, parts)).encode()).hexdigest()


def find_corpus(root: Path) -> Path:
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (root / name).is_file():
            return root / name
    raise LeafMongoError(f"{root} is not a BEIR folder: no corpus.jsonl or corpus.jsonl.gz")


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``query-id<TAB>corpus-id<TAB>score`` lines; a header line (non-integer score) is skipped."""
    if not path.is_file():
        raise LeafMongoError(f"qrels file {path} does not exist")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split("\t")
            if not line.strip():
                continue
            if len(parts) < 3:
                raise LeafMongoError(f"{path}:{n}: expected query-id, corpus-id and score separated by tabs")
            try:
                score = int(float(parts[2]))
            except ValueError:
                if n == 1:
                    continue  # header
                raise LeafMongoError(f"{path}:{n}: score {parts[2]!r} is not a number") from None
            qrels.setdefault(parts[0], {})[parts[1]] = score
    return qrels


def read_queries(path: Path, wanted: set[str]) -> dict[str, str]:
    """Texts of the ``wanted`` query ids; other lines are skipped unparsed beyond their id."""
    if not path.is_file():
        raise LeafMongoError(f"queries file {path} does not exist")
    out: dict[str, str] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            qid = str(rec.get("_id"))
            if qid in wanted:
                out[qid] = str(rec.get("text") or "")
    missing = wanted - set(out)
    if missing:
        raise LeafMongoError(f"{path} has no text for {len(missing)} judged query id(s), e.g. {sorted(missing)[0]!r}")
    return out


def iter_corpus(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for line in fh:
            if line.strip():
                yield json.loads(line)


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    """Read a BEIR folder: ``corpus.jsonl[.gz]``, ``queries.jsonl``, ``qrels/<split>.tsv``."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise LeafMongoError(f"dataset folder {str(root)!r} does not exist")
    corpus = find_corpus(root)
    qrels = read_qrels(root / "qrels" / f"{split}.tsv")
    queries = read_queries(root / "queries.jsonl", set(qrels))
    return BeirDataset(root.resolve().name, root, corpus, queries, qrels, split)


def subsample(
    data: BeirDataset,
    *,
    max_queries: int | None = None,
    sample_docs: int | None = None,
    seed: int = 0,
    work_dir: str | Path = "~/.cache/leaf-mongo/eval",
) -> BeirDataset:
    """A smaller evaluation for notebooks and tests, reproducible from ``seed``.

    ``max_queries``: a seeded random choice of the split's queries. ``sample_docs``: a corpus of that many
    documents keeping every document judged for the chosen queries (so their relevant documents can still
    be found) plus a seeded random sample of the others, written as ``corpus.jsonl`` under ``work_dir``
    (outside any repository; same records, so cached teacher outputs still apply).
    """
    qids = sorted(data.qrels)
    if max_queries is not None and max_queries < len(qids):
        qids = sorted(random.Random(seed).sample(qids, max_queries))
    qrels = {q: data.qrels[q] for q in qids}
    queries = {q: data.queries[q] for q in qids}
    out = BeirDataset(data.name, data.root, data.corpus_path, queries, qrels, data.split)
    if sample_docs is None:
        return out
    ids = [str(r["_id"]) for r in iter_corpus(data.corpus_path)]
    if sample_docs >= len(ids):
        out.corpus_docs = len(ids)
        return out
    judged = {d for q in qids for d in qrels[q]} & set(ids)
    others = sorted(set(ids) - judged)
    extra = max(0, sample_docs - len(judged))
    keep = judged | set(random.Random(seed).sample(others, min(extra, len(others))))
    st = data.corpus_path.stat()
    fingerprint = digest(data.corpus_path.resolve(), st.st_size, st.st_mtime_ns, *sorted(keep))[:12]
    folder = Path(work_dir).expanduser() / f"{slug(data.name, 24) or 'dataset'}-{fingerprint}"
    path = folder / "corpus.jsonl"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".corpus.{os.getpid()}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            for rec in iter_corpus(data.corpus_path):
                if str(rec["_id"]) in keep:
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        tmp.replace(path)
    out.corpus_path = path
    out.sampled = True
    out.corpus_docs = len(keep)
    return out
