"""``leaf-mongo copy`` under faults (the ``failCommand`` fail point): a collection copied while the server drops
connections or fails its writes and search-index commands ends in exactly a clean copy (chunks with their vectors,
manifest, spec, index definitions), after pymongo's retry or after a clear error and a re-run (copy is idempotent).

Runs on an emulator with test commands, or unchanged on a mongod started with them (``LEAF_MONGO_TEST_URI``); see
``tests/fault_helpers.py``. The fault matrix in benchmarks/README.md lists these scenarios.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from typer.testing import CliRunner

from leaf_mongo.cli import app
from leaf_mongo.ingest import ingest
from leaf_mongo.settings import load_settings
from tests.fault_helpers import FaultServer, admin, failing, fault_server, fresh_db, snapshot, write_corpus

__all__ = ["admin", "fault_server"]  # fixtures used by name

CLOSE = {"closeConnection": True}
SHUTDOWN = {"errorCode": 91}  # ShutdownInProgress: mongod labels a retryable write's error RetryableWriteError
INTERNAL = {"errorCode": 1}  # retried by nobody
MAX_RUNS = 6

# name: (commands, mode, data, retried by the driver, times fired)
FAULTS: dict[str, tuple[tuple[str, ...], Any, dict[str, Any], bool, int]] = {
    "chunk writes closeConnection once": (("update",), {"times": 1}, CLOSE, True, 1),
    "chunk writes ShutdownInProgress once": (("update",), {"times": 1}, SHUTDOWN, True, 1),
    "chunk writes ShutdownInProgress twice": (("update",), {"times": 2}, SHUTDOWN, False, 2),
    "chunk writes error once": (("update",), {"times": 1}, INTERNAL, False, 1),
    "pruning delete closeConnection once": (("delete",), {"times": 1}, CLOSE, False, 1),  # delete_many: no retry
    "createSearchIndexes error once": (("createSearchIndexes",), {"times": 1}, INTERNAL, False, 1),
    "createSearchIndexes closeConnection twice": (("createSearchIndexes",), {"times": 2}, CLOSE, False, 2),
}


def _settings(uri: str, db: str, model: str) -> Any:
    return load_settings(
        uri=uri, database=db, collection="docs", teacher_model=model, leaf_model=model, query_prompt="",
        chunk_size=24, chunk_overlap=4, batch_size=8, write_batch_size=3, index_wait_seconds=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.tiny_models import make_tiny_model

    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny", dimensions=16, seed=4))


def _copy(uri: str, source_db: str, target_db: str) -> Any:
    args = ["copy", "--from", uri, "--to", uri, "--db", source_db, "--to-database", target_db, "-c", "docs"]
    return CliRunner().invoke(app, [*args, "--json"])


def _chunks_and_definitions(client: MongoClient[dict[str, Any]], db: str) -> dict[str, Any]:
    """What a copy carries (progress is ingest's own bookkeeping, not copied)."""
    snap = snapshot(client, db)
    return {k: v for k, v in snap.items() if k != "progress"}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_copy_under_faults_converges(
    tmp_path: Path, fault_server: FaultServer, admin: MongoClient[dict[str, Any]], tiny: str, name: str
) -> None:
    commands, mode, data, retried, fires = FAULTS[name]
    root = write_corpus(tmp_path / "corpus")
    source, clean, faulty = fresh_db("src"), fresh_db("clean"), fresh_db("faulty")
    ingest([root], _settings(fault_server.uri, source, tiny))
    if "delete" in commands:  # the target holds chunks the source no longer has: the copy deletes them
        assert _copy(fault_server.uri, source, faulty).exit_code == 0
        (root / "f2.md").unlink()
        ingest([root], _settings(fault_server.uri, source, tiny), prune=True)
    assert _copy(fault_server.uri, source, clean).exit_code == 0
    failures: list[str] = []
    with failing(admin, mode, failCommands=list(commands), **data) as fired:
        for _ in range(MAX_RUNS):
            result = _copy(fault_server.uri, source, faulty)
            if result.exit_code == 0:
                break
            failures.append(result.stdout)
    assert fired == [fires]  # the fault really hit the copy
    if retried:
        assert failures == []
    else:
        assert failures, "a fault the driver does not retry must end the copy clearly"
        for out in failures:
            assert "Traceback" not in out
            error = json.loads(out)  # one JSON error object on stdout, never nothing
            assert error["exit_code"] != 0 and "\n" not in error["error"], error
    want = _chunks_and_definitions(admin, clean)
    assert want["docs"] and _chunks_and_definitions(admin, faulty) == want
    for db in (source, clean, faulty):
        admin.drop_database(db)
