"""The data folder's files: owner-only permissions, the state file a running server writes, and its locks."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from leaf_mongo.errors import LocalStoreError

STATE = "server.json"
LOG = "server.log"
SERVE_LOCK = "serve.lock"
ENSURE_LOCK = "ensure.lock"
LOG_KEEP_BYTES = 1_000_000


@dataclass(frozen=True)
class ServerState:
    """What a running server says about itself (``server.json``)."""

    pid: int
    port: int
    version: str
    format: int
    users: str | None = None  # the users file it authenticates against (absolute), None: no authentication
    test_commands: bool = False  # started with test commands (configureFailPoint), for fault tests

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"


def prepare_folder(folder: Path) -> Path:
    """Create the folder owner-only (0700), or check an existing one is a folder we can write."""
    folder = folder.expanduser().resolve()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    except OSError as exc:
        raise LocalStoreError(f"cannot use {folder} as the local store's data folder: {exc.strerror}") from None
    return folder


def read_state(folder: Path) -> ServerState | None:
    try:
        data = json.loads((folder / STATE).read_text())
        users = data.get("users")
        return ServerState(
            int(data["pid"]),
            int(data["port"]),
            str(data["version"]),
            int(data["format"]),
            str(users) if users is not None else None,
            bool(data.get("test_commands", False)),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_state(folder: Path, state: ServerState) -> None:
    """Atomically (write, then rename), owner-only."""
    tmp = folder / f".{STATE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(state), fh)
    os.replace(tmp, folder / STATE)


def remove_state(folder: Path, pid: int | None = None) -> None:
    """Remove the state file (only if it names ``pid``, when given)."""
    state = read_state(folder)
    if pid is None or (state is not None and state.pid == pid):
        with contextlib.suppress(FileNotFoundError):
            (folder / STATE).unlink()


def open_owner_only(path: Path, flags: int) -> int:
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (blocking); the kernel drops it if the holder dies."""
    fd = open_owner_only(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def take_serve_lock(folder: Path) -> int | None:
    """The server's lifetime lock: its file descriptor, or None when another process serves the folder."""
    fd = open_owner_only(folder / SERVE_LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_served(folder: Path) -> bool:
    """Whether a live process holds the folder's serve lock (a crashed server's lock is gone with it)."""
    fd = take_serve_lock(folder)
    if fd is None:
        return True
    os.close(fd)
    return False


def open_log(folder: Path) -> int:
    """The server log for appending; a log past ~1 MB starts afresh."""
    path = folder / LOG
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > LOG_KEEP_BYTES:
            path.unlink()
    return open_owner_only(path, os.O_WRONLY | os.O_APPEND)


def log_tail(folder: Path, lines: int = 8) -> str:
    try:
        text = (folder / LOG).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
