"""The ``onPrimaryTransactionalWrite`` fail point (the retryable-write spec tests'), through real pymongo.

mongod's fail point fires as a retryable write completes on the primary: by default the write commits and the
connection is closed (the driver retries and gets the first reply back), with ``failBeforeCommitExceptionCode``
nothing is written. Emulator-only: a real mongod needs ``enableTestCommands``, and the driver specification
tests (``scripts/driver_spec_suite.py``, ``retryable_writes/*.json``) hold both to the same expectations.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient, monitoring
from pymongo.errors import AutoReconnect, OperationFailure

from leaf_mongo.testing import MongoEmulator

TIMEOUT_MS = 20_000


class Started(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture(scope="module")
def emulator() -> Iterator[MongoEmulator]:
    with MongoEmulator(test_commands=True) as em:
        yield em


@pytest.fixture
def listener() -> Started:
    return Started()


@pytest.fixture
def client(emulator: MongoEmulator, listener: Started) -> Iterator[MongoClient[dict[str, Any]]]:
    with MongoClient(emulator.uri, serverSelectionTimeoutMS=TIMEOUT_MS, event_listeners=[listener]) as c:
        c.db.items.drop()
        c.db.items.insert_one({"_id": 1, "x": 11})
        listener.names.clear()
        yield c
        c.admin.command({"configureFailPoint": "onPrimaryTransactionalWrite", "mode": "off"})


def arm(client: MongoClient[dict[str, Any]], mode: Any, **data: Any) -> dict[str, Any]:
    return client.admin.command({"configureFailPoint": "onPrimaryTransactionalWrite", "mode": mode, "data": data})


def fired(client: MongoClient[dict[str, Any]], before: int) -> int:
    """Times the fail point fired since ``before`` (``count`` counts since the emulator started); turns it off."""
    return int(arm(client, "off")["count"]) - before


def test_committed_then_hung_up_is_retried_and_applied_once(
    client: MongoClient[dict[str, Any]], listener: Started
) -> None:
    arm(client, {"times": 1})
    result = client.db.items.update_one({"_id": 1}, {"$inc": {"x": 1}})
    assert (result.matched_count, result.modified_count) == (1, 1)  # the first attempt's reply, replayed
    assert client.db.items.find_one({"_id": 1}) == {"_id": 1, "x": 12}
    assert listener.names.count("update") == 2


def test_not_committed_then_hung_up_is_retried_and_applied_once(client: MongoClient[dict[str, Any]]) -> None:
    arm(client, {"times": 1}, failBeforeCommitExceptionCode=1)
    client.db.items.insert_many([{"_id": 2}, {"_id": 3}])
    assert sorted(d["_id"] for d in client.db.items.find()) == [1, 2, 3]


def test_never_committed_fails_and_writes_nothing(client: MongoClient[dict[str, Any]]) -> None:
    before = arm(client, "alwaysOn", failBeforeCommitExceptionCode=1)["count"]
    with pytest.raises(AutoReconnect):
        client.db.items.find_one_and_update({"_id": 1}, {"$inc": {"x": 1}})
    assert fired(client, before) == 2  # the attempt and the single retry
    assert client.db.items.find_one({"_id": 1}) == {"_id": 1, "x": 11}


def test_without_close_connection_the_code_is_the_error(client: MongoClient[dict[str, Any]]) -> None:
    arm(client, {"times": 1}, failBeforeCommitExceptionCode=2, closeConnection=False)
    with pytest.raises(OperationFailure) as info:
        client.db.items.delete_one({"_id": 1})
    assert info.value.code == 2
    assert client.db.items.count_documents({}) == 1


def test_a_write_without_txn_number_does_not_consult_it(emulator: MongoEmulator) -> None:
    with MongoClient(emulator.uri, retryWrites=False, serverSelectionTimeoutMS=TIMEOUT_MS) as plain:
        plain.db.items.drop()
        before = arm(plain, {"times": 1})["count"]
        plain.db.items.insert_one({"_id": 5})
        assert fired(plain, before) == 0


def test_bad_data_is_refused(client: MongoClient[dict[str, Any]]) -> None:
    with pytest.raises(OperationFailure, match="emulator limitation"):
        arm(client, {"times": 1}, threadName="x")
    with pytest.raises(OperationFailure) as info:
        arm(client, {"times": 1}, failBeforeCommitExceptionCode="1")
    assert info.value.code == 14


def test_a_durable_write_is_on_disk_before_the_hang_up(tmp_path: Path) -> None:
    with (
        MongoEmulator(test_commands=True, data_path=tmp_path) as em,
        MongoClient(em.uri, serverSelectionTimeoutMS=TIMEOUT_MS) as c,
    ):
        arm(c, {"times": 1})
        c.db.items.insert_many([{"_id": 1}, {"_id": 2}])
    with MongoEmulator(data_path=tmp_path) as again, MongoClient(again.uri) as c:
        assert sorted(d["_id"] for d in c.db.items.find()) == [1, 2]
