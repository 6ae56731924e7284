"""Two limits the engine had (issue 22): reading a collection back was quadratic, and every command waited for
the one before it, so a long read starved the driver's heartbeats and pymongo cancelled the read itself.

Now a cursor reads only the batch it returns, and ``hello``/``ping`` never wait behind another command.
"""

from __future__ import annotations

import threading
import time

import pytest
from pymongo import MongoClient

from leaf_mongo.testing import MongoEmulator
from leaf_mongo.testing.commands import reads

DOCS = 20_000


@pytest.fixture(scope="module")
def emulator():  # type: ignore[no-untyped-def]
    with MongoEmulator() as emu:
        client: MongoClient = MongoClient(emu.uri)
        client.db.big.insert_many([{"_id": i, "n": i, "pad": "x" * 50} for i in range(DOCS)])
        client.close()
        yield emu


def test_a_batch_copies_only_its_documents(emulator: MongoEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    copies = 0
    real = reads.copy_doc

    def counting(doc: object) -> object:
        nonlocal copies
        copies += 1
        return real(doc)

    monkeypatch.setattr(reads, "copy_doc", counting)
    client: MongoClient = MongoClient(emulator.uri)
    cursor = client.db.big.find({}, batch_size=10)
    first = [next(cursor) for _ in range(10)]
    assert [d["_id"] for d in first] == list(range(10))
    assert copies <= 11  # the batch, and the one document read ahead to know that more remain
    assert sum(1 for _ in cursor) == DOCS - 10
    assert copies == DOCS
    # Filters, projections, skip and limit keep working through the lazy path.
    got = list(client.db.big.find({"n": {"$gte": 100}}, {"pad": 0}, skip=5, limit=3))
    assert got == [{"_id": 105, "n": 105}, {"_id": 106, "n": 106}, {"_id": 107, "n": 107}]
    assert [d["_id"] for d in client.db.big.find({"n": {"$lt": 5}}).sort("n", -1)] == [4, 3, 2, 1, 0]
    client.close()


def test_read_back_is_linear(emulator: MongoEmulator) -> None:
    client: MongoClient = MongoClient(emulator.uri)
    t0 = time.perf_counter()
    assert sum(1 for _ in client.db.big.find({}, limit=DOCS // 4)) == DOCS // 4
    quarter = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert sum(1 for _ in client.db.big.find({})) == DOCS
    whole = time.perf_counter() - t0
    assert whole < 8 * quarter + 0.5, (quarter, whole)  # quadratic would be ~16x
    client.close()


def test_hello_and_ping_do_not_wait_behind_a_long_command(emulator: MongoEmulator) -> None:
    """A command holding the engine for 3 s (as a long read or insert does): a new client still connects
    (hello) and pings at once, so pymongo's heartbeats never time out behind it."""
    held = threading.Event()
    release = threading.Event()

    def long_command() -> None:
        with emulator.backend._lock:
            held.set()
            release.wait(3)

    worker = threading.Thread(target=long_command)
    worker.start()
    try:
        held.wait(5)
        t0 = time.perf_counter()
        client: MongoClient = MongoClient(emulator.uri, serverSelectionTimeoutMS=2_000)
        assert client.admin.command("ping")["ok"] == 1
        assert client.admin.command("hello")["isWritablePrimary"] is True
        assert time.perf_counter() - t0 < 1.5
        client.close()
    finally:
        release.set()
        worker.join()
