"""Shared pieces of the fault tests: a server with test commands, the ``failCommand`` switch, a corpus, and a
snapshot of everything ingest leaves behind (chunks with their vectors, manifest, progress, spec, indexes).

``fault_server`` is an emulator started with test commands, or, with ``LEAF_MONGO_TEST_URI`` set, that server:
a mongod started with ``--setParameter enableTestCommands=1`` (the tests skip on one without, saying so). Nothing
here looks inside the emulator, so the fault tests run unchanged on both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from leaf_mongo.testing import MongoEmulator
from leaf_mongo.testing.pytest_plugin import URI_ENV

TIMEOUT_MS = 20_000
INDEX_DELAY = 0.2  # the emulator's index build: long enough that ingest really polls for READY


@dataclass
class FaultServer:
    uri: str
    emulator: MongoEmulator | None  # None on a real server

    def client(self, **kwargs: Any) -> MongoClient[dict[str, Any]]:
        return MongoClient(self.uri, serverSelectionTimeoutMS=TIMEOUT_MS, **kwargs)


@pytest.fixture(scope="module")
def fault_server() -> Iterator[FaultServer]:
    uri = os.environ.get(URI_ENV)
    if uri:
        with MongoClient(uri, serverSelectionTimeoutMS=TIMEOUT_MS) as c:
            enabled = c.admin.command("getParameter", 1, enableTestCommands=1).get("enableTestCommands")
        if not enabled:
            pytest.skip("fault tests need a server started with --setParameter enableTestCommands=1")
        yield FaultServer(uri, None)
        return
    with MongoEmulator(test_commands=True, index_build_delay=INDEX_DELAY) as em:
        yield FaultServer(em.uri, em)


@pytest.fixture
def admin(fault_server: FaultServer) -> Iterator[MongoClient[dict[str, Any]]]:
    """A client for configuring fail points; the fail point is switched off after each test."""
    with fault_server.client() as c:
        yield c
        c.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


def fail(client: MongoClient[dict[str, Any]], mode: Any, **data: Any) -> int:
    """Configure ``failCommand``; returns the fail point's ``count`` (times fired so far)."""
    return int(client.admin.command({"configureFailPoint": "failCommand", "mode": mode, "data": data})["count"])


@contextmanager
def failing(client: MongoClient[dict[str, Any]], mode: Any, **data: Any) -> Iterator[list[int]]:
    """``failCommand`` on for the block, off after it; the list receives how many times it fired."""
    fired: list[int] = []
    before = fail(client, mode, **data)
    try:
        yield fired
    finally:
        fired.append(fail(client, "off") - before)


def fresh_db(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def write_corpus(root: Path, n: int = 6, words: int = 40) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"f{i}.md").write_text(f"# Doc {i}\n\n" + " ".join(f"word{i}{j} river cloud" for j in range(words)))
    return root


def snapshot(client: MongoClient[dict[str, Any]], db: str) -> dict[str, Any]:
    """What ingest leaves in ``db``: chunks (vectors rounded), manifest, progress, spec and index definitions;
    timestamps and index ids dropped (they differ between two correct runs)."""
    from leaf_mongo.ingest.manifest import MANIFEST_COLLECTION
    from leaf_mongo.ingest.resume import PROGRESS_COLLECTION
    from leaf_mongo.spec.store import SPEC_COLLECTION
    from leaf_mongo.spec.vectors import from_binary

    def plain(coll: str) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in d.items() if not k.endswith("_at")} for d in client[db][coll].find({}, sort=[("_id", 1)])
        ]

    docs = {}
    for d in client[db]["docs"].find():
        d["embedding"] = [round(float(x), 5) for x in from_binary(d["embedding"])]
        docs[str(d["_id"])] = d
    indexes = sorted(
        (e["name"], e.get("type"), e.get("latestDefinition")) for e in client[db]["docs"].list_search_indexes()
    )
    return {
        "docs": docs,
        "manifest": plain(MANIFEST_COLLECTION),
        "progress": plain(PROGRESS_COLLECTION),
        "spec": plain(SPEC_COLLECTION),
        "indexes": indexes,
    }
