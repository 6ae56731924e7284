"""The ``failCommand`` fail point and the test-command handshake, through real pymongo over the wire.

Each mode (``alwaysOn``, ``times``, ``skip``, ``activationProbability``, ``off``) and each data field
(``failCommands``, ``closeConnection``, ``errorCode``, ``errorLabels``, ``writeConcernError``,
``blockConnection``/``blockTimeMS``, ``appName``), pymongo's retryable writes recovering exactly once, and
the refusal of ``configureFailPoint`` by a server started without test commands, as mongod refuses it.

With ``LEAF_MONGO_TEST_URI`` set, the fail-point tests run against that server (a mongod started with
``--setParameter enableTestCommands=1``: ``docker-compose.test-commands.yml``; ``tests/fault_helpers.py``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import AutoReconnect, OperationFailure, WriteConcernError

from leaf_mongo.testing import MongoEmulator
from tests.fault_helpers import FaultServer, fault_server, fresh_db

__all__ = ["fault_server"]  # a fixture used by name

TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def emulator(fault_server: FaultServer) -> FaultServer:
    """An emulator with test commands, or the ``LEAF_MONGO_TEST_URI`` server started with them (``fault_server``)."""
    return fault_server


@pytest.fixture
def client(emulator: FaultServer) -> Iterator[MongoClient[dict[str, Any]]]:
    with MongoClient(emulator.uri, serverSelectionTimeoutMS=TIMEOUT_MS) as c:
        c.db.items.drop()
        yield c
        c.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


def fail(client: MongoClient[dict[str, Any]], mode: Any, **data: Any) -> dict[str, Any]:
    return client.admin.command({"configureFailPoint": "failCommand", "mode": mode, "data": data})


def insert_outcomes(client: MongoClient[dict[str, Any]], n: int) -> list[bool]:
    """Insert ``n`` documents without retries; True where the insert succeeded."""
    coll = client.get_database("db").items
    out = []
    for i in range(n):
        try:
            coll.insert_one({"i": i})
            out.append(True)
        except OperationFailure:
            out.append(False)
    return out


# --- getParameter / getCmdLineOpts -------------------------------------------------------------------------


def test_get_parameter_forms(client: MongoClient[dict[str, Any]]) -> None:
    admin = client.admin
    assert admin.command("getParameter", 1, enableTestCommands=1)["enableTestCommands"] is True
    every = admin.command("getParameter", "*")
    assert every["enableTestCommands"] is True
    assert every["featureCompatibilityVersion"] == {"version": "8.2"}
    assert admin.command({"getParameter": {"allParameters": True}})["enableTestCommands"] is True
    with pytest.raises(OperationFailure) as err:
        admin.command("getParameter", 1, noSuchParameter=1)
    assert err.value.code == 72 and "no option found to get" in str(err.value)
    with pytest.raises(OperationFailure) as err:
        client.db.command("getParameter", 1, enableTestCommands=1)
    assert err.value.code == 13  # admin only


def test_get_cmd_line_opts(client: MongoClient[dict[str, Any]]) -> None:
    opts = client.admin.command("getCmdLineOpts")
    assert isinstance(opts["argv"], list)
    assert opts["parsed"]["setParameter"]["enableTestCommands"] == "1"  # as pymongo's test runner reads it


def test_test_commands_off_by_default() -> None:
    with MongoEmulator() as em, MongoClient(em.uri, serverSelectionTimeoutMS=TIMEOUT_MS) as c:
        assert c.admin.command("getParameter", 1, enableTestCommands=1)["enableTestCommands"] is False
        assert "setParameter" not in c.admin.command("getCmdLineOpts")["parsed"]
        with pytest.raises(OperationFailure) as err:
            c.admin.command({"configureFailPoint": "failCommand", "mode": "alwaysOn"})
        assert err.value.code == 59 and "no such command: 'configureFailPoint'" in str(err.value)


def test_command_line_flag() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaf_mongo.testing", "--port", "0", "--enable-test-commands"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        uri = proc.stdout.readline().split()[-1]
        with MongoClient(uri, serverSelectionTimeoutMS=TIMEOUT_MS) as c:
            assert c.admin.command("getParameter", 1, enableTestCommands=1)["enableTestCommands"] is True
            assert "--enable-test-commands" in c.admin.command("getCmdLineOpts")["argv"]
            assert c.admin.command({"configureFailPoint": "failCommand", "mode": "off"})["ok"] == 1
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


# --- modes ---------------------------------------------------------------------------------------------------


def test_always_on_fails_only_listed_commands(client: MongoClient[dict[str, Any]]) -> None:
    fail(client, "alwaysOn", failCommands=["insert", "configureFailPoint"], errorCode=2)
    assert insert_outcomes(client, 3) == [False, False, False]
    assert client.db.items.count_documents({}) == 0  # the failed command never ran; count is not failed
    with pytest.raises(OperationFailure) as err:
        client.db.items.insert_one({"x": 1})
    assert err.value.code == 2 and "Failing command via 'failCommand' failpoint" in str(err.value)


def test_times_then_off_and_count(client: MongoClient[dict[str, Any]]) -> None:
    assert fail(client, {"times": 2}, failCommands=["insert"], errorCode=2)["ok"] == 1
    assert insert_outcomes(client, 4) == [False, False, True, True]
    assert fail(client, "off")["count"] >= 2  # mongod's count: how many times the fail point fired


def test_skip(client: MongoClient[dict[str, Any]]) -> None:
    fail(client, {"skip": 2}, failCommands=["insert"], errorCode=2)
    assert insert_outcomes(client, 4) == [True, True, False, False]


def test_activation_probability(client: MongoClient[dict[str, Any]]) -> None:
    fail(client, {"activationProbability": 0.0}, failCommands=["insert"], errorCode=2)
    assert all(insert_outcomes(client, 20))
    fail(client, {"activationProbability": 1.0}, failCommands=["insert"], errorCode=2)
    assert not any(insert_outcomes(client, 20))
    fail(client, {"activationProbability": 0.5}, failCommands=["insert"], errorCode=2)
    successes = sum(insert_outcomes(client, 200))
    assert 40 < successes < 160


def test_off(client: MongoClient[dict[str, Any]]) -> None:
    fail(client, "alwaysOn", failCommands=["insert"], errorCode=2)
    fail(client, "off")
    assert insert_outcomes(client, 2) == [True, True]


@pytest.mark.parametrize(
    ("mode", "code"),
    [("sometimes", 2), ({"times": -1}, 2), ({"skip": -1}, 2), ({"activationProbability": 2.0}, 2), ({}, 2)],
)
def test_bad_modes_refused(client: MongoClient[dict[str, Any]], mode: Any, code: int) -> None:
    with pytest.raises(OperationFailure) as err:
        fail(client, mode, failCommands=["insert"], errorCode=2)
    assert err.value.code == code


def test_unsupported_is_refused_as_limitation(emulator: FaultServer, client: MongoClient[dict[str, Any]]) -> None:
    if emulator.emulator is None:
        pytest.skip("emulator-only: a real mongod has these fail points and fields")
    for cmd in (
        {"configureFailPoint": "hangBeforeIndexBuild", "mode": "alwaysOn"},
        {"configureFailPoint": "failCommand", "mode": "alwaysOn", "data": {"threadName": "conn1"}},
    ):
        with pytest.raises(OperationFailure) as err:
            client.admin.command(cmd)
        assert "emulator limitation" in str(err.value)
    with pytest.raises(OperationFailure) as err:
        client.db.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert err.value.code == 13  # admin only


# --- data fields ---------------------------------------------------------------------------------------------


def test_error_labels(client: MongoClient[dict[str, Any]]) -> None:
    fail(client, {"times": 1}, failCommands=["find"], errorCode=2, errorLabels=["SomeLabel"])
    with pytest.raises(OperationFailure) as err:
        client.db.items.find_one()
    assert err.value.has_error_label("SomeLabel")


def test_close_connection_without_retry(emulator: FaultServer, client: MongoClient[dict[str, Any]]) -> None:
    fail(client, {"times": 1}, failCommands=["insert"], closeConnection=True)
    with MongoClient(emulator.uri, retryWrites=False, serverSelectionTimeoutMS=TIMEOUT_MS) as plain:
        with pytest.raises(AutoReconnect):
            plain.db.items.insert_one({"x": 1})
        assert plain.db.items.count_documents({}) == 0  # hung up before the insert ran


def test_retryable_write_retries_close_connection_once(client: MongoClient[dict[str, Any]]) -> None:
    fail(client, {"times": 1}, failCommands=["insert"], closeConnection=True)
    client.db.items.insert_one({"x": 1})
    assert client.db.items.count_documents({}) == 1


@pytest.mark.parametrize(
    "data",
    [
        {"errorCode": 10107, "errorLabels": ["RetryableWriteError"]},  # NotWritablePrimary, labelled by the test
        {"errorCode": 91},  # ShutdownInProgress: mongod labels a retryable write's error itself
    ],
)
def test_retryable_write_error_retried_once(client: MongoClient[dict[str, Any]], data: dict[str, Any]) -> None:
    fail(client, {"times": 1}, failCommands=["insert", "update", "delete"], **data)
    client.db.items.insert_many([{"x": 1}, {"x": 2}])
    fail(client, {"times": 1}, failCommands=["update"], **data)
    client.db.items.update_one({"x": 1}, {"$inc": {"n": 1}})
    fail(client, {"times": 1}, failCommands=["delete"], **data)
    client.db.items.delete_one({"x": 2})
    assert list(client.db.items.find({}, {"_id": 0})) == [{"x": 1, "n": 1}]


def test_non_retryable_error_is_not_labelled(client: MongoClient[dict[str, Any]]) -> None:
    fail(client, {"times": 2}, failCommands=["insert"], errorCode=11000)
    with pytest.raises(OperationFailure) as err:
        client.db.items.insert_one({"x": 1})
    assert not err.value.has_error_label("RetryableWriteError")
    assert client.db.items.count_documents({}) == 0


def test_write_concern_error(client: MongoClient[dict[str, Any]]) -> None:
    wce = {"code": 64, "codeName": "WriteConcernFailed", "errmsg": "waiting for replication timed out"}
    fail(client, {"times": 1}, failCommands=["insert"], writeConcernError=wce)
    with pytest.raises(WriteConcernError) as err:
        client.db.items.insert_one({"x": 1})
    assert err.value.code == 64
    assert client.db.items.count_documents({}) == 1  # the write itself ran, as on mongod


def test_retryable_write_concern_error_retried(client: MongoClient[dict[str, Any]]) -> None:
    wce = {"code": 91, "errmsg": "Replication is being shut down"}
    fail(client, {"times": 1}, failCommands=["insert"], writeConcernError=wce)
    client.db.items.insert_one({"_id": 1})  # retried with the same txnNumber: the first reply, not a second insert
    assert client.db.items.count_documents({}) == 1


def test_block_connection(client: MongoClient[dict[str, Any]]) -> None:
    fail(client, {"times": 1}, failCommands=["find"], blockConnection=True, blockTimeMS=400)
    start = time.monotonic()
    client.db.items.find_one()
    assert time.monotonic() - start >= 0.4
    start = time.monotonic()
    client.db.items.find_one()
    assert time.monotonic() - start < 0.4


def test_app_name(emulator: FaultServer, client: MongoClient[dict[str, Any]]) -> None:
    fail(client, "alwaysOn", failCommands=["insert"], errorCode=2, appName="target")
    with MongoClient(emulator.uri, appName="target", serverSelectionTimeoutMS=TIMEOUT_MS) as target:
        assert insert_outcomes(target, 1) == [False]
    with MongoClient(emulator.uri, appName="other", serverSelectionTimeoutMS=TIMEOUT_MS) as other:
        assert insert_outcomes(other, 1) == [True]
    assert insert_outcomes(client, 1) == [True]  # no appName at all


@pytest.mark.parametrize(
    ("extra", "message"), [({}, "must specify 'blockTimeMS'"), ({"blockTimeMS": -1}, "non-negative")]
)
def test_block_connection_bad_time_fails_the_command(
    client: MongoClient[dict[str, Any]], extra: dict[str, Any], message: str
) -> None:
    fail(client, {"times": 1}, failCommands=["find"], blockConnection=True, **extra)  # accepted, as by mongod
    with pytest.raises(OperationFailure) as err:
        client.db.items.find_one()
    assert err.value.code == 72 and message in str(err.value)


def test_fail_commands_match_registered_names(client: MongoClient[dict[str, Any]]) -> None:
    fail(client, "alwaysOn", failCommands=["findAndModify", "ping"], errorCode=2)
    with pytest.raises(OperationFailure):
        client.db.command({"findandmodify": "items", "query": {}, "update": {"$set": {"a": 1}}})
    with pytest.raises(OperationFailure):
        client.db.command("ping")
    fail(client, "alwaysOn", failCommands=["findandmodify", "PING"], errorCode=2)  # not a registered name
    client.db.command({"findAndModify": "items", "query": {}, "update": {"$set": {"a": 1}}})
    client.db.command("ping")


# --- leaf-mongo's own ingest under faults --------------------------------------------------------------------

INGEST_FAULTS = {  # (mode, data, retried away): pymongo retries a write once, so a second failure in a row ends it
    "closeConnection": ({"times": 1}, {"closeConnection": True}, True),
    "NotWritablePrimary+RetryableWriteError": (
        {"times": 1},
        {"errorCode": 10107, "errorLabels": ["RetryableWriteError"]},
        True,
    ),
    "ShutdownInProgress": ({"times": 1}, {"errorCode": 91}, True),  # mongod labels it RetryableWriteError itself
    "ShutdownInProgress twice": ({"times": 2}, {"errorCode": 91}, False),  # the retry fails too: a re-run converges
    "writeConcernError retryable": ({"times": 1}, {"writeConcernError": {"code": 91, "errmsg": "shutting down"}}, True),
    "writeConcernError": ({"times": 1}, {"writeConcernError": {"code": 64, "errmsg": "timed out"}}, False),
}


def _ingest_snapshot(client: MongoClient[dict[str, Any]], db: str) -> dict[str, dict[str, Any]]:
    from leaf_mongo.spec.vectors import from_binary

    docs = {}
    for d in client[db]["docs"].find():
        d["embedding"] = [round(float(x), 5) for x in from_binary(d["embedding"])]
        docs[str(d["_id"])] = d
    return docs


@pytest.mark.parametrize("fault", sorted(INGEST_FAULTS))
def test_ingest_under_faults_converges(
    tmp_path: Path, emulator: FaultServer, client: MongoClient[dict[str, Any]], fault: str
) -> None:
    """Faults on ingest's writes (retried by pymongo's retryable writes) end in exactly a clean run's collection."""
    from leaf_mongo.errors import ServerError
    from leaf_mongo.ingest import MANIFEST_COLLECTION, ingest
    from leaf_mongo.settings import load_settings
    from tests.tiny_models import make_tiny_model

    tiny = str(make_tiny_model(tmp_path / "tiny", dimensions=16, seed=4))
    root = tmp_path / "corpus"
    root.mkdir()
    for i in range(6):
        (root / f"f{i}.md").write_text(f"# Doc {i}\n\n" + " ".join(f"word{i}{j} river cloud" for j in range(40)))

    def run(db: str) -> None:
        settings = load_settings(
            uri=emulator.uri, database=db, collection="docs", teacher_model=tiny, leaf_model=tiny, query_prompt="",
            chunk_size=24, chunk_overlap=4, batch_size=8, write_batch_size=3, index_wait_seconds=60,
        )  # fmt: skip
        ingest([root], settings)

    ref_db, faulty_db = fresh_db("ref"), fresh_db("faulty")
    run(ref_db)
    mode, data, retried = INGEST_FAULTS[fault]
    before = fail(client, mode, failCommands=["insert", "update", "delete"], **data)["count"]
    try:
        if retried:
            run(faulty_db)
        else:
            with pytest.raises(ServerError, match="failCommand|timed out"):
                run(faulty_db)
    finally:
        fired = fail(client, "off")["count"] - before
    assert fired == mode["times"]  # the fault really hit ingest's writes
    if not retried:
        run(faulty_db)  # the re-run after a clear error
    ref, got = _ingest_snapshot(client, ref_db), _ingest_snapshot(client, faulty_db)
    assert ref and got == ref

    def manifest(db: str) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in m.items() if not k.endswith("_at")}
            for m in client[db][MANIFEST_COLLECTION].find({}, sort=[("_id", 1)])
        ]

    assert manifest(ref_db) and manifest(faulty_db) == manifest(ref_db)


def test_async_client_retries_once(emulator: FaultServer, client: MongoClient[dict[str, Any]]) -> None:
    import asyncio

    from pymongo import AsyncMongoClient

    async def scenario() -> int:
        async with AsyncMongoClient(emulator.uri, serverSelectionTimeoutMS=TIMEOUT_MS) as aclient:
            await aclient.admin.command(
                {"configureFailPoint": "failCommand", "mode": {"times": 1},
                 "data": {"failCommands": ["insert"], "closeConnection": True}}
            )  # fmt: skip
            await aclient.db.items.insert_one({"x": 1})
            return await aclient.db.items.count_documents({})

    assert asyncio.run(scenario()) == 1


def test_namespace(client: MongoClient[dict[str, Any]]) -> None:
    fail(client, "alwaysOn", failCommands=["insert", "find"], errorCode=2, namespace="db.items")
    assert insert_outcomes(client, 1) == [False]
    with pytest.raises(OperationFailure):
        client.db.items.find_one()
    client.db.others.insert_one({"x": 1})
    assert client.db.others.find_one({}, {"_id": 0}) == {"x": 1}
    client.other.items.insert_one({"x": 1})


# --- maxTimeMS: a blocked command is interrupted at its deadline ----------------------------------------------


def test_block_past_max_time_ms_is_max_time_ms_expired(client: MongoClient[dict[str, Any]]) -> None:
    """mongod's jstests/noPassthrough/block_connection_max_time_ms: the block is interruptible, nothing runs."""
    fail(client, {"times": 1}, failCommands=["insert"], blockConnection=True, blockTimeMS=1000)
    start = time.monotonic()
    with pytest.raises(OperationFailure) as err:
        client.db.command({"insert": "items", "documents": [{"x": 1}], "maxTimeMS": 100})
    assert err.value.code == 50  # MaxTimeMSExpired
    assert time.monotonic() - start < 0.9
    assert client.db.items.count_documents({}) == 0


def test_read_blocked_past_max_time_ms(client: MongoClient[dict[str, Any]]) -> None:
    client.db.items.insert_one({"x": 1})
    fail(client, {"times": 1}, failCommands=["find"], blockConnection=True, blockTimeMS=600)
    with pytest.raises(OperationFailure) as err:
        client.db.items.find_one({}, max_time_ms=100)
    assert err.value.code == 50
    fail(client, {"times": 1}, failCommands=["find"], blockConnection=True, blockTimeMS=100)
    assert client.db.items.find_one({}, max_time_ms=5_000)["x"] == 1  # a block within the limit only delays


def test_max_time_ms_zero_is_no_limit(client: MongoClient[dict[str, Any]]) -> None:
    fail(client, {"times": 1}, failCommands=["insert"], blockConnection=True, blockTimeMS=200)
    client.db.command({"insert": "items", "documents": [{"x": 1}], "maxTimeMS": 0})
    assert client.db.items.count_documents({}) == 1
