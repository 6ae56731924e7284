"""The retriever (vector, full text, hybrid; ``invoke`` and ``ainvoke``) under a failing or hung ``aggregate``.

A server error ends the query at once with the server's code; a connection that keeps closing, or a server that
blocks past the query deadline (``query_timeout_ms``, pymongo's CSOT), ends it at the deadline with an error that
says it timed out; a single lost connection is retried away and the answer equals the clean one. Never an empty
list, never a wait without end. Runs unchanged on a mongod started with test commands (``LEAF_MONGO_TEST_URI``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from leaf_mongo.errors import ServerError
from tests.fault_helpers import FaultServer, admin, failing, fault_server, fresh_db, write_corpus

__all__ = ["admin", "fault_server"]  # fixtures used by name

DEADLINE_MS = 1000
SLACK_S = 2.0  # scheduling on a loaded CI machine; the point is "about the deadline", not "the socket's default"
QUERY = "river cloud word12"


@pytest.fixture(scope="module")
def corpus_settings(tmp_path_factory: pytest.TempPathFactory, fault_server: FaultServer) -> Iterator[Any]:
    from leaf_mongo.ingest import ingest
    from leaf_mongo.settings import load_settings
    from tests.tiny_models import make_tiny_model

    tmp = tmp_path_factory.mktemp("retriever-faults")
    tiny = str(make_tiny_model(tmp / "tiny", dimensions=16, seed=4))
    db = fresh_db("retr")
    settings = load_settings(
        uri=fault_server.uri, database=db, collection="docs", teacher_model=tiny, leaf_model=tiny, query_prompt="",
        chunk_size=24, chunk_overlap=4, index_wait_seconds=60,
    )  # fmt: skip
    ingest([write_corpus(Path(tmp) / "corpus")], settings)
    yield settings
    with fault_server.client() as c:
        c.drop_database(db)


def _answer(docs: list[Any]) -> list[tuple[str, float]]:
    return [(d.id, round(float(d.metadata["score"]), 6)) for d in docs]


def _query(settings: Any, api: str, mode: str) -> list[tuple[str, float]]:
    """The answer without a fault."""
    return _loaded_query(settings, api, mode, contextlib.nullcontext())


def _loaded_query(settings: Any, api: str, mode: str, during: Any, started: list[float] | None = None) -> Any:
    """Load the retriever, then run the query inside ``during`` (a context manager switching a fault on);
    ``started`` receives the time the faulty query began."""
    started = [] if started is None else started
    from leaf_mongo.query.retriever import LeafRetriever

    retriever = LeafRetriever.from_settings(settings, search_mode=mode, query_timeout_ms=DEADLINE_MS)
    if api == "sync":
        try:
            retriever.load()
            with during:
                started.append(time.monotonic())
                return _answer(retriever.invoke(QUERY))
        finally:
            retriever.close()

    async def run() -> list[tuple[str, float]]:
        try:
            await retriever.aload()
            with during:
                started.append(time.monotonic())
                return _answer(await retriever.ainvoke(QUERY))
        finally:
            await retriever.aclose()

    return asyncio.run(run())


MODES = ["vector", "fulltext", "hybrid"]
APIS = ["sync", "async"]
TIMED_OUT = "timed out, no answer from MongoDB within the query deadline of"
FAILING = {  # (mode, data, what the message says: one of)
    "server error": ("alwaysOn", {"errorCode": 2}, ("Failing command via 'failCommand' failpoint (code 2)",)),
    # pymongo retries a read as long as the deadline allows: it ends lost on a retry, or at the deadline
    "connection closed every time": ("alwaysOn", {"closeConnection": True}, ("connection to MongoDB lost", TIMED_OUT)),
    "blocked past the deadline": ("alwaysOn", {"blockConnection": True, "blockTimeMS": 4 * DEADLINE_MS}, (TIMED_OUT,)),
}


@pytest.mark.parametrize("fault", sorted(FAILING))
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("mode", MODES)
def test_failing_aggregate_is_a_clear_error_within_the_deadline(
    corpus_settings: Any, admin: MongoClient[dict[str, Any]], mode: str, api: str, fault: str
) -> None:
    fail_mode, data, messages = FAILING[fault]
    assert _query(corpus_settings, api, mode)  # the clean answer is not empty
    started: list[float] = []
    with pytest.raises(ServerError) as err:
        _loaded_query(
            corpus_settings, api, mode, failing(admin, fail_mode, failCommands=["aggregate"], **data), started
        )
    elapsed = time.monotonic() - started[0]
    assert any(m in str(err.value) for m in messages), str(err.value)
    assert str(err.value).startswith(f"searching {corpus_settings.database}.docs: ")
    assert "\n" not in str(err.value)
    assert elapsed < DEADLINE_MS / 1000 + SLACK_S
    if TIMED_OUT in str(err.value):
        assert elapsed >= DEADLINE_MS / 1000 * 0.9  # it waited for the deadline, not less
        assert f"{DEADLINE_MS} ms" in str(err.value)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("mode", MODES)
def test_one_lost_connection_is_retried_to_the_same_answer(
    corpus_settings: Any, admin: MongoClient[dict[str, Any]], mode: str, api: str
) -> None:
    clean = _query(corpus_settings, api, mode)
    fault = failing(admin, {"times": 1}, failCommands=["aggregate"], closeConnection=True)
    assert _loaded_query(corpus_settings, api, mode, fault) == clean != []


def test_no_deadline_leaves_the_clients_own(corpus_settings: Any, admin: MongoClient[dict[str, Any]]) -> None:
    """``query_timeout_ms=None``: a block shorter than nothing-at-all is simply waited out (no deadline of ours)."""
    from leaf_mongo.query.retriever import LeafRetriever

    retriever = LeafRetriever.from_settings(corpus_settings, query_timeout_ms=None)
    try:
        clean = _answer(retriever.invoke(QUERY))
        with failing(admin, {"times": 1}, failCommands=["aggregate"], blockConnection=True, blockTimeMS=1500):
            start = time.monotonic()
            assert _answer(retriever.invoke(QUERY)) == clean
            assert time.monotonic() - start >= 1.4
    finally:
        retriever.close()


def test_spec_read_under_a_hung_server_times_out(corpus_settings: Any, admin: MongoClient[dict[str, Any]]) -> None:
    """The first query's spec and index reads share the deadline."""
    from leaf_mongo.query.retriever import LeafRetriever

    retriever = LeafRetriever.from_settings(corpus_settings, query_timeout_ms=DEADLINE_MS)
    try:
        with failing(admin, "alwaysOn", failCommands=["find"], blockConnection=True, blockTimeMS=4 * DEADLINE_MS):
            start = time.monotonic()
            with pytest.raises(ServerError, match="reading the spec of .*timed out"):
                retriever.invoke(QUERY)
            assert time.monotonic() - start < DEADLINE_MS / 1000 + SLACK_S
    finally:
        retriever.close()


def test_concurrent_first_queries_build_one_encoder(corpus_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """64 ``ainvoke`` tasks on a fresh retriever (the soak's load) load the query model once, not once per task
    (which took minutes and gigabytes before), and all get the answer one query alone gets."""
    from leaf_mongo.query.retriever import LeafRetriever

    alone = _query(corpus_settings, "async", "hybrid")
    opened: list[int] = []
    original = LeafRetriever._open

    def counting(self: LeafRetriever, *args: Any) -> Any:
        opened.append(1)
        return original(self, *args)

    monkeypatch.setattr(LeafRetriever, "_open", counting)
    retriever = LeafRetriever.from_settings(corpus_settings, search_mode="hybrid")

    async def run() -> list[list[tuple[str, float]]]:
        try:
            return [_answer(d) for d in await asyncio.gather(*(retriever.ainvoke(QUERY) for _ in range(64)))]
        finally:
            await retriever.aclose()

    answers = asyncio.run(run())
    assert opened == [1]
    assert all(a == alone for a in answers)
