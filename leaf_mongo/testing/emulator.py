"""``MongoEmulator``: a MongoDB 8.2 + mongot look-alike listening on a real TCP port.

It exists so the package can be exercised end to end through pymongo (sync and
``AsyncMongoClient``) and Motor without a MongoDB server, which cannot be
installed in this project's CI. It is an emulator for tests and offline
walkthroughs, not a database: data lives in memory only (unless a data folder is
given: then every acknowledged write is also committed to SQLite, see
:mod:`leaf_mongo.testing.durable`), authentication is SCRAM-SHA-256 only (users given at start, every
authenticated user may run every command: no roles), there are no transactions,
no replication, and ``$vectorSearch`` is an exact brute-force search where a real
HNSW index would return approximate neighbours.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType

from leaf_mongo.testing.backend import Backend
from leaf_mongo.testing.durable import DurableStore
from leaf_mongo.testing.embedding import EmbeddingClient, EmbeddingConfig
from leaf_mongo.testing.users import Users, UserSource
from leaf_mongo.testing.wire import Admit, WireServer


class MongoEmulator:
    """Start/stop wrapper around the wire server and its in-memory backend.

    ``index_build_delay`` is how long a search index stays PENDING/BUILDING before
    READY (and how long an update stays BUILDING); a small non-zero value keeps
    client code honest about waiting, like mongot's asynchronous builds. ``server_version``
    (default 8.2.0) makes it answer as an older server would, refusing the stages that server
    lacks (``$rankFusion`` before 8.1, ``$scoreFusion`` before 8.2). ``data_path`` (a folder) makes it durable:
    what the folder holds is loaded at construction, every acknowledged write is committed there, and
    :meth:`stop` closes the store; without it nothing touches the disk. ``admit(socket)``, if given, decides
    whether a new connection is served (the local store admits only its owner's processes). ``embedding`` (mongot's
    ``embedding:`` config: provider endpoint and key files) enables ``autoEmbed`` indexes; without it they are
    refused, as by a mongot with no embedding config. ``test_commands=True`` is mongod's ``--setParameter
    enableTestCommands=1``: ``configureFailPoint`` with the ``failCommand`` fail point (off by default).
    ``users`` (a JSON file's path, or its entries: ``[{"user", "password", "db"}]``, see
    :mod:`leaf_mongo.testing.users`) turns authentication on, as mongod's ``--auth`` with those users: clients
    authenticate with SCRAM-SHA-256 and every other command needs it. Without users, credentials are refused.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        index_build_delay: float = 0.0,
        server_version: str | None = None,
        data_path: str | Path | None = None,
        admit: Admit | None = None,
        embedding: EmbeddingConfig | None = None,
        test_commands: bool = False,
        users: UserSource | None = None,
    ) -> None:
        client = EmbeddingClient(embedding) if embedding is not None else None  # key files checked now, as mongot
        loaded = Users.load(users) if users is not None else None  # before the store opens: a bad file opens nothing
        storage = DurableStore(Path(data_path)) if data_path is not None else None
        options = {"storage": storage, "embedding": client, "test_commands": test_commands, "users": loaded}
        self.backend = (
            Backend(index_build_delay, server_version=server_version, **options)  # type: ignore[arg-type]
            if server_version
            else Backend(index_build_delay=index_build_delay, **options)  # type: ignore[arg-type]
        )
        self._server = WireServer(self.backend.execute, host=host, port=port, admit=admit)
        self._host = host
        self._running = False

    @property
    def index_build_delay(self) -> float:
        return self.backend.index_build_delay

    @index_build_delay.setter
    def index_build_delay(self, seconds: float) -> None:
        self.backend.index_build_delay = seconds

    def start(self) -> MongoEmulator:
        """Bind the port and start serving (idempotent)."""
        if not self._running:
            self._server.run()
            self._running = True
        return self

    def stop(self) -> None:
        """Hang up all clients, join every emulator thread, and close the durable store if there is one."""
        if self._running:
            self._server.stop()
            self._running = False
        self.backend.close()

    def reset(self) -> None:
        """Drop all databases, cursors and search indexes (between tests)."""
        self.backend.reset()

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return int(self._server.port)

    @property
    def uri(self) -> str:
        """Connection string; ``directConnection`` skips replica-set discovery."""
        return f"mongodb://{self._host}:{self.port}/?directConnection=true"

    def __enter__(self) -> MongoEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM: a foreground server (the emulator's, the local store's) waits on it and
    then shuts down in order instead of dying mid-command."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    return stop
