"""The server process of a data folder (``python -m leaf_mongo.local serve PATH``), in the foreground."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

from leaf_mongo._version import __version__
from leaf_mongo.errors import LeafMongoError
from leaf_mongo.local.files import ServerState, prepare_folder, remove_state, take_serve_lock, write_state
from leaf_mongo.local.peers import same_user
from leaf_mongo.testing.durable import FORMAT_VERSION
from leaf_mongo.testing.emulator import MongoEmulator, stop_on_signals

HOST = "127.0.0.1"


def serve(
    folder: Path, port: int = 0, prefer_port: int = 0, users: Path | None = None, test_commands: bool = False
) -> int:
    """Load the folder, listen on 127.0.0.1, write ``server.json``, serve until SIGTERM/SIGINT; the exit code.

    Holds ``serve.lock`` for its whole life, so a second server on the same folder exits at once (code 1).
    On SIGTERM the commands in flight finish, the store checkpoints its WAL, and ``server.json`` is removed.
    ``users`` (the emulator's owner-only JSON users file) turns SCRAM-SHA-256 authentication on, on top of the
    owner-only admission; ``test_commands`` enables ``configureFailPoint`` (mongod's ``enableTestCommands``).
    """
    os.umask(0o077)
    folder = prepare_folder(folder)
    lock = take_serve_lock(folder)
    if lock is None:
        print(f"leaf-mongo local: another process already serves {folder}", file=sys.stderr, flush=True)
        return 1
    stop = stop_on_signals()
    try:
        return _run(folder, port or _free(prefer_port), stop, users, test_commands)
    finally:
        os.close(lock)


def _run(folder: Path, port: int, stop: threading.Event, users: Path | None, test_commands: bool) -> int:
    started = time.monotonic()
    users = users.expanduser().resolve() if users is not None else None
    try:
        emulator = MongoEmulator(
            host=HOST,
            port=port,
            index_build_delay=0.0,
            data_path=folder,
            admit=same_user,
            users=users,
            test_commands=test_commands,
        )
    except LeafMongoError as exc:
        print(f"leaf-mongo local: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except (OSError, ValueError) as exc:  # the users file: missing, too open, malformed
        print(f"leaf-mongo local: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        emulator.start()
    except OSError as exc:
        emulator.stop()
        print(f"leaf-mongo local: cannot listen on {HOST}:{port}: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        users_file = str(users) if users is not None else None
        write_state(
            folder, ServerState(os.getpid(), emulator.port, __version__, FORMAT_VERSION, users_file, test_commands)
        )
        print(
            f"leaf-mongo local store {folder} listening on {emulator.uri} "
            f"(pid {os.getpid()}, loaded in {time.monotonic() - started:.2f} s)",
            flush=True,
        )
        while not stop.wait(0.2):
            pass
    finally:
        emulator.stop()
        remove_state(folder, os.getpid())
    print(f"leaf-mongo local store {folder} stopped", flush=True)
    return 0


def _free(preferred: int) -> int:
    """``preferred`` if it can be bound now (clients that knew the old port keep working), else 0 (any)."""
    if not preferred:
        return 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, preferred))
        except OSError:
            return 0
    return preferred
