"""``MongoEmulator``: a MongoDB 8.2 + mongot look-alike listening on a real TCP port.

It exists so the package can be exercised end to end through pymongo (sync and
``AsyncMongoClient``) and Motor without a MongoDB server, which cannot be
installed in this project's CI. It is an emulator for tests and offline
walkthroughs, not a database: data lives in memory only, there is no
authentication, no transactions, no replication and no durability, and
``$vectorSearch`` is an exact brute-force search where a real HNSW index would
return approximate neighbours.
"""

from __future__ import annotations

from types import TracebackType

from leaf_mongo.testing.backend import Backend
from leaf_mongo.testing.wire import WireServer


class MongoEmulator:
    """Start/stop wrapper around the wire server and its in-memory backend.

    ``index_build_delay`` is how long a search index stays PENDING/BUILDING before
    READY (and how long an update stays BUILDING); a small non-zero value keeps
    client code honest about waiting, like mongot's asynchronous builds. ``server_version``
    (default 8.2.0) makes it answer as an older server would, refusing the stages that server
    lacks (``$rankFusion`` before 8.1, ``$scoreFusion`` before 8.2).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        index_build_delay: float = 0.0,
        server_version: str | None = None,
    ) -> None:
        self.backend = (
            Backend(index_build_delay=index_build_delay, server_version=server_version)
            if server_version
            else Backend(index_build_delay=index_build_delay)
        )
        self._server = WireServer(self.backend.execute, host=host, port=port)
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
        """Hang up all clients and join every emulator thread."""
        if self._running:
            self._server.stop()
            self._running = False

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
