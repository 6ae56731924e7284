"""SCRAM-SHA-256 authentication in the emulator, through real pymongo over the wire (sync and async).

The handshake as mongod does it (src/mongo/db/auth/sasl_commands.cpp, authentication_session.cpp,
sasl_mechanism_registry.cpp): ``saslSupportedMechs`` and ``speculativeAuthenticate`` in ``hello``,
``saslStart``/``saslContinue`` with ``conversationId`` 1 and BinData (or base64) payloads, the empty third exchange
unless ``skipEmptyExchange``; every failure is ``AuthenticationFailed`` (18) "Authentication failed.", and before
authentication a command is ``Unauthorized`` (13) "Command <name> requires authentication". Without users, a
client with credentials is refused (18, naming the missing users), never let in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from bson import Binary
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import OperationFailure
from scramp import ScramClient

from leaf_mongo.testing import MongoEmulator
from leaf_mongo.testing.users import ITERATIONS, SALT_BYTES, Users

PASSWORD = "correct horse battery staple"
TIMEOUT_MS = 10_000


def write_users(folder: Path, users: list[dict[str, Any]]) -> Path:
    path = folder / "users.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(users, fh)
    return path


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoEmulator]:
    users = [
        {"user": "alice", "password": PASSWORD, "db": "admin"},
        {"user": "IX", "password": "IX", "db": "admin"},  # the auth spec's SASLprep user
        {"user": "carol", "password": "other", "db": "app"},
    ]
    with MongoEmulator(users=write_users(tmp_path_factory.mktemp("users"), users), test_commands=True) as em:
        yield em


def uri(em: MongoEmulator, user: str | None = None, password: str = "", options: str = "") -> str:
    who = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user else ""
    return f"mongodb://{who}{em.host}:{em.port}/?directConnection=true{options}"


def client(address: str, **kwargs: Any) -> MongoClient[dict[str, Any]]:
    return MongoClient(address, serverSelectionTimeoutMS=TIMEOUT_MS, **kwargs)


def authenticated(c: MongoClient[dict[str, Any]]) -> list[dict[str, str]]:
    return list(c.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"])


# --- right password, wrong password, no credentials --------------------------------------------------------------


def test_right_password_connects_and_works(emulator: MongoEmulator) -> None:
    with client(uri(emulator, "alice", PASSWORD)) as c:
        c.auth_db.items.insert_one({"_id": 1, "x": "a"})
        assert c.auth_db.items.find_one({"_id": 1}) == {"_id": 1, "x": "a"}
        status = c.admin.command("connectionStatus")["authInfo"]
        assert status["authenticatedUsers"] == [{"user": "alice", "db": "admin"}]
        c.drop_database("auth_db")


async def test_right_password_connects_async(emulator: MongoEmulator) -> None:
    c: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri(emulator, "alice", PASSWORD), serverSelectionTimeoutMS=TIMEOUT_MS
    )
    try:
        await c.auth_async.items.insert_many([{"i": i} for i in range(3)])
        assert await c.auth_async.items.count_documents({}) == 3
        await c.drop_database("auth_async")
    finally:
        await c.close()


@pytest.mark.parametrize(
    ("user", "password", "options"),
    [
        ("alice", "wrong password", ""),  # wrong password
        ("mallory", PASSWORD, ""),  # no such user: pymongo falls back to SCRAM-SHA-1, refused the same way
        ("alice", PASSWORD, "&authSource=app"),  # alice is a user of admin, not of app
        ("carol", "other", ""),  # carol is a user of app, not of admin
        ("alice", PASSWORD, "&authMechanism=SCRAM-SHA-1"),  # no SCRAM-SHA-1 credentials are kept
    ],
)
def test_wrong_credentials_get_code_18(emulator: MongoEmulator, user: str, password: str, options: str) -> None:
    with client(uri(emulator, user, password, options)) as c, pytest.raises(OperationFailure) as info:
        c.auth_db.items.find_one()
    assert info.value.code == 18
    assert info.value.details is not None and info.value.details["errmsg"] == "Authentication failed."
    assert info.value.details["codeName"] == "AuthenticationFailed"
    assert password not in str(info.value) and password not in repr(info.value.details)


async def test_wrong_password_gets_code_18_async(emulator: MongoEmulator) -> None:
    c: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri(emulator, "alice", "not it"), serverSelectionTimeoutMS=TIMEOUT_MS
    )
    try:
        with pytest.raises(OperationFailure) as info:
            await c.auth_db.items.find_one()
        assert info.value.code == 18 and "Authentication failed." in str(info.value)
    finally:
        await c.close()


def test_user_of_another_database(emulator: MongoEmulator) -> None:
    with client(uri(emulator, "carol", "other", "&authSource=app")) as c:
        assert c.app.items.count_documents({}) == 0
        assert c.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"] == [{"user": "carol", "db": "app"}]


def test_password_is_saslprepped(emulator: MongoEmulator) -> None:
    """The auth spec's case: stored "IX", given "I\\u00adX" (a soft hyphen, mapped to nothing by SASLprep)."""
    with client(uri(emulator, "IX", "I\u00adX")) as c:
        assert c.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"] == [{"user": "IX", "db": "admin"}]


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ({"find": "items"}, "find"),
        ({"insert": "items", "documents": [{"x": 1}]}, "insert"),
        ({"findandmodify": "items", "query": {}, "remove": True}, "findAndModify"),
        ({"aggregate": "items", "pipeline": [], "cursor": {}}, "aggregate"),
        ({"listCollections": 1}, "listCollections"),
        ({"buildInfo": 1}, "buildInfo"),  # mongod's buildInfoAuthMode default: requiresAuth
        ({"serverStatus": 1}, "serverStatus"),
        ({"createSearchIndexes": "items", "indexes": []}, "createSearchIndexes"),
    ],
)
def test_commands_before_authentication_get_code_13(
    emulator: MongoEmulator, command: dict[str, Any], name: str
) -> None:
    with client(uri(emulator)) as c, pytest.raises(OperationFailure) as info:
        c.auth_db.command(command)
    assert info.value.code == 13 and info.value.details is not None
    assert info.value.details["errmsg"] == f"Command {name} requires authentication"
    assert info.value.details["codeName"] == "Unauthorized"


def test_handshake_commands_run_before_authentication(emulator: MongoEmulator) -> None:
    with client(uri(emulator)) as c:
        assert c.admin.command("ping")["ok"] == 1
        assert c.admin.command("hello")["isWritablePrimary"] is True
        assert c.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"] == []
        # configureFailPoint: requiresAuth() false in mongod (test commands are enabled from the command line only)
        assert c.admin.command({"configureFailPoint": "failCommand", "mode": "off"})["ok"] == 1
        with pytest.raises(OperationFailure) as info:  # an unknown command is unknown, authenticated or not
            c.admin.command("noSuchCommand")
        assert info.value.code == 59


async def test_commands_before_authentication_get_code_13_async(emulator: MongoEmulator) -> None:
    c: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri(emulator), serverSelectionTimeoutMS=TIMEOUT_MS)
    try:
        with pytest.raises(OperationFailure) as info:
            await c.auth_db.items.insert_one({"x": 1})
        assert info.value.code == 13 and "Command insert requires authentication" in str(info.value)
    finally:
        await c.close()


# --- no users configured ---------------------------------------------------------------------------------------


def test_credentials_without_users_are_refused() -> None:
    with MongoEmulator() as em, client(uri(em, "alice", PASSWORD)) as c, pytest.raises(OperationFailure) as info:
        c.db.items.find_one()
    assert info.value.code == 18
    assert "Authentication failed." in str(info.value) and "no users configured" in str(info.value)
    assert PASSWORD not in str(info.value)


async def test_credentials_without_users_are_refused_async() -> None:
    with MongoEmulator() as em:
        c: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri(em, "alice", PASSWORD), serverSelectionTimeoutMS=TIMEOUT_MS
        )
        try:
            with pytest.raises(OperationFailure) as info:
                await c.db.items.find_one()
            assert info.value.code == 18 and "no users configured" in str(info.value)
        finally:
            await c.close()


def test_without_users_no_credentials_needed() -> None:
    with MongoEmulator() as em, client(uri(em)) as c:
        c.db.items.insert_one({"x": 1})
        assert c.db.items.count_documents({}) == 1


# --- the handshake, step by step --------------------------------------------------------------------------------


def test_hello_names_the_mechanisms_of_a_known_user_only(emulator: MongoEmulator) -> None:
    with client(uri(emulator)) as c:
        assert c.admin.command("hello", saslSupportedMechs="admin.alice")["saslSupportedMechs"] == ["SCRAM-SHA-256"]
        assert "saslSupportedMechs" not in c.admin.command("hello", saslSupportedMechs="admin.mallory")
        assert "saslSupportedMechs" not in c.admin.command("hello", saslSupportedMechs="admin.carol")
        with pytest.raises(OperationFailure) as info:
            c.admin.command("hello", saslSupportedMechs="alice")
        assert info.value.code == 2


def test_speculative_authenticate_in_hello(emulator: MongoEmulator) -> None:
    """mongod answers hello's speculative saslStart with the server-first message; a failed one is left out."""
    scram = ScramClient(["SCRAM-SHA-256"], "alice", PASSWORD)
    first = scram.get_client_first()
    with client(uri(emulator), maxPoolSize=1) as c:
        spec = {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": Binary(first.encode()), "db": "admin",
                "options": {"skipEmptyExchange": True}}  # fmt: skip
        reply = c.admin.command("hello", speculativeAuthenticate=spec)["speculativeAuthenticate"]
        assert reply["conversationId"] == 1 and reply["done"] is False
        scram.set_server_first(reply["payload"].decode())
        final = c.admin.command("saslContinue", conversationId=1, payload=Binary(scram.get_client_final().encode()))
        assert final["done"] is True
        scram.set_server_final(final["payload"].decode())  # the server proved it knows the credential
        assert authenticated(c) == [{"user": "alice", "db": "admin"}]
        unknown = ScramClient(["SCRAM-SHA-256"], "mallory", PASSWORD).get_client_first()
        spec["payload"] = Binary(unknown.encode())
        assert "speculativeAuthenticate" not in c.admin.command("hello", speculativeAuthenticate=spec)
        del spec["db"]  # mongod: no db field, no speculative start
        assert "speculativeAuthenticate" not in c.admin.command("hello", speculativeAuthenticate=spec)


@pytest.mark.parametrize("as_base64", [False, True])
def test_sasl_conversation_with_the_empty_exchange(emulator: MongoEmulator, as_base64: bool) -> None:
    """Without skipEmptyExchange the server proves itself (v=) with done: false, and a third, empty, step ends it;
    the state belongs to the connection: another connection stays unauthenticated."""
    import base64

    def wrap(data: str) -> Any:
        return base64.b64encode(data.encode()).decode() if as_base64 else Binary(data.encode())

    def unwrap(payload: Any) -> str:
        return base64.b64decode(payload).decode() if as_base64 else bytes(payload).decode()

    scram = ScramClient(["SCRAM-SHA-256"], "alice", PASSWORD)
    with client(uri(emulator), maxPoolSize=1) as c, client(uri(emulator)) as other:
        start = c.admin.command("saslStart", mechanism="SCRAM-SHA-256", payload=wrap(scram.get_client_first()))
        assert start["conversationId"] == 1 and start["done"] is False
        assert isinstance(start["payload"], str) == as_base64
        server_first = unwrap(start["payload"])
        fields = dict(part.split("=", 1) for part in server_first.split(","))
        assert int(fields["i"]) == ITERATIONS and len(base64.b64decode(fields["s"])) == SALT_BYTES
        scram.set_server_first(server_first)
        step2 = c.admin.command("saslContinue", conversationId=1, payload=wrap(scram.get_client_final()))
        assert step2["done"] is False
        scram.set_server_final(unwrap(step2["payload"]))
        with pytest.raises(OperationFailure) as info:  # not yet: the conversation is not done
            c.auth_db.items.find_one()
        assert info.value.code == 13
        step3 = c.admin.command("saslContinue", conversationId=1, payload=wrap(""))
        assert step3["done"] is True and unwrap(step3["payload"]) == ""
        assert c.auth_db.items.find_one() is None
        with pytest.raises(OperationFailure) as info:
            other.auth_db.items.find_one()
        assert info.value.code == 13


def test_sasl_protocol_errors(emulator: MongoEmulator) -> None:
    with client(uri(emulator), maxPoolSize=1) as c:
        with pytest.raises(OperationFailure) as info:
            c.admin.command("saslContinue", conversationId=1, payload=Binary(b""))
        assert info.value.code == 17 and "No SASL session state found" in str(info.value)
        with pytest.raises(OperationFailure) as info:
            c.admin.command("saslStart", mechanism="PLAIN", payload=Binary(b"\x00alice\x00pw"))
        assert info.value.code == 2 and "Unsupported mechanism 'PLAIN'" in str(info.value)
        first = ScramClient(["SCRAM-SHA-256"], "alice", PASSWORD).get_client_first()
        c.admin.command("saslStart", mechanism="SCRAM-SHA-256", payload=Binary(first.encode()))
        with pytest.raises(OperationFailure) as info:
            c.admin.command("saslContinue", conversationId=2, payload=Binary(b""))
        assert info.value.code == 17 and "Mismatched conversation id" in str(info.value)
        with pytest.raises(OperationFailure) as info:  # a malformed client-final message: a failed authentication
            c.admin.command("saslContinue", conversationId=1, payload=Binary(b"garbage"))
        assert info.value.code == 18


# --- the users file, the command line ----------------------------------------------------------------------------


def test_users_keep_no_password(tmp_path: Path) -> None:
    users = Users.load(write_users(tmp_path, [{"user": "alice", "password": PASSWORD}]))
    cred = users.credential("admin", "alice")
    assert cred is not None and cred.iterations == ITERATIONS and len(cred.salt) == SALT_BYTES
    assert PASSWORD.encode() not in repr(vars(users)).encode() and PASSWORD not in repr(cred)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"user": "a"}], "password"),
        ([{"user": "a", "password": "p", "roles": ["readWrite"]}], "emulator limitation"),
        ([{"user": "a", "password": "p", "pwd": "p"}], "unknown field"),
        ([{"user": "a", "password": "p"}, {"user": "a", "password": "q"}], "defined twice"),
        ({"user": "a", "password": "p"}, "JSON list"),
    ],
)
def test_bad_users_files_are_refused(tmp_path: Path, entries: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MongoEmulator(users=write_users(tmp_path, entries))


@pytest.mark.parametrize("users", [{"user": "a", "password": "p"}, ["alice"]])
def test_bad_users_in_python_are_refused(users: Any) -> None:
    with pytest.raises(ValueError, match="object"):
        MongoEmulator(users=users)


def test_users_file_must_be_owner_only(tmp_path: Path) -> None:
    path = write_users(tmp_path, [{"user": "a", "password": "p"}])
    path.chmod(0o644)
    with pytest.raises(ValueError, match="too open"):
        MongoEmulator(users=path)


def test_command_line_users(tmp_path: Path) -> None:
    path = write_users(tmp_path, [{"user": "alice", "password": PASSWORD}])
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaf_mongo.testing", "--port", "0", "--users", str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        address = f"127.0.0.1:{port}"
        with client(f"mongodb://alice:{quote(PASSWORD)}@{address}/?directConnection=true") as c:
            assert c.db.items.count_documents({}) == 0
        with client(f"mongodb://{address}/?directConnection=true") as c, pytest.raises(OperationFailure) as info:
            c.db.items.count_documents({})
        assert info.value.code == 13
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


def test_user_management_and_other_mechanisms_are_refused_clearly(emulator: MongoEmulator) -> None:
    with client(uri(emulator)) as anonymous, pytest.raises(OperationFailure) as info:
        anonymous.admin.command("createUser", "bob", pwd="x", roles=[])
    assert info.value.code == 13 and "Command createUser requires authentication" in str(info.value)
    with client(uri(emulator, "alice", PASSWORD)) as c:
        for command in ({"createUser": "bob", "pwd": "x", "roles": []}, {"usersInfo": 1}, {"dropUser": "alice"}):
            with pytest.raises(OperationFailure) as info:
                c.admin.command(command)
            assert info.value.code == 238 and "emulator limitation" in str(info.value)
    with client(uri(emulator)) as anonymous, pytest.raises(OperationFailure) as info:
        anonymous["$external"].command("authenticate", 1, mechanism="MONGODB-X509")
    assert info.value.code == 238 and "emulator limitation" in str(info.value)


def test_pymongo_authenticates_speculatively() -> None:
    """pymongo's own handshake: the saslStart rides in the connection's first hello, mongod-style, so one
    saslContinue (skipEmptyExchange) finishes it and no separate saslStart is sent."""
    names: list[str] = []
    with MongoEmulator(users=[{"user": "alice", "password": PASSWORD}]) as em:
        execute = em.backend.execute

        def spy(db: str, cmd: dict[str, Any], *args: Any) -> dict[str, Any]:
            names.append(next(iter(cmd)) + ("+speculative" if "speculativeAuthenticate" in cmd else ""))
            return execute(db, cmd, *args)

        em._server._handler = spy
        with client(uri(em, "alice", PASSWORD)) as c:
            c.db.items.insert_one({"x": 1})
    auth = [n for n in names if n.endswith("+speculative") or n.startswith("sasl")]
    assert auth in (["ismaster+speculative", "saslContinue"], ["hello+speculative", "saslContinue"]), names


def test_command_line_refuses_a_bad_users_file(tmp_path: Path) -> None:
    path = write_users(tmp_path, [{"user": "alice", "password": PASSWORD}])
    path.chmod(0o640)
    done = subprocess.run(
        [sys.executable, "-m", "leaf_mongo.testing", "--port", "0", "--users", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "too open" in done.stderr and PASSWORD not in done.stderr + done.stdout


def test_build_info_before_authentication_on_an_older_server() -> None:
    """SERVER-90284 (8.1): buildInfo needs authentication by default; an 8.0 server ran it before authentication."""
    users = [{"user": "alice", "password": PASSWORD}]
    with MongoEmulator(users=users, server_version="8.0.4") as em, client(uri(em)) as c:
        assert c.admin.command("buildInfo")["version"] == "8.0.4"


def sasl_login(c: MongoClient[dict[str, Any]], user: str, password: str, db: str = "admin") -> dict[str, Any]:
    """One SCRAM-SHA-256 conversation by hand on the client's (single) connection; the last reply."""
    scram = ScramClient(["SCRAM-SHA-256"], user, password)
    start = c[db].command(
        "saslStart",
        mechanism="SCRAM-SHA-256",
        payload=Binary(scram.get_client_first().encode()),
        options={"skipEmptyExchange": True},
    )
    scram.set_server_first(bytes(start["payload"]).decode())
    return c[db].command("saslContinue", conversationId=1, payload=Binary(scram.get_client_final().encode()))


def test_a_connection_authenticates_once(emulator: MongoEmulator) -> None:
    """mongod's addAndAuthorizeUser: the same user again is fine; another user is refused (its assertion codes)."""
    with client(uri(emulator, "alice", PASSWORD), maxPoolSize=1) as c:
        c.admin.command("ping")
        assert sasl_login(c, "alice", PASSWORD)["done"] is True
        with pytest.raises(OperationFailure) as info:
            sasl_login(c, "carol", "other", db="app")
        assert info.value.code == 5626701 and "Previously authenticated as: alice@admin" in str(info.value)
        with pytest.raises(OperationFailure) as info:
            sasl_login(c, "IX", "IX")
        assert info.value.code == 5626702 and "Already authenticated as: alice@admin" in str(info.value)
        assert authenticated(c) == [{"user": "alice", "db": "admin"}]
