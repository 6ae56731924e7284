"""A search index stuck in BUILDING or FAILED: waiting ends at the deadline naming the state, FAILED at once with
mongot's message; after the index recovers, a re-run of ingest converges to a clean run.

Emulator-only: a real deployment cannot be made to hold a build or fail one on demand; the emulator's test-only
control (:mod:`leaf_mongo.testing.index_control`) does it, and these tests skip against ``LEAF_MONGO_TEST_URI``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.operations import SearchIndexModel

from leaf_mongo.errors import SearchIndexError
from leaf_mongo.testing.index_control import hold_search_index, release_search_index
from tests.fault_helpers import FaultServer, fault_server, fresh_db, snapshot, write_corpus

__all__ = ["fault_server"]  # fixture used by name

FAILURE = "Exceeded max limit: Field limit exceeded: 1001 > 1000"  # one of mongot's IndexStatus.failed messages
DEFINITION = {"fields": [{"type": "vector", "path": "v", "numDimensions": 3, "similarity": "cosine"}]}


@pytest.fixture
def emulated(fault_server: FaultServer) -> FaultServer:
    if fault_server.emulator is None:
        pytest.skip("emulator-only: a real server cannot hold a search index in BUILDING or fail it on demand")
    return fault_server


@pytest.fixture
def vector_index(emulated: FaultServer) -> Any:
    db = fresh_db("state")
    with emulated.client() as client:
        coll = client[db].items
        coll.insert_one({"_id": 1, "v": [1.0, 0.0, 0.0]})
        coll.create_search_index(SearchIndexModel(DEFINITION, name="vi", type="vectorSearch"))
        yield coll
        client.drop_database(db)


@pytest.mark.parametrize("waiter", ["leaf_mongo", "testing", "testing-async"])
def test_stuck_building_ends_at_the_deadline_naming_the_state(
    emulated: FaultServer, vector_index: Any, waiter: str
) -> None:
    assert emulated.emulator is not None
    hold_search_index(emulated.emulator, vector_index.full_name, "vi", "BUILDING")
    start = time.monotonic()
    with pytest.raises(SearchIndexError, match=rf"'vi' on {vector_index.full_name} is still BUILDING after"):
        _wait(emulated, vector_index, waiter, timeout=0.8)
    assert 0.8 <= time.monotonic() - start < 3.0
    release_search_index(emulated.emulator, vector_index.full_name, "vi")
    assert _wait(emulated, vector_index, waiter, timeout=10)["status"] in ("BUILDING", "READY")


@pytest.mark.parametrize("waiter", ["leaf_mongo", "testing", "testing-async"])
def test_failed_fails_fast_with_mongots_message(emulated: FaultServer, vector_index: Any, waiter: str) -> None:
    assert emulated.emulator is not None
    hold_search_index(emulated.emulator, vector_index.full_name, "vi", "FAILED", FAILURE)
    listed = next(iter(vector_index.list_search_indexes("vi")))
    assert (listed["status"], listed["queryable"]) == ("FAILED", False)
    assert listed["statusDetail"][0]["mainIndex"]["message"] == FAILURE  # where mongot puts it
    start = time.monotonic()
    with pytest.raises(SearchIndexError, match=rf"'vi' on {vector_index.full_name} FAILED to build: {FAILURE}$"):
        _wait(emulated, vector_index, waiter, timeout=30)
    assert time.monotonic() - start < 2.0  # at once, not at the deadline


def test_failed_without_a_message_still_says_failed(emulated: FaultServer, vector_index: Any) -> None:
    from leaf_mongo.spec.index import wait_for_vector_index

    assert emulated.emulator is not None
    hold_search_index(emulated.emulator, vector_index.full_name, "vi", "FAILED")
    with pytest.raises(SearchIndexError, match="FAILED to build: the server gave no reason"):
        wait_for_vector_index(vector_index, "vi", timeout=30)


def _wait(server: FaultServer, coll: Any, waiter: str, timeout: float) -> dict[str, Any]:
    from leaf_mongo.spec.index import wait_for_vector_index
    from leaf_mongo.testing.waiting import async_wait_for_search_index, wait_for_search_index

    if waiter == "leaf_mongo":
        return wait_for_vector_index(coll, "vi", timeout=timeout, interval=0.05)
    if waiter == "testing":
        return wait_for_search_index(coll, "vi", timeout=timeout, interval=0.05)

    async def run() -> dict[str, Any]:
        async with AsyncMongoClient(server.uri) as client:
            acoll = client[coll.database.name][coll.name]
            return await async_wait_for_search_index(acoll, "vi", timeout=timeout, interval=0.05)

    return asyncio.run(run())


@pytest.mark.parametrize("state", ["BUILDING", "FAILED"])
def test_ingest_with_a_stuck_index_ends_clearly_and_a_rerun_converges(
    tmp_path: Path, emulated: FaultServer, state: str
) -> None:
    """A second run updates the indexes (another filter field); the vector index's rebuild is stuck: ingest ends
    at its deadline (BUILDING) or at once (FAILED), naming the state; once the index recovers, a re-run equals a
    clean run."""
    from leaf_mongo.ingest import ingest
    from leaf_mongo.settings import load_settings
    from tests.tiny_models import make_tiny_model

    assert emulated.emulator is not None
    tiny = str(make_tiny_model(tmp_path / "tiny", dimensions=16, seed=4))
    root = write_corpus(tmp_path / "corpus")

    def settings(db: str, wait: float, **extra: Any) -> Any:
        return load_settings(
            uri=emulated.uri, database=db, collection="docs", teacher_model=tiny, leaf_model=tiny, query_prompt="",
            chunk_size=24, chunk_overlap=4, index_wait_seconds=wait, **extra,
        )  # fmt: skip

    ref_db, db = fresh_db("ref"), fresh_db("stuck")
    second = {"filter_fields": ["source", "title"]}
    for target in (ref_db, db):
        ingest([root], settings(target, 60))
    ingest([root], settings(ref_db, 60, **second))
    hold_search_index(
        emulated.emulator, f"{db}.docs", "leaf_vector_index", state, FAILURE if state == "FAILED" else None
    )
    start = time.monotonic()
    expected = "is still BUILDING after 1 s" if state == "BUILDING" else f"FAILED to build: {FAILURE}"
    with pytest.raises(SearchIndexError, match=expected):
        ingest([root], settings(db, 1, **second))
    elapsed = time.monotonic() - start
    assert elapsed < (4.0 if state == "BUILDING" else 2.5)
    release_search_index(emulated.emulator, f"{db}.docs", "leaf_vector_index")
    ingest([root], settings(db, 60, **second))
    with MongoClient(emulated.uri) as client:
        assert snapshot(client, db) == snapshot(client, ref_db)
        client.drop_database(db)
        client.drop_database(ref_db)
