"""Record corpora at scale: streamed windows, per-record limits, Parquet, length-bucketed batches, worker pools.

All with a tiny random model (fast); the chunks and vectors are compared with what the chunker and the
encoder give for the whole file at once, so windowing can neither lose, duplicate nor renumber a chunk.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymongo import MongoClient

from leaf_mongo.ingest import MANIFEST_COLLECTION, chunk_id, file_hash, ingest
from leaf_mongo.ingest.chunking import Chunker
from leaf_mongo.ingest.loaders import load
from leaf_mongo.ingest.resume import PROGRESS_COLLECTION
from leaf_mongo.ingest.sources import SourceFile
from leaf_mongo.ingest.windows import length_batches
from leaf_mongo.models.encoders import VectorEncoder
from leaf_mongo.models.loading import load_model
from leaf_mongo.models.resolve import spec_from_settings
from leaf_mongo.settings import LeafMongoSettings, load_settings
from leaf_mongo.spec.vectors import from_binary
from tests.tiny_models import make_tiny_model

WORDS = "alpha beta gamma delta river stone cloud maple quartz violet ember harbor".split()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "teacher", dimensions=24, seed=3))


def records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = rng.choice(WORDS, size=int(rng.integers(3, 90)))
        out.append({"_id": f"r{i}", "title": f"t{i % 7}" if i % 3 else "", "text": " ".join(words) + "."})
    return out


def write_jsonl(path: Path, recs: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r) + "\n" for r in recs).encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def settings_for(uri: str, db: str, model: str, **kw: Any) -> LeafMongoSettings:
    base: dict[str, Any] = dict(
        uri=uri, database=db, collection="docs", teacher_model=model, leaf_model=model, query_prompt="",
        chunk_size=24, chunk_overlap=4, batch_size=8, write_batch_size=7, window_size=40, index_wait_seconds=60,
    )  # fmt: skip
    base.update(kw)
    return load_settings(**base)


def stored(client: MongoClient, db: str) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in client[db]["docs"].find()}


def test_windows_match_the_whole_file(tmp_path: Path, tiny: str, mongo_uri: str, db_name: str,
                                      mongo_client: MongoClient) -> None:  # fmt: skip
    path = write_jsonl(tmp_path / "c" / "corpus.jsonl.gz", records(300))
    settings = settings_for(mongo_uri, db_name, tiny)
    report = ingest([path.parent], settings)

    file = SourceFile(path, path.name, path.parent, path.stat().st_size)
    chunker = Chunker.for_model(load_model(tiny), settings.chunk_size, settings.chunk_overlap)
    whole = chunker.chunk(load(file), "jsonl")
    assert report.chunks_written == report.chunks_encoded == len(whole) > 10 * settings.window_size
    assert report.records_read == 300 and report.records_skipped == 0
    docs = stored(mongo_client, db_name)
    h = file_hash(path)
    assert set(docs) == {chunk_id(path.name, c.index, h) for c in whole}
    for c in whole:
        d = docs[chunk_id(path.name, c.index, h)]
        assert (d["chunk"], d["text"], d["record_id"], d["title"]) == (c.index, c.text, c.record_id, c.title)
    encoder = VectorEncoder(spec_from_settings(settings))
    texts = [c.text for c in whole]
    want = encoder.embed_documents(texts, batch_size=8)
    got = np.stack([from_binary(docs[chunk_id(path.name, c.index, h)]["embedding"]) for c in whole])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert mongo_client[db_name][PROGRESS_COLLECTION].count_documents({}) == 0  # replaced by the manifest
    entry = mongo_client[db_name][MANIFEST_COLLECTION].find_one({"source": path.name})
    assert entry is not None and entry["chunks"] == len(whole)

    again = ingest([path.parent], settings)
    assert again.chunks_written == again.chunks_encoded == 0 and again.files_unchanged == [path.name]


def test_size_limit_applies_per_record(tmp_path: Path, tiny: str, mongo_uri: str, db_name: str,
                                       mongo_client: MongoClient) -> None:  # fmt: skip
    recs = records(30)
    recs[4]["text"] = "huge " * 300_000  # 1.5 MB: over the 1 MB limit, which the file as a whole exceeds too
    recs[9] = {"_id": "r9"}  # no text
    path = write_jsonl(tmp_path / "c" / "corpus.jsonl", recs)
    with path.open("a") as fh:
        fh.write("{broken\n")
    report = ingest([path.parent], settings_for(mongo_uri, db_name, tiny, max_file_mb=1))
    assert path.stat().st_size > 1024 * 1024 and report.files_ingested == ["corpus.jsonl"]
    assert report.records_read == 28 and report.records_skipped == 3
    reasons = sorted(s["reason"] for s in report.files_skipped)
    assert reasons[0].startswith("line 10: record has no")
    assert reasons[1].startswith("line 31: not valid JSON")
    assert reasons[2].startswith("line 5: record too large")
    ids = {d["record_id"] for d in stored(mongo_client, db_name).values()}
    assert ids == {f"r{i}" for i in range(30)} - {"r4", "r9"}


def test_parquet_gives_the_same_chunks_as_jsonl(tmp_path: Path, tiny: str, mongo_uri: str, db_name: str,
                                                mongo_client: MongoClient) -> None:  # fmt: skip
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    recs = records(120, seed=5)
    write_jsonl(tmp_path / "j" / "c.jsonl", recs)
    (tmp_path / "p").mkdir()
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "p" / "c.parquet", row_group_size=64)
    settings = settings_for(mongo_uri, db_name, tiny)
    a = ingest([tmp_path / "j"], settings, collection="j")
    b = ingest([tmp_path / "p"], settings, collection="p")
    assert a.chunks_written == b.chunks_written > 120
    key = lambda d: (d["chunk"], d["text"], d["record_id"])  # noqa: E731
    ja = sorted(key(d) for d in mongo_client[db_name]["j"].find())
    pb = sorted(key(d) for d in mongo_client[db_name]["p"].find())
    assert ja == pb
    assert {d["format"] for d in mongo_client[db_name]["p"].find()} == {"parquet"}


def test_length_batches_sort_longest_first() -> None:
    docs = [{"text": "x" * n, "i": i} for i, n in enumerate([5, 1, 9, 5, 3, 7, 2])]
    batches = length_batches(docs, "text", 3)
    assert [[d["i"] for d in b] for b in batches] == [[2, 5, 0], [3, 4, 6], [1]]


def test_corrupt_gzip_mid_file_leaves_the_old_version(tmp_path: Path, tiny: str, mongo_uri: str, db_name: str,
                                                      mongo_client: MongoClient) -> None:  # fmt: skip
    path = write_jsonl(tmp_path / "c" / "corpus.jsonl.gz", records(60))
    settings = settings_for(mongo_uri, db_name, tiny)
    ingest([path.parent], settings)
    before = stored(mongo_client, db_name)
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in records(300, seed=9)).encode())
    path.write_bytes(data[: len(data) * 3 // 4])  # truncated download
    report = ingest([path.parent], settings)
    assert report.files_ingested == [] and "gzip" in report.files_skipped[0]["reason"]
    assert stored(mongo_client, db_name) == before


@pytest.mark.slow
def test_two_workers_match_one_process(tmp_path: Path, tiny: str, mongo_uri: str, db_name: str,
                                       mongo_client: MongoClient) -> None:  # fmt: skip
    path = write_jsonl(tmp_path / "c" / "corpus.jsonl", records(150, seed=2))
    settings = settings_for(mongo_uri, db_name, tiny)
    one = ingest([path.parent], settings, collection="one")
    two = ingest([path.parent], settings, collection="two", workers=2)
    assert one.chunks_written == two.chunks_written == two.chunks_encoded > 100
    a = {d["_id"]: d for d in mongo_client[db_name]["one"].find()}
    b = {d["_id"]: d for d in mongo_client[db_name]["two"].find()}
    assert set(a) == set(b)
    for k, d in a.items():
        assert d["text"] == b[k]["text"]
        np.testing.assert_allclose(from_binary(d["embedding"]), from_binary(b[k]["embedding"]), atol=1e-6)
