"""The local store: one durable server per data folder, found or started, recovered after SIGKILL, stopped.

Real processes, real sockets, real SQLite files, real SIGKILL. Each test uses its own data folder.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bson.binary import Binary, BinaryVectorDtype
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError
from pymongo.operations import SearchIndexModel

from leaf_mongo.errors import StoreFormatError
from leaf_mongo.local import ensure_server, status, stop
from leaf_mongo.local.files import read_state
from leaf_mongo.testing import wait_for_search_index

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def folder(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "store"
    yield path
    stop(path)


def _client(uri: str) -> MongoClient:
    return MongoClient(uri, serverSelectionTimeoutMS=10_000)


def _kill_server(path: Path) -> None:
    state = read_state(path)
    assert state is not None
    os.kill(state.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while status(path)["running"]:  # type: ignore[index]
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_started_once_reused_status_and_stop(folder: Path) -> None:
    uri = ensure_server(folder)
    assert ensure_server(folder) == uri
    client = _client(uri)
    client.app.docs.insert_many([{"_id": i, "text": f"t{i}"} for i in range(5)])
    info = status(folder)
    assert info is not None and info["running"] and info["uri"] == uri and info["pid"] == read_state(folder).pid
    assert info["collections"] == [
        {"database": "app", "name": "docs", "documents": 5, "data_bytes": info["collections"][0]["data_bytes"],
         "search_indexes": []}
    ]  # fmt: skip
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for f in folder.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    client.close()
    assert stop(folder) is True
    assert stop(folder) is False
    after = status(folder)
    assert after is not None and not after["running"] and after["collections"][0]["documents"] == 5


def test_concurrent_callers_get_one_server(folder: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from leaf_mongo.local import ensure_server; "
        "print(ensure_server(Path(sys.argv[1])))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]
    uris = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert len(uris) == 1 and all(p.returncode == 0 for p in procs)
    served = subprocess.run(["pgrep", "-f", f"leaf_mongo.local serve {folder}"], capture_output=True, text=True)
    assert len(served.stdout.split()) == 1


def test_sigkilled_server_is_replaced_and_keeps_acknowledged_writes(folder: Path) -> None:
    client = _client(ensure_server(folder))
    client.app.docs.insert_many([{"_id": i} for i in range(100)])
    client.app.docs.update_one({"_id": 3}, {"$set": {"x": 1}})
    client.app.docs.delete_one({"_id": 4})
    client.close()
    _kill_server(folder)
    assert read_state(folder) is not None  # left behind by the crash: stale
    client = _client(ensure_server(folder))
    docs = client.app.docs
    assert docs.count_documents({}) == 99 and docs.find_one({"_id": 3}) == {"_id": 3, "x": 1}
    assert docs.find_one({"_id": 4}) is None
    client.close()


def test_stale_state_file_of_a_dead_process_is_recovered(folder: Path) -> None:
    folder.mkdir(mode=0o700)
    (folder / "server.json").write_text('{"pid": 999999, "port": 1, "version": "0.0.0", "format": 1}')
    uri = ensure_server(folder)
    assert _client(uri).admin.command("ping")["ok"] == 1


def test_incompatible_store_format_is_one_clear_line(folder: Path) -> None:
    folder.mkdir(mode=0o700)
    with sqlite3.connect(folder / "store.sqlite3") as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('format', '99')")
    with pytest.raises(StoreFormatError) as err:
        ensure_server(folder)
    assert "format 99" in str(err.value) and "\n" not in str(err.value)
    assert not status(folder)["running"]  # type: ignore[index]


def _vector(i: int) -> Binary:
    vec = np.random.default_rng(i).standard_normal(8).astype(np.float32)
    return Binary.from_vector((vec / np.linalg.norm(vec)).tolist(), BinaryVectorDtype.FLOAT32)


def _searches(client: MongoClient) -> tuple[list[object], list[object]]:
    docs = client.app.docs
    vector = list(docs.aggregate([
        {"$vectorSearch": {"index": "vi", "path": "v", "queryVector": _vector(7), "limit": 5, "numCandidates": 50,
                           "filter": {"group": 1}}},
        {"$project": {"_id": 1, "score": {"$meta": "vectorSearchScore"}}},
    ]))  # fmt: skip
    text = list(docs.aggregate([
        {"$search": {"index": "ft", "text": {"query": "river galaxy", "path": "text"}}},
        {"$project": {"_id": 1, "score": {"$meta": "searchScore"}}},
    ]))  # fmt: skip
    return vector, text


@pytest.mark.parametrize("how", ["stop", "sigkill"])
def test_restart_keeps_data_and_indexes_queryable(folder: Path, how: str) -> None:
    client = _client(ensure_server(folder))
    docs = client.app.docs
    words = ["river", "galaxy", "bread", "violin"]
    docs.insert_many([{"_id": f"d{i}", "v": _vector(i), "group": i % 2, "text": f"{words[i % 4]} {words[i % 3]}"}
                      for i in range(200)])  # fmt: skip
    docs.create_index("text_key", unique=True, sparse=True)
    docs.create_search_indexes([
        SearchIndexModel({"fields": [{"type": "vector", "path": "v", "numDimensions": 8, "similarity": "cosine"},
                                     {"type": "filter", "path": "group"}]}, name="vi", type="vectorSearch"),
        SearchIndexModel({"mappings": {"dynamic": False, "fields": {"text": {"type": "string"}}}}, name="ft"),
    ])  # fmt: skip
    wait_for_search_index(docs, "vi", 10)
    wait_for_search_index(docs, "ft", 10)
    docs.update_one({"_id": "d0"}, {"$set": {"text_key": "k"}})
    before = _searches(client)
    assert before[0] and before[1]
    client.close()
    if how == "stop":
        assert stop(folder)
    else:
        _kill_server(folder)
    started = time.monotonic()
    client = _client(ensure_server(folder))
    assert time.monotonic() - started < 30
    assert {i["name"]: i["status"] for i in client.app.docs.list_search_indexes()} == {"vi": "READY", "ft": "READY"}
    assert _searches(client) == before
    with pytest.raises(DuplicateKeyError):
        client.app.docs.insert_one({"_id": "new", "text_key": "k"})
    client.close()


def test_cli_status_and_stop(folder: Path) -> None:
    import json

    from typer.testing import CliRunner

    from leaf_mongo.cli import app

    runner = CliRunner()
    empty = runner.invoke(app, ["local", "status", "--path", str(folder)])
    assert empty.exit_code == 0 and "no local store" in empty.output
    uri = ensure_server(folder)
    _client(uri).app.docs.insert_one({"_id": 1})
    shown = runner.invoke(app, ["local", "status", "--path", str(folder), "--json"])
    info = json.loads(shown.output)
    assert shown.exit_code == 0 and info["uri"] == uri and info["collections"][0]["documents"] == 1
    assert _client(info["uri"]).app.docs.find_one() == {"_id": 1}  # the printed URI is one pymongo connects to
    table = runner.invoke(app, ["local", "status", "--path", str(folder)])
    assert "app.docs" in table.output and uri in table.output
    stopped = runner.invoke(app, ["local", "stop", "--path", str(folder)])
    assert stopped.exit_code == 0 and "stopped" in stopped.output
    assert "no local store server was running" in runner.invoke(app, ["local", "stop", "--path", str(folder)]).output


@pytest.mark.skipif(os.getuid() != 0 or not Path("/proc/net/tcp").exists(), reason="needs root and Linux /proc")
def test_only_the_owners_processes_are_admitted() -> None:
    """No authentication, and 127.0.0.1 is every user's: a connection from another uid is hung up on."""
    import socket

    from leaf_mongo.local.peers import peer_uid, same_user

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    pid = os.fork()
    if pid == 0:  # child: become "nobody", connect, wait to be inspected
        try:
            os.setuid(65534)
            conn = socket.create_connection(listener.getsockname())
            time.sleep(2)
            conn.close()
        finally:
            os._exit(0)
    try:
        other, _ = listener.accept()
        assert peer_uid(other) == 65534 and not same_user(other)
        mine = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        assert same_user(accepted)
        for s in (other, mine, accepted):
            s.close()
    finally:
        os.waitpid(pid, 0)
        listener.close()


def test_a_refused_connection_is_hung_up() -> None:
    from pymongo.errors import PyMongoError

    from leaf_mongo.testing import MongoEmulator

    with MongoEmulator(admit=lambda sock: False) as emu:
        client: MongoClient = MongoClient(emu.uri, serverSelectionTimeoutMS=500)
        with pytest.raises(PyMongoError):
            client.admin.command("ping")
        client.close()
