"""The three Python drivers against the emulator (or a real server via LEAF_MONGO_TEST_URI).

Round trips exercise what leaf_mongo needs: insert_many, search-index creation
+ wait, ``$vectorSearch`` with a pre-filter, update and delete. The lifecycle
tests (threads, shutdown, subprocess) only make sense for the emulator itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import numpy as np
import pytest
from bson.binary import Binary, BinaryVectorDtype
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure
from pymongo.operations import SearchIndexModel

from leaf_mongo.testing import MongoEmulator, wait_for_search_index, wait_until_searchable
from leaf_mongo.testing.waiting import async_wait_for_search_index, async_wait_until_searchable

TIMEOUT = 120.0
DIMS = 8
RNG = np.random.default_rng(11)
VECTORS = RNG.standard_normal((20, DIMS)).astype(np.float32)
DEFINITION = {
    "fields": [
        {"type": "vector", "path": "embedding", "numDimensions": DIMS, "similarity": "dotProduct"},
        {"type": "filter", "path": "lang"},
    ]
}


def _docs() -> list[dict[str, Any]]:
    normed = VECTORS / np.linalg.norm(VECTORS, axis=1, keepdims=True)
    return [
        {
            "_id": i,
            "text": f"doc {i}",
            "lang": "en" if i % 2 else "fr",
            "embedding": Binary.from_vector(normed[i].tolist(), BinaryVectorDtype.FLOAT32),
        }
        for i in range(20)
    ]


def _pipeline(query: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "$vectorSearch": {
                "index": "vi",
                "path": "embedding",
                "queryVector": query,
                "numCandidates": 50,
                "limit": 5,
                "filter": {"lang": "en"},
            }
        },
        {"$project": {"embedding": 0, "score": {"$meta": "vectorSearchScore"}}},
    ]


def _query() -> list[float]:
    v = VECTORS[1] / np.linalg.norm(VECTORS[1])
    return [float(x) for x in v]


def test_pymongo_sync_round_trip(database: Database) -> None:
    coll = database.docs
    assert len(coll.insert_many(_docs()).inserted_ids) == 20
    coll.create_search_index(SearchIndexModel(DEFINITION, name="vi", type="vectorSearch"))
    wait_for_search_index(coll, "vi", TIMEOUT)
    wait_until_searchable(coll, "vi", "embedding", _query(), 20, TIMEOUT)
    hits = list(coll.aggregate(_pipeline(_query())))
    assert hits[0]["_id"] == 1 and all(h["lang"] == "en" for h in hits) and len(hits) == 5
    coll.update_many({"lang": "en"}, {"$set": {"lang": "de"}})
    wait_until_searchable(coll, "vi", "embedding", _query(), 0, TIMEOUT, filter={"lang": "en"})
    assert coll.delete_many({}).deleted_count == 20
    wait_until_searchable(coll, "vi", "embedding", _query(), 0, TIMEOUT)


async def test_pymongo_async_round_trip(async_mongo_client: AsyncMongoClient, db_name: str) -> None:
    coll = async_mongo_client[db_name].docs
    await coll.insert_many(_docs())
    await coll.create_search_index(SearchIndexModel(DEFINITION, name="vi", type="vectorSearch"))
    await async_wait_for_search_index(coll, "vi", TIMEOUT)
    await async_wait_until_searchable(coll, "vi", "embedding", _query(), 20, TIMEOUT)
    hits = await (await coll.aggregate(_pipeline(_query()))).to_list()
    assert hits[0]["_id"] == 1 and {h["lang"] for h in hits} == {"en"}
    await coll.update_one({"_id": 1}, {"$set": {"lang": "fr"}})
    await async_wait_until_searchable(coll, "vi", "embedding", _query(), 9, TIMEOUT, filter={"lang": "en"})
    assert (await coll.delete_one({"_id": 1})).deleted_count == 1
    assert await coll.count_documents({}) == 19


async def test_motor_round_trip(mongo_uri: str, db_name: str) -> None:
    client: AsyncIOMotorClient = AsyncIOMotorClient(mongo_uri)
    try:
        coll = client[db_name].docs
        await coll.insert_many(_docs())
        await coll.create_search_index(SearchIndexModel(DEFINITION, name="vi", type="vectorSearch"))
        await async_wait_for_search_index(coll, "vi", TIMEOUT)
        await async_wait_until_searchable(coll, "vi", "embedding", _query(), 20, TIMEOUT)
        hits = await coll.aggregate(_pipeline(_query())).to_list(None)
        assert hits[0]["_id"] == 1 and len(hits) == 5
        await coll.update_one({"_id": 3}, {"$set": {"lang": "fr"}})
        await async_wait_until_searchable(coll, "vi", "embedding", _query(), 9, TIMEOUT, filter={"lang": "en"})
        assert (await coll.delete_many({"lang": "fr"})).deleted_count == 11
    finally:
        client.close()


def test_eight_client_threads_in_parallel(mongo_uri: str, database: Database) -> None:
    coll = database.docs
    coll.insert_many(_docs())
    coll.create_search_index(SearchIndexModel(DEFINITION, name="vi", type="vectorSearch"))
    wait_for_search_index(coll, "vi", TIMEOUT)
    wait_until_searchable(coll, "vi", "embedding", _query(), 20, TIMEOUT)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with MongoClient(mongo_uri) as client:
                c = client[database.name].docs
                for j in range(25):
                    c.insert_one({"_id": f"t{n}-{j}", "lang": "xx"})
                    assert c.count_documents({"_id": f"t{n}-{j}"}) == 1
                    assert len(list(c.aggregate(_pipeline(_query())))) == 5
                    c.update_one({"_id": f"t{n}-{j}"}, {"$set": {"j": j}})
                    assert len(list(c.find({"lang": "en"}).batch_size(3))) == 10
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert coll.count_documents({"lang": "xx"}) == 200


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def _emulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("leaf-mongo-emulator")]


def test_clean_shutdown_leaks_no_threads_or_sockets() -> None:
    time.sleep(0.1)
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()
    emulator = MongoEmulator(index_build_delay=0.0).start()
    clients = [MongoClient(emulator.uri) for _ in range(3)]
    for i, client in enumerate(clients):
        client.leaf.docs.insert_one({"_id": i})
        assert client.leaf.docs.count_documents({}) >= 1
    assert [t for t in _emulator_threads() if t not in threads_before]
    # Stop while clients still hold open connections: the emulator must hang up on them.
    emulator.stop()
    for client in clients:
        client.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        if not leaked and _open_fds() <= fds_before:
            break
        time.sleep(0.05)
    assert not [t for t in _emulator_threads() if t not in threads_before]
    assert not [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert _open_fds() <= fds_before


def test_module_runs_as_process_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaf_mongo.testing", "--port", "0", "--index-delay", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("leaf-mongo emulator listening on mongodb://127.0.0.1:"), line
        uri = line.rsplit(" ", 1)[-1]
        with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
            name = f"p{uuid.uuid4().hex[:6]}"
            client[name].c.insert_one({"x": 1})
            assert client[name].c.find_one({}, {"_id": 0}) == {"x": 1}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert proc.stdout.read() == ""  # exactly one line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("uri_suffix", ["", "/?directConnection=true"])
def test_plain_and_direct_uris_work(mongo_emulator: MongoEmulator | None, uri_suffix: str) -> None:
    if mongo_emulator is None:
        pytest.skip("emulator-only: checks the emulator's URI forms")
    uri = f"mongodb://{mongo_emulator.host}:{mongo_emulator.port}{uri_suffix}"
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        assert client.admin.command("ping")["ok"] == 1.0


def test_large_message_is_received_quickly(database: Database) -> None:
    # A near-16 MB document: MockupDB's stock receive loop was quadratic in message size.
    blob = b"x" * (15 * 1024 * 1024)
    start = time.perf_counter()
    database.big.insert_one({"_id": 1, "blob": blob})
    assert time.perf_counter() - start < 5.0
    assert len(database.big.find_one({"_id": 1})["blob"]) == len(blob)


def test_transactions_are_refused_as_an_emulator_limitation(database: Database, mongo_emulator: Any) -> None:
    # Emulator-only: a replica set accepts transactions; the emulator must refuse them plainly, not run
    # the writes outside a transaction (leaf_mongo/testing/README.md, limitations).
    if mongo_emulator is None:
        pytest.skip("emulator-only: checks an emulator limitation")
    database.create_collection("tx")
    with database.client.start_session() as session:
        session.start_transaction()
        with pytest.raises(OperationFailure, match="emulator limitation"):
            database.tx.insert_one({"_id": 1}, session=session)
        session.abort_transaction()  # drivers swallow abort errors
    assert database.tx.count_documents({}) == 0
