"""Ingest under server faults on its search-index commands and on an incremental re-ingest's updates and deletes.

Each scenario injects ``failCommand`` (an error code, a closed connection, a write-concern error; once, several
times, or with a probability) and ends in exactly what a clean run leaves (chunks with ids, texts and vectors,
manifest, progress, spec, index definitions): either pymongo's retry absorbed the fault (retryable reads such as
``$listSearchIndexes``, retryable writes), or the run ended in one clear :class:`~leaf_mongo.errors.ServerError`
and re-running the same command converged. Runs unchanged on a mongod started with test commands
(``LEAF_MONGO_TEST_URI``); see ``tests/fault_helpers.py``. The fault matrix in benchmarks/README.md lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from leaf_mongo.errors import LeafMongoError, ServerError
from tests.fault_helpers import FaultServer, admin, fail, failing, fault_server, fresh_db, snapshot, write_corpus

__all__ = ["admin", "fault_server"]  # fixtures used by name

MAX_RUNS = 25  # re-runs allowed for a probabilistic fault (each run fails with probability well under 1/2)
# A probabilistic fault on a command issued twice per run misses both with probability (1-p)^2: the scenario is
# run on this many fresh databases, so that it hits at least once but with probability ~1e-5 (never silently).
PROBABILISTIC_REPEATS = 8


@dataclass(frozen=True)
class Fault:
    commands: tuple[str, ...]
    mode: Any
    data: dict[str, Any]
    outcome: str  # "retried": the driver absorbs it; "re-run": a clear error, then re-runs converge
    fires: int | None = None  # how many times the fail point fires; None: probabilistic (at least once)


CLOSE = {"closeConnection": True}
SHUTDOWN = {"errorCode": 91}  # ShutdownInProgress: a retryable read and write error
NOT_PRIMARY = {"errorCode": 10107, "errorLabels": ["RetryableWriteError"]}
INTERNAL = {"errorCode": 1}  # InternalError: retried by nobody

SEARCH_INDEX_FAULTS = {
    "createSearchIndexes error once": Fault(("createSearchIndexes",), {"times": 1}, INTERNAL, "re-run", 1),
    "createSearchIndexes closeConnection once": Fault(("createSearchIndexes",), {"times": 1}, CLOSE, "re-run", 1),
    "createSearchIndexes ShutdownInProgress 3 times": Fault(
        ("createSearchIndexes",), {"times": 3}, SHUTDOWN, "re-run", 3
    ),  # not a retryable command: each of three runs ends clearly, the fourth converges
    "createSearchIndexes error p=0.5": Fault(
        ("createSearchIndexes",), {"activationProbability": 0.5}, INTERNAL, "re-run"
    ),
    "$listSearchIndexes closeConnection once": Fault(("aggregate",), {"times": 1}, CLOSE, "retried", 1),
    "$listSearchIndexes ShutdownInProgress once": Fault(("aggregate",), {"times": 1}, SHUTDOWN, "retried", 1),
    "$listSearchIndexes ShutdownInProgress twice": Fault(("aggregate",), {"times": 2}, SHUTDOWN, "re-run", 2),
    "$listSearchIndexes error once": Fault(("aggregate",), {"times": 1}, INTERNAL, "re-run", 1),
    "$listSearchIndexes closeConnection p=0.3": Fault(
        ("aggregate",), {"activationProbability": 0.3}, CLOSE, "re-run"
    ),  # each poll is retried once: a run fails only when a poll and its retry both fail
}

UPDATE_FAULTS = {
    "updateSearchIndex error once": Fault(("updateSearchIndex",), {"times": 1}, INTERNAL, "re-run", 1),
    "updateSearchIndex closeConnection twice": Fault(("updateSearchIndex",), {"times": 2}, CLOSE, "re-run", 2),
    "updateSearchIndex error p=0.5": Fault(("updateSearchIndex",), {"activationProbability": 0.5}, INTERNAL, "re-run"),
}

INCREMENTAL_FAULTS = {  # a changed file (its old chunks replaced) and a removed one (pruned), under faults
    "update+delete closeConnection once": Fault(("update", "delete"), {"times": 1}, CLOSE, "retried", 1),
    "update+delete NotWritablePrimary once": Fault(("update", "delete"), {"times": 1}, NOT_PRIMARY, "retried", 1),
    "update+delete ShutdownInProgress twice": Fault(("update", "delete"), {"times": 2}, SHUTDOWN, "re-run", 2),
    "update+delete writeConcernError": Fault(
        ("update", "delete"), {"times": 1}, {"writeConcernError": {"code": 64, "errmsg": "timed out"}}, "re-run", 1
    ),
    "insert+update+delete closeConnection p=0.2": Fault(
        ("insert", "update", "delete"), {"activationProbability": 0.2}, CLOSE, "re-run"
    ),
}


def _settings(uri: str, db: str, tiny: str, **extra: Any) -> Any:
    from leaf_mongo.settings import load_settings

    return load_settings(
        uri=uri, database=db, collection="docs", teacher_model=tiny, leaf_model=tiny, query_prompt="",
        chunk_size=24, chunk_overlap=4, batch_size=8, write_batch_size=3, index_wait_seconds=60, **extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.tiny_models import make_tiny_model

    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny", dimensions=16, seed=4))


def _converge(run: Callable[[], object], fault: Fault) -> list[str]:
    """Run until it succeeds; the messages of the runs that failed (each a one-line leaf_mongo error)."""
    errors: list[str] = []
    for _ in range(MAX_RUNS):
        try:
            run()
            return errors
        except LeafMongoError as exc:  # anything else (a pymongo error, a TypeError) fails the test
            assert isinstance(exc, ServerError), exc
            assert "\n" not in str(exc) and "Traceback" not in str(exc)
            errors.append(str(exc))
    raise AssertionError(f"no clean run in {MAX_RUNS} under {fault}: {errors[-3:]}")


def _repeats(fault: Fault) -> int:
    return PROBABILISTIC_REPEATS if fault.fires is None else 1


def _check(fault: Fault, fired: int, errors: list[str]) -> None:
    if fault.fires is None:
        assert fired >= 1, "the fault never hit: the scenario tested nothing"
    else:
        assert fired == fault.fires
    if fault.outcome == "retried":
        assert errors == []
    elif fault.fires is not None:
        assert errors, "a fault that pymongo does not retry must end the run clearly"
        assert all("failCommand" in e or "connection closed" in e or "timed out" in e for e in errors), errors


@pytest.mark.parametrize("name", sorted(SEARCH_INDEX_FAULTS))
def test_first_ingest_under_search_index_faults(
    tmp_path: Path, fault_server: FaultServer, admin: MongoClient[dict[str, Any]], tiny: str, name: str
) -> None:
    from leaf_mongo.ingest import ingest

    fault = SEARCH_INDEX_FAULTS[name]
    root = write_corpus(tmp_path / "corpus")
    ref_db, dbs = fresh_db("ref"), [fresh_db("faulty") for _ in range(_repeats(fault))]
    ingest([root], _settings(fault_server.uri, ref_db, tiny))
    errors = []
    with failing(admin, fault.mode, failCommands=list(fault.commands), **fault.data) as fired:
        for db in dbs:
            errors += _converge(lambda db=db: ingest([root], _settings(fault_server.uri, db, tiny)), fault)
    _check(fault, fired[0], errors)
    for db in dbs:
        assert snapshot(admin, db) == snapshot(admin, ref_db)
        admin.drop_database(db)
    admin.drop_database(ref_db)


@pytest.mark.parametrize("name", sorted(UPDATE_FAULTS))
def test_index_update_under_faults(
    tmp_path: Path, fault_server: FaultServer, admin: MongoClient[dict[str, Any]], tiny: str, name: str
) -> None:
    """A second run with another filter field updates both indexes in place (updateSearchIndex) under faults."""
    from leaf_mongo.ingest import ingest

    fault = UPDATE_FAULTS[name]
    root = write_corpus(tmp_path / "corpus")
    ref_db, dbs = fresh_db("ref"), [fresh_db("faulty") for _ in range(_repeats(fault))]
    for target in (ref_db, *dbs):
        ingest([root], _settings(fault_server.uri, target, tiny))
    second = {"filter_fields": ["source", "title"]}
    ingest([root], _settings(fault_server.uri, ref_db, tiny, **second))
    errors = []
    with failing(admin, fault.mode, failCommands=list(fault.commands), **fault.data) as fired:
        for db in dbs:
            errors += _converge(lambda db=db: ingest([root], _settings(fault_server.uri, db, tiny, **second)), fault)
    _check(fault, fired[0], errors)
    ref = snapshot(admin, ref_db)
    assert any("title" in str(definition) for _, _, definition in ref["indexes"])  # the update really happened
    for db in dbs:
        assert snapshot(admin, db) == ref
        admin.drop_database(db)
    admin.drop_database(ref_db)


@pytest.mark.parametrize("name", sorted(INCREMENTAL_FAULTS))
def test_incremental_reingest_under_faults(
    tmp_path: Path, fault_server: FaultServer, admin: MongoClient[dict[str, Any]], tiny: str, name: str
) -> None:
    """One file changed and one removed (``prune``): the old chunks' replacement and the pruning under faults."""
    from leaf_mongo.ingest import ingest

    fault = INCREMENTAL_FAULTS[name]
    root = write_corpus(tmp_path / "corpus")
    ref_db, dbs = fresh_db("ref"), [fresh_db("faulty") for _ in range(_repeats(fault))]
    for target in (ref_db, *dbs):
        ingest([root], _settings(fault_server.uri, target, tiny))
    (root / "f1.md").write_text("# Doc 1 changed\n\n" + " ".join(f"stone{j} meadow" for j in range(50)))
    (root / "f2.md").unlink()
    ingest([root], _settings(fault_server.uri, ref_db, tiny), prune=True)
    errors = []
    with failing(admin, fault.mode, failCommands=list(fault.commands), **fault.data) as fired:
        for db in dbs:  # a probabilistic fault on several databases, so that it all but surely fires
            errors += _converge(lambda db=db: ingest([root], _settings(fault_server.uri, db, tiny), prune=True), fault)
    _check(fault, fired[0], errors)
    ref = snapshot(admin, ref_db)
    assert not any(d["source"] == "f2.md" for d in ref["docs"].values())
    assert any("stone1" in d["text"] for d in ref["docs"].values())
    for db in dbs:
        assert snapshot(admin, db) == ref
        admin.drop_database(db)
    admin.drop_database(ref_db)


def test_write_concern_error_is_not_added_to_search_index_commands(
    tmp_path: Path, fault_server: FaultServer, admin: MongoClient[dict[str, Any]], tiny: str
) -> None:
    """mongod adds failCommand's writeConcernError only to commands that take a write concern; the search-index
    commands do not (``supportsWriteConcern() false``), so the fail point never fires for them."""
    from leaf_mongo.ingest import ingest

    root = write_corpus(tmp_path / "corpus")
    db = fresh_db("wce")
    wce = {"writeConcernError": {"code": 64, "errmsg": "timed out"}}
    with failing(admin, "alwaysOn", failCommands=["createSearchIndexes", "updateSearchIndex"], **wce) as fired:
        ingest([root], _settings(fault_server.uri, db, tiny))
        ingest([root], _settings(fault_server.uri, db, tiny, filter_fields=["source", "title"]))
    assert fired == [0]
    assert len(snapshot(admin, db)["indexes"]) == 2
    admin.drop_database(db)


def test_recreate_under_drop_search_index_faults(
    tmp_path: Path, fault_server: FaultServer, admin: MongoClient[dict[str, Any]], tiny: str
) -> None:
    """``--recreate`` to another dtype drops both search indexes (dropSearchIndex) and the collection; a failing
    dropSearchIndex is tolerated (dropping the collection drops its search indexes) and the result equals a
    clean recreate."""
    from leaf_mongo.ingest import ingest

    root = write_corpus(tmp_path / "corpus")
    ref_db, db = fresh_db("ref"), fresh_db("faulty")
    for target in (ref_db, db):
        ingest([root], _settings(fault_server.uri, target, tiny))
    ingest([root], _settings(fault_server.uri, ref_db, tiny, dtype="int8"), recreate=True)
    with failing(admin, {"times": 2}, failCommands=["dropSearchIndex"], **CLOSE) as fired:
        ingest([root], _settings(fault_server.uri, db, tiny, dtype="int8"), recreate=True)
    assert fired == [2]
    assert snapshot(admin, db) == snapshot(admin, ref_db)
    fail(admin, "off")
    admin.drop_database(ref_db)
    admin.drop_database(db)
