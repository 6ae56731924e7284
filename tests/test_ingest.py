"""End-to-end ingest against the server fixtures (emulator, or a real one via LEAF_MONGO_TEST_URI)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from bson.binary import Binary
from pymongo import MongoClient
from typer.testing import CliRunner

from leaf_mongo import ServerError, SpecMismatchError, load_settings, load_spec
from leaf_mongo.cli.app import app
from leaf_mongo.ingest import MANIFEST_COLLECTION, SOURCE_INDEX, ingest
from leaf_mongo.settings import LeafMongoSettings
from leaf_mongo.spec.vectors import from_binary
from leaf_mongo.testing import MongoEmulator
from tests.fixture_tree import build_fixture_tree


def make_settings(mongo_uri: str, db_name: str, model: str, **kw: Any) -> LeafMongoSettings:
    base: dict[str, Any] = dict(
        uri=mongo_uri, database=db_name, collection="docs", teacher_model=model, leaf_model=model,
        query_prompt="", chunk_size=96, chunk_overlap=16, index_wait_seconds=120, batch_size=16,
    )  # fmt: skip
    base.update(kw)
    return load_settings(**base)


def snapshot(client: MongoClient, db: str, coll: str = "docs") -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in client[db][coll].find()}


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    root = tmp_path / "docs"
    return root, build_fixture_tree(root)


def test_fixture_tree(tree: tuple[Path, dict[str, Any]], mongo_uri: str, db_name: str, minilm_path: str,
                      mongo_client: MongoClient) -> None:  # fmt: skip
    root, expected = tree
    settings = make_settings(mongo_uri, db_name, minilm_path)
    report = ingest([root], settings)

    want_ingested = {k for k, e in expected.items() if e.outcome == "ingested"}
    want_skipped = {k: e.reason for k, e in expected.items() if e.outcome == "skipped"}
    # Ingest streams record corpora: a bad line is skipped with its reason and the rest goes in (load() alone
    # refuses the whole file).
    want_ingested.add("corpus/bad.jsonl")
    want_skipped["corpus/bad.jsonl"] = "line 2: not valid JSON"
    assert report.records_skipped == 1
    assert set(report.files_ingested) == want_ingested
    skipped = {str(Path(s["path"]).relative_to(root)): s["reason"] for s in report.files_skipped}
    assert set(skipped) == set(want_skipped)
    for path, reason in want_skipped.items():
        assert reason in skipped[path], (path, skipped[path])

    coll = mongo_client[db_name]["docs"]
    docs = list(coll.find())
    assert len(docs) == report.chunks_written > len(want_ingested)
    assert {d["source"] for d in docs} == want_ingested
    spec = load_spec(coll)
    assert spec is not None and spec.dimensions == 384 and spec.teacher_model == minilm_path
    for d in docs:
        assert isinstance(d["embedding"], Binary) and from_binary(d["embedding"]).shape == (384,)
        assert {"text", "source", "chunk", "content_hash", "title"} <= set(d)
    per_source: dict[str, list[int]] = {}
    for d in docs:
        per_source.setdefault(d["source"], []).append(d["chunk"])
    assert all(sorted(v) == list(range(len(v))) for v in per_source.values())
    corpus = [d for d in docs if d["source"] == "corpus/corpus.jsonl"]
    assert {d["record_id"] for d in corpus} == {"doc1", "doc2", "doc3"}
    guide = [d for d in docs if d["source"] == "guide.md"]
    assert any("Install" in d["headings"] for d in guide)
    assert report.index_status in ("READY", "BUILDING") and report.index_action == "created"

    # A second run writes nothing.
    before = snapshot(mongo_client, db_name)
    again = ingest([root], settings)
    assert again.chunks_written == again.chunks_deleted == 0 and again.files_ingested == []
    assert set(again.files_unchanged) == want_ingested
    assert snapshot(mongo_client, db_name) == before

    # Editing one file rewrites only its chunks.
    (root / "notes.txt").write_text("A completely new note about sourdough bread and its starter.\n")
    edit = ingest([root], settings)
    assert edit.files_ingested == ["notes.txt"]
    after = snapshot(mongo_client, db_name)
    old_notes = {k for k, d in before.items() if d["source"] == "notes.txt"}
    new_notes = {k for k, d in after.items() if d["source"] == "notes.txt"}
    assert edit.chunks_written == len(new_notes) and edit.chunks_deleted == len(old_notes)
    assert not old_notes & new_notes
    assert {k: v for k, v in after.items() if k not in new_notes} == {
        k: v for k, v in before.items() if k not in old_notes
    }
    assert "sourdough" in next(after[k]["text"] for k in new_notes)

    # --prune after deleting a file removes exactly its chunks.
    (root / "manual.rst").unlink()
    dry = ingest([root], settings, prune=True, dry_run=True)
    assert dry.files_pruned == ["manual.rst"] and snapshot(mongo_client, db_name) == after
    pruned = ingest([root], settings, prune=True)
    manual = {k for k, d in after.items() if d["source"] == "manual.rst"}
    assert pruned.files_pruned == ["manual.rst"] and pruned.chunks_deleted == len(manual)
    assert snapshot(mongo_client, db_name) == {k: v for k, v in after.items() if k not in manual}
    assert mongo_client[db_name][MANIFEST_COLLECTION].count_documents({"source": "manual.rst"}) == 0


@pytest.mark.parametrize(("dtype", "dims", "nbytes"), [("int8", 384, 384), ("binary", 128, 16)])
def test_quantized_storage(tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str, mongo_client: MongoClient,
                           dtype: str, dims: int, nbytes: int) -> None:  # fmt: skip
    (tmp_path / "a.md").write_text("# Title\n\nSome text about vector quantization.\n")
    settings = make_settings(mongo_uri, db_name, minilm_path, dtype=dtype, dimensions=dims, store_full_precision=True)
    report = ingest([tmp_path], settings)
    assert report.files_ingested == ["a.md"]
    doc = mongo_client[db_name]["docs"].find_one()
    assert doc is not None and len(doc["embedding"]) == 2 + nbytes
    full = from_binary(doc["embedding_full"])
    assert full.shape == (dims,) and np.isclose(np.linalg.norm(full), 1, atol=1e-5)
    index = next(iter(mongo_client[db_name]["docs"].list_search_indexes(settings.index_name)))
    vector = index["latestDefinition"]["fields"][0]
    assert (vector["numDimensions"], vector["similarity"]) == (dims, "euclidean" if dtype == "binary" else "cosine")


def test_source_index(
    tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str, mongo_client: MongoClient
) -> None:
    """Replacing or pruning a file's chunks filters on (source, content_hash): ingest keeps a B-tree index for it,
    created once (a re-run with a changed file does not fail on the existing index)."""
    (tmp_path / "a.md").write_text("# Title\n\nSome text about indexes.\n")
    settings = make_settings(mongo_uri, db_name, minilm_path)
    ingest([tmp_path], settings)
    (tmp_path / "a.md").write_text("# Title\n\nOther text about indexes.\n")
    assert ingest([tmp_path], settings).files_ingested == ["a.md"]
    indexes = mongo_client[db_name]["docs"].index_information()
    assert indexes[SOURCE_INDEX]["key"] == [("source", 1), ("content_hash", 1)]
    if mongo_client.admin.command("buildInfo").get("gitVersion") != "leaf-mongo-emulator":  # it has no planner
        plan = mongo_client[db_name]["docs"].find({"source": "a.md", "content_hash": "x"}).explain()
        assert SOURCE_INDEX in json.dumps(plan["queryPlanner"]["winningPlan"], default=str)


def test_spec_conflict_and_recreate(tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str,
                                    mongo_client: MongoClient) -> None:  # fmt: skip
    (tmp_path / "a.txt").write_text("Alpha text about rivers.\n")
    ingest([tmp_path], make_settings(mongo_uri, db_name, minilm_path))
    with pytest.raises(SpecMismatchError, match=r"dimensions: stored 384, requested 256.*--recreate"):
        ingest([tmp_path], make_settings(mongo_uri, db_name, minilm_path, dimensions=256))
    assert mongo_client[db_name]["docs"].count_documents({}) == 1  # nothing lost
    # An index-only change is applied in place.
    upd = ingest([tmp_path], make_settings(mongo_uri, db_name, minilm_path, quantization="scalar"))
    assert upd.index_action == "updated" and upd.chunks_written == 0
    rebuilt = ingest([tmp_path], make_settings(mongo_uri, db_name, minilm_path, dimensions=256), recreate=True)
    assert rebuilt.chunks_written == 1
    doc = mongo_client[db_name]["docs"].find_one()
    assert doc is not None and from_binary(doc["embedding"]).shape == (256,)


def test_foreign_collection_is_refused(tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str,
                                       mongo_client: MongoClient) -> None:  # fmt: skip
    mongo_client[db_name]["docs"].insert_one({"text": "someone else's", "embedding": [0.1, 0.2]})
    (tmp_path / "a.txt").write_text("Alpha.\n")
    with pytest.raises(SpecMismatchError, match="did not write"):
        ingest([tmp_path], make_settings(mongo_uri, db_name, minilm_path))
    assert mongo_client[db_name]["docs"].count_documents({}) == 1


def test_unreachable_server_one_line_and_redacted(tmp_path: Path, minilm_path: str) -> None:
    (tmp_path / "a.txt").write_text("Alpha.\n")
    uri = "mongodb://alice:hunter2@127.0.0.1:9/?directConnection=true"
    with pytest.raises(ServerError, match="cannot reach MongoDB"):
        ingest([tmp_path], load_settings(uri=uri, server_timeout_ms=300, teacher_model=minilm_path))
    result = CliRunner().invoke(
        app,
        ["ingest", str(tmp_path), "--uri", uri, "--teacher-model", minilm_path],
        env={"LEAF_MONGO_SERVER_TIMEOUT_MS": "300"},
    )
    assert result.exit_code == 3
    text = result.output
    assert "hunter2" not in text and "cannot reach MongoDB" in text and "Traceback" not in text


def test_cli_json_and_exit_codes(tree: tuple[Path, dict[str, Any]], mongo_uri: str, db_name: str,
                                 minilm_path: str) -> None:  # fmt: skip
    root, _ = tree
    shutil.rmtree(root / "corpus")
    env = {"LEAF_MONGO_URI": mongo_uri, "LEAF_MONGO_DATABASE": db_name, "LEAF_MONGO_QUERY_PROMPT": ""}
    args = ["ingest", str(root), "--teacher-model", minilm_path, "--leaf-model", minilm_path, "--json"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 1, result.output  # finished, with skipped files
    data = json.loads(result.stdout)
    assert {"files_ingested", "files_unchanged", "files_skipped", "chunks_written", "chunks_deleted", "seconds"} <= set(
        data
    )
    assert data["files_ingested"] >= 5 and all({"path", "reason"} == set(s) for s in data["files_skipped"])
    ok = CliRunner().invoke(app, [*args, "--include", "sub/*.md", "--include", "guide.md"], env=env)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["chunks_written"] == 0
    bad = CliRunner().invoke(app, [*args, "--dtype", "binary", "--similarity", "cosine"], env=env)
    assert bad.exit_code == 2 and "LEAF_MONGO_SIMILARITY" in bad.output


# A password with characters a URI must percent-encode: neither its raw nor its encoded form may ever be shown.
SECRET = "pä$$:w@rd/hunter2"


@pytest.fixture(scope="module")
def checking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoEmulator]:
    """A server that really checks the password: an emulator with a user (SCRAM-SHA-256, as mongod)."""
    users = tmp_path_factory.mktemp("users") / "users.json"
    fd = os.open(users, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump([{"user": "alice", "password": SECRET, "db": "admin"}], fh)
    with MongoEmulator(users=users, index_build_delay=0.0) as em:
        yield em


def _uri_with(em: MongoEmulator, password: str) -> str:
    return f"mongodb://alice:{quote(password, safe='')}@{em.host}:{em.port}/?directConnection=true"


def _shows_no_secret(*texts: str) -> bool:
    forms = (SECRET, quote(SECRET, safe=""), quote(SECRET), "hunter2")
    return not any(form in text for text in texts for form in forms)


def test_password_checked_by_the_server_is_never_shown(
    checking_server: MongoEmulator, tmp_path: Path, minilm_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The right password connects (the server checked it: the chunks are there) and appears in no output; a wrong
    one is refused by the server (code 18) and the error shows neither password, with --json and --debug too."""
    caplog.set_level(logging.DEBUG)  # every logger, pymongo's command and connection logs included
    (tmp_path / "a.txt").write_text("Alpha is the first letter of the Greek alphabet.\n")
    right = _uri_with(checking_server, SECRET)
    env = {"LEAF_MONGO_DATABASE": "auth_redact", "LEAF_MONGO_QUERY_PROMPT": "", "LEAF_MONGO_DEBUG": "0"}
    models = ["--teacher-model", minilm_path, "--leaf-model", minilm_path]
    ok = CliRunner().invoke(app, ["ingest", str(tmp_path), "--uri", right, *models, "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["chunks_written"] == 1
    query = ["search", "Greek alphabet", "--uri", right, "--leaf-model", minilm_path, "--json"]
    found = CliRunner().invoke(app, query, env=env)
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)[0]["text"].startswith("Alpha")
    spec = CliRunner().invoke(app, ["spec", *models], env={**env, "LEAF_MONGO_URI": right})
    assert "alice:***@" in spec.output
    wrong_uri = _uri_with(checking_server, "wrong-" + SECRET)
    outputs = [ok.output, found.output, spec.output]
    for args in (["--json"], ["--debug"]):
        wrong = CliRunner().invoke(app, ["ingest", str(tmp_path), "--uri", wrong_uri, *models, *args], env=env)
        assert wrong.exit_code == 3, wrong.output
        assert "authentication failed" in wrong.output and "code 18" in wrong.output
        outputs.append(wrong.output)
    with pytest.raises(ServerError, match="code 18") as info:
        ingest([tmp_path], load_settings(uri=wrong_uri, database="auth_redact", teacher_model=minilm_path))
    assert _shows_no_secret(*outputs, str(info.value), repr(info.value), caplog.text)
    with MongoClient(right) as client:
        client.drop_database("auth_redact")
