"""One server per data folder: found and reused, or started detached; recovered after a crash; stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from leaf_mongo.errors import LocalStoreError
from leaf_mongo.local.files import (
    ENSURE_LOCK,
    ServerState,
    held,
    is_served,
    log_tail,
    open_log,
    prepare_folder,
    read_state,
    remove_state,
)
from leaf_mongo.testing.durable import check_format

START_TIMEOUT = 120.0  # loading a large store (100k chunks) takes seconds, not minutes
PING_TIMEOUT_MS = 2_000


def default_path() -> Path:
    """The per-user data folder: the platform's user data dir for ``leaf-mongo``, then ``store``."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("leaf-mongo", appauthor=False)) / "store"


def ensure_server(
    path: Path | None = None, timeout: float = START_TIMEOUT, users: Path | None = None, test_commands: bool = False
) -> str:
    """The ``mongodb://`` URI of the folder's server, started (detached) if none runs.

    Callers serialize on ``ensure.lock``, so two processes calling at once end with one server; a state file
    left by a crash (its process gone, or not answering) is replaced. Raises :class:`StoreFormatError` for a
    folder of another store format and :class:`LocalStoreError` (with the log's last lines) when the server
    does not come up within ``timeout`` seconds. ``users`` (an owner-only JSON users file) starts the server with
    SCRAM-SHA-256 authentication, ``test_commands`` with ``configureFailPoint``; a running server started
    otherwise is never silently reused: that is a :class:`LocalStoreError` saying how it runs.
    """
    folder = prepare_folder(path or default_path())
    check_format(folder)
    users_file = str(users.expanduser().resolve()) if users is not None else None
    with held(folder / ENSURE_LOCK):
        state = read_state(folder)
        if is_served(folder):
            uri = _wait_ready(folder, None, timeout)  # running, or being started by hand: wait for it to answer
            _check_same_options(folder, read_state(folder), users_file, test_commands)
            return uri
        if state is not None:
            remove_state(folder)  # its server died: stale
        proc = _spawn(folder, state.port if state else 0, users_file, test_commands)
        return _wait_ready(folder, proc, timeout)


def _check_same_options(folder: Path, state: ServerState | None, users: str | None, test_commands: bool) -> None:
    if state is None or (state.users, state.test_commands) == (users, test_commands):
        return
    runs = f"with the users of {state.users}" if state.users else "without users (no authentication)"
    runs += ", with test commands" if state.test_commands else ""
    wanted = f"with the users of {users}" if users else "without users"
    wanted += ", with test commands" if test_commands else ""
    raise LocalStoreError(
        f"the local store server for {folder} runs {runs}, but this run wants it {wanted}: stop it first "
        "(`leaf-mongo local stop`), and the next run starts it as configured"
    )


def stop(path: Path | None = None, timeout: float = 10.0) -> bool:
    """Stop the folder's server gracefully (it finishes the command in flight, checkpoints, exits).

    True when a server was stopped, False when none was running.
    """
    folder = (path or default_path()).expanduser().resolve()
    if not folder.is_dir() or not is_served(folder):
        if folder.is_dir():
            remove_state(folder)
        return False
    state = read_state(folder)
    if state is None:
        raise LocalStoreError(f"a process serves {folder} but wrote no server.json yet; try again in a moment")
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_served(folder):
        if time.monotonic() > deadline:
            raise LocalStoreError(f"the local store server (pid {state.pid}) did not stop within {timeout:g} s")
        time.sleep(0.05)
    return True


def answers(state: ServerState) -> bool:
    """Whether the server named by ``state`` answers on its port, as that process (its pid)."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient = MongoClient(
        state.uri, serverSelectionTimeoutMS=PING_TIMEOUT_MS, connectTimeoutMS=PING_TIMEOUT_MS
    )
    try:
        if state.users is not None:  # before authentication only the handshake runs: a hello proves it listens
            return bool(client.admin.command("hello").get("isWritablePrimary"))
        return int(client.admin.command("serverStatus").get("pid", -1)) == state.pid
    except PyMongoError:
        return False
    finally:
        client.close()


def _spawn(folder: Path, prefer_port: int, users: str | None, test_commands: bool) -> subprocess.Popen[bytes]:
    """``python -m leaf_mongo.local serve FOLDER`` in a session of its own, logging to the folder."""
    root = str(Path(__file__).resolve().parents[2])  # the folder holding leaf_mongo/: the server runs this same code
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    log = open_log(folder)
    try:
        cmd = [sys.executable, "-m", "leaf_mongo.local", "serve", str(folder), "--prefer-port", str(prefer_port)]
        cmd += ["--users", users] if users else []
        cmd += ["--enable-test-commands"] if test_commands else []
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True, env=env
        )
    finally:
        os.close(log)


def _wait_ready(folder: Path, proc: subprocess.Popen[bytes] | None, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LocalStoreError(
                f"the local store server for {folder} exited with code {proc.returncode}:\n{log_tail(folder)}"
            )
        if proc is None and not is_served(folder):
            raise LocalStoreError(f"the local store server for {folder} stopped while starting:\n{log_tail(folder)}")
        state = read_state(folder)
        if state is not None and (proc is None or state.pid == proc.pid) and answers(state):
            return state.uri
        time.sleep(0.1)
    raise LocalStoreError(
        f"the local store server for {folder} did not answer within {timeout:g} s:\n{log_tail(folder)}"
    )
