"""``leaf-mongo copy``: a collection with its spec, vectors, manifest and indexes, local store <-> server, no
re-embedding; a second run writes nothing, an interrupted one is finished by the next, another spec is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from typer.testing import CliRunner

from leaf_mongo.cli import app
from leaf_mongo.errors import SpecMismatchError
from leaf_mongo.ingest import ingest
from leaf_mongo.ingest.copy import copy_collection
from leaf_mongo.local import ensure_server, stop
from leaf_mongo.settings import load_settings
from tests.test_ingest_crash import WORDS


def _corpus(root: Path, files: int = 6) -> Path:
    root.mkdir()
    for i in range(files):
        words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(40))
        (root / f"f{i}.md").write_text(f"# Doc {i}\n\n{words}.\n\n{words[::-1]}.\n")
    return root


def _settings(uri: str, db: str, model: str, **kw: Any) -> Any:
    return load_settings(uri=uri, database=db, collection="docs", teacher_model=model, leaf_model=model,
                         query_prompt="", chunk_size=48, chunk_overlap=8, batch_size=16, fulltext_fields=["text"],
                         **kw)  # fmt: skip


def _state(client: MongoClient, db: str) -> tuple[Any, ...]:
    d = client[db]
    chunks = sorted(d.docs.find(), key=lambda c: c["_id"])
    files = sorted((m["source"], m["content_hash"], m["chunks"]) for m in d.leaf_mongo_files.find())
    spec = d.leaf_mongo_specs.find_one({"_id": "docs"}, {"spec": 1, "index_name": 1, "fulltext_index_name": 1})
    indexes = sorted((i["name"], i["type"], i["status"]) for i in d.docs.list_search_indexes())
    return chunks, files, spec, indexes


def test_copy_to_the_local_store_and_back(tmp_path: Path, mongo_uri: str, db_name: str, mongo_client: MongoClient,
                                         minilm_path: str) -> None:  # fmt: skip
    root = _corpus(tmp_path / "corpus")
    ingest([root], _settings(mongo_uri, db_name, minilm_path))
    source = _state(mongo_client, db_name)
    assert source[0] and len(source[3]) == 2
    folder = tmp_path / "store"
    runner = CliRunner()
    try:
        args = ["copy", "--from", mongo_uri, "--to", f"local:{folder}", "--db", db_name, "--collection", "docs"]
        first = runner.invoke(app, [*args, "--json"])
        assert first.exit_code == 0, first.output
        report = json.loads(first.stdout)
        assert report["chunks"] == report["written"] == len(source[0]) and report["deleted"] == 0
        local: MongoClient = MongoClient(ensure_server(folder))
        assert _state(local, db_name) == source
        # An ingest into the copy finds everything there: nothing encoded, nothing written.
        rerun = ingest([root], _settings(ensure_server(folder), db_name, minilm_path))
        assert rerun.chunks_encoded == rerun.chunks_written == 0
        # Idempotent: again, nothing to write.
        again = copy_collection(mongo_client[db_name].docs, local[db_name].docs)
        assert again.written == again.deleted == 0
        # Resumable: a copy killed halfway (some chunks, no spec yet) plus a stray chunk is finished exactly.
        ids = [c["_id"] for c in source[0]]
        local[db_name].docs.delete_many({"_id": {"$in": ids[: len(ids) // 2]}})
        local[db_name].docs.insert_one({"_id": "stray", "text": "x"})
        local[db_name].leaf_mongo_specs.delete_many({})
        resumed = copy_collection(mongo_client[db_name].docs, local[db_name].docs)
        assert (resumed.written, resumed.deleted) == (len(ids) // 2, 1)
        assert _state(local, db_name) == source
        # And back, into another database of the first server.
        back = runner.invoke(app, ["copy", "--from", f"local:{folder}", "--to", mongo_uri, "--db", db_name, "-c",
                                   "docs", "--to-database", f"{db_name}_back"])  # fmt: skip
        assert back.exit_code == 0, back.output
        assert _state(mongo_client, f"{db_name}_back") == source
        local.close()
    finally:
        mongo_client.drop_database(f"{db_name}_back")
        stop(folder)


def test_another_spec_is_refused(tmp_path: Path, mongo_uri: str, db_name: str, mongo_client: MongoClient,
                                 minilm_path: str) -> None:  # fmt: skip
    root = _corpus(tmp_path / "corpus", files=2)
    ingest([root], _settings(mongo_uri, db_name, minilm_path))
    other = f"{db_name}_other"
    try:
        ingest([root], _settings(mongo_uri, other, minilm_path, dimensions=128))
        with pytest.raises(SpecMismatchError, match="dimensions"):
            copy_collection(mongo_client[db_name].docs, mongo_client[other].docs)
        # A source with nothing ingested: one clear line, exit 2.
        empty = CliRunner().invoke(app, ["copy", "--from", mongo_uri, "--to", mongo_uri, "--db", f"{db_name}_none"])
        assert empty.exit_code == 2 and "no stored spec" in empty.output
    finally:
        mongo_client.drop_database(other)
