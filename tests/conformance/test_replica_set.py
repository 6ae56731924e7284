"""Conformance: the deployment is a replica set (mongot needs one) and replies carry the logical clock.

Runs on the emulator and, unchanged, on a real server via ``LEAF_MONGO_TEST_URI`` (see helpers.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import Int64, Timestamp
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure

HELLO = "https://www.mongodb.com/docs/manual/reference/command/hello/"


def test_hello_presents_a_replica_set_primary(mongo_client: MongoClient) -> None:
    # Source: HELLO (replica-set fields setName, hosts, primary, me, isWritablePrimary); mongot syncs
    # from a replica set's change streams (REF §1: "mongod must run as a replica set").
    hello = mongo_client.admin.command("hello")
    assert hello["isWritablePrimary"] is True
    assert isinstance(hello["setName"], str) and hello["setName"]
    assert hello["primary"] in hello["hosts"]
    assert hello["me"] == hello["primary"]


def test_driver_sees_a_replica_set_primary(mongo_client: MongoClient) -> None:
    # Source: Server Discovery and Monitoring spec (a hello with setName and isWritablePrimary is an
    # RSPrimary), https://github.com/mongodb/specifications/blob/master/source/server-discovery-and-monitoring/
    mongo_client.admin.command("ping")
    types = {sd.server_type_name for sd in mongo_client.topology_description.server_descriptions().values()}
    assert "RSPrimary" in types


def test_every_reply_carries_operation_time_and_cluster_time(database: Database) -> None:
    # Source: https://www.mongodb.com/docs/manual/reference/command/ping/ and "Response" of any command on a
    # replica set: operationTime and $clusterTime (causal consistency); langchain-mongodb's
    # MongoDBRecordManager.get_time falls back to ping["operationTime"].
    first = database.command("ping")
    assert isinstance(first["operationTime"], Timestamp)
    assert isinstance(first["$clusterTime"]["clusterTime"], Timestamp)
    database.ticks.insert_one({"x": 1})
    second = database.command("ping")
    assert second["operationTime"] >= first["operationTime"]
    with pytest.raises(OperationFailure) as failed:
        database.command("find", "ticks", filter={"$nonsense": 1})
    assert isinstance((failed.value.details or {}).get("operationTime"), Timestamp)


def test_host_info_reports_the_current_time(database: Database) -> None:
    # Source: https://www.mongodb.com/docs/manual/reference/command/hostInfo/ (system.currentTime, hostname);
    # langchain-mongodb MongoDBRecordManager.get_time reads system.currentTime.
    info = database.command("hostInfo")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    current = info["system"]["currentTime"]
    assert isinstance(current, dt.datetime)
    assert abs((current.replace(tzinfo=None) - now).total_seconds()) < 3600
    assert info["system"]["hostname"]


def test_retried_write_returns_the_first_result(mongo_uri: str, db_name: str) -> None:
    # Source: Retryable Writes spec ("the server ... will return the result of the original execution"
    # for a repeated lsid + txnNumber), https://github.com/mongodb/specifications/blob/master/source/
    # retryable-writes/retryable-writes.md. A client of its own: the session (lsid) used with a hand-picked
    # txnNumber must never go back to a pool other tests draw from.
    with MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000) as client:
        database = client[db_name]
        database.create_collection("retry")
        with client.start_session() as session:
            cmd: dict[str, Any] = {"insert": "retry", "documents": [{"_id": 1}], "txnNumber": Int64(7)}
            first = database.command(dict(cmd), session=session)
            again = database.command(dict(cmd), session=session)
        assert first["n"] == 1 and again["n"] == 1 and "writeErrors" not in again
        assert database.retry.count_documents({}) == 1
