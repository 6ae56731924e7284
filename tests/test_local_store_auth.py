"""The local store with users (SCRAM-SHA-256) and with test commands, through real pymongo (sync and async).

The local store is the emulator made durable, so it authenticates as the emulator does (tests/test_emulator_auth.py
has the handshake step by step); here: the options reach the server it starts (``ensure_server(users=...,
test_commands=...)``, ``LEAF_MONGO_LOCAL_USERS``/``_USERNAME``/``_PASSWORD``/``_TEST_COMMANDS``), a running server
started otherwise is never silently reused, and the owner-only admission stays as it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import OperationFailure
from typer.testing import CliRunner

from leaf_mongo.cli.app import app
from leaf_mongo.connection import check_server, make_async_client, make_client
from leaf_mongo.errors import LocalStoreError, ServerError
from leaf_mongo.local import ensure_server, status, stop
from leaf_mongo.local.files import read_state
from leaf_mongo.settings import load_settings

PASSWORD = "local store pa$$word"
TIMEOUT_MS = 10_000


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "store"
    yield path
    stop(path)


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump([{"user": "alice", "password": PASSWORD, "db": "admin"}], fh)
    return path


def with_credentials(uri: str, user: str, password: str) -> str:
    return uri.replace("mongodb://", f"mongodb://{quote(user, safe='')}:{quote(password, safe='')}@", 1)


def test_local_store_with_users(folder: Path, users: Path) -> None:
    uri = ensure_server(folder, users=users)
    state = read_state(folder)
    assert state is not None and state.users == str(users.resolve()) and not state.test_commands
    assert ensure_server(folder, users=users) == uri  # the same options: the same server
    with MongoClient(with_credentials(uri, "alice", PASSWORD), serverSelectionTimeoutMS=TIMEOUT_MS) as c:
        c.app.docs.insert_many([{"_id": i} for i in range(3)])
        assert c.app.docs.count_documents({}) == 3
    with MongoClient(with_credentials(uri, "alice", "wrong"), serverSelectionTimeoutMS=TIMEOUT_MS) as c:
        with pytest.raises(OperationFailure) as info:
            c.app.docs.count_documents({})
        assert info.value.code == 18 and info.value.details is not None
        assert info.value.details["errmsg"] == "Authentication failed."
    with MongoClient(uri, serverSelectionTimeoutMS=TIMEOUT_MS) as c:
        with pytest.raises(OperationFailure) as info:
            c.app.docs.count_documents({})
        assert info.value.code == 13 and "Command aggregate requires authentication" in str(info.value)
    info_ = status(folder)  # status reads the file: it needs no credentials
    assert info_ is not None and info_["running"] and info_["collections"][0]["documents"] == 3
    assert info_["users"] == str(users.resolve()) and info_["test_commands"] is False
    shown = CliRunner().invoke(app, ["local", "status", "--path", str(folder)])
    assert shown.exit_code == 0 and "authenticating the users of" in shown.output and PASSWORD not in shown.output


async def test_local_store_with_users_async(folder: Path, users: Path) -> None:
    uri = ensure_server(folder, users=users)
    right: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        with_credentials(uri, "alice", PASSWORD), serverSelectionTimeoutMS=TIMEOUT_MS
    )
    wrong: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        with_credentials(uri, "alice", "nope"), serverSelectionTimeoutMS=TIMEOUT_MS
    )
    anonymous: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, serverSelectionTimeoutMS=TIMEOUT_MS)
    try:
        await right.app.docs.insert_one({"_id": 1})
        assert await right.app.docs.find_one() == {"_id": 1}
        with pytest.raises(OperationFailure) as info:
            await wrong.app.docs.find_one()
        assert info.value.code == 18
        with pytest.raises(OperationFailure) as info:
            await anonymous.app.docs.insert_one({"_id": 2})
        assert info.value.code == 13
    finally:
        for c in (right, wrong, anonymous):
            await c.close()


def test_credentials_refused_by_a_local_store_without_users(folder: Path) -> None:
    uri = ensure_server(folder)
    credentials = with_credentials(uri, "alice", PASSWORD)
    with MongoClient(credentials, serverSelectionTimeoutMS=TIMEOUT_MS) as c, pytest.raises(OperationFailure) as info:
        c.app.docs.find_one()
    assert info.value.code == 18 and "no users configured" in str(info.value) and PASSWORD not in str(info.value)


def test_a_server_started_otherwise_is_not_reused(folder: Path, users: Path) -> None:
    ensure_server(folder)
    with pytest.raises(
        LocalStoreError, match=r"runs without users.*wants it with the users of .*leaf-mongo local stop"
    ):
        ensure_server(folder, users=users)
    with pytest.raises(LocalStoreError, match="with test commands"):
        ensure_server(folder, test_commands=True)
    assert stop(folder)
    ensure_server(folder, users=users)
    with pytest.raises(LocalStoreError, match=r"runs with the users of .*wants it without users"):
        ensure_server(folder)


def test_a_bad_users_file_is_one_clear_error(folder: Path, users: Path) -> None:
    users.chmod(0o644)
    with pytest.raises(LocalStoreError, match="too open"):
        ensure_server(folder, users=users, timeout=30)


def test_local_store_with_test_commands(folder: Path) -> None:
    plain = ensure_server(folder)
    with MongoClient(plain, serverSelectionTimeoutMS=TIMEOUT_MS) as c, pytest.raises(OperationFailure) as info:
        c.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert info.value.code == 59  # mongod without enableTestCommands: no such command
    stop(folder)
    uri = ensure_server(folder, test_commands=True)
    with MongoClient(uri, serverSelectionTimeoutMS=TIMEOUT_MS, retryWrites=False) as c:
        assert c.admin.command("getParameter", 1, enableTestCommands=1)["enableTestCommands"] is True
        c.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": {"times": 1},
                "data": {"failCommands": ["insert"], "errorCode": 2},
            }
        )
        with pytest.raises(OperationFailure) as info:
            c.app.docs.insert_one({"_id": 1})
        assert info.value.code == 2
        c.app.docs.insert_one({"_id": 1})  # the fail point fired once
        assert c.app.docs.count_documents({}) == 1


def test_settings_reach_the_local_store(folder: Path, users: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LEAF_MONGO_LOCAL_USERS starts the store with users; leaf-mongo connects as LEAF_MONGO_LOCAL_USERNAME."""
    monkeypatch.setenv("LEAF_MONGO_LOCAL_PATH", str(folder))
    monkeypatch.setenv("LEAF_MONGO_LOCAL_USERS", str(users))
    monkeypatch.setenv("LEAF_MONGO_LOCAL_USERNAME", "alice")
    monkeypatch.setenv("LEAF_MONGO_LOCAL_PASSWORD", PASSWORD)
    monkeypatch.setenv("LEAF_MONGO_SERVER_TIMEOUT_MS", "5000")
    monkeypatch.delenv("LEAF_MONGO_URI", raising=False)
    settings = load_settings()
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())
    client = make_client(settings)
    try:
        check_server(client)
        client.app.docs.insert_one({"_id": 1})
    finally:
        client.close()
    wrong = make_client(load_settings(local_password="wrong"))
    try:
        with pytest.raises(ServerError, match=r"authentication failed.*code 18") as info:
            check_server(wrong)
        assert "wrong" not in str(info.value) and PASSWORD not in str(info.value)
    finally:
        wrong.close()


async def test_settings_reach_the_local_store_async(folder: Path, users: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAF_MONGO_LOCAL_PATH", str(folder))
    monkeypatch.delenv("LEAF_MONGO_URI", raising=False)
    settings = load_settings(local_users=str(users), local_username="alice", local_password=PASSWORD)
    client = make_async_client(settings)
    try:
        await client.app.docs.insert_one({"_id": 1})
        assert await client.app.docs.count_documents({}) == 1
    finally:
        await client.close()
