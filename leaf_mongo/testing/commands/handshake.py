"""Handshake and server-information commands, and the replica-set face of the emulator.

A mongot deployment is always a replica set (mongot follows the oplog through a
change stream), so the emulator presents itself as the primary of a single-node
replica set: ``hello`` carries ``setName``/``hosts``/``primary``/``me`` and every
reply carries ``operationTime`` and ``$clusterTime`` (gossiped by drivers, read
by clients such as langchain-mongodb's record manager). ``hosts`` names the
address the client actually reached, so plain URIs discover the same server and
``directConnection=true`` URIs keep working.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import threading
import time
from typing import Any

from bson import Int64, ObjectId, Timestamp

from leaf_mongo.testing.state import MAX_BSON_SIZE, SERVER_VERSION, BackendState, version_tuple

MAX_WIRE_VERSION = 25  # MongoDB 8.2
MAX_MESSAGE_SIZE = 48_000_000
REPLICA_SET = "rs0"  # the name docker-compose.yml gives the real deployment
DEFAULT_ADDRESS = "127.0.0.1:27017"
_ZERO_SIGNATURE = {"hash": b"\x00" * 20, "keyId": Int64(0)}  # what an unauthenticated mongod sends


class HandshakeCommands(BackendState):
    """hello/isMaster, buildInfo, serverStatus, hostInfo, ping; the logical clock on every reply."""

    def __init__(self, index_build_delay: float = 0.0, server_version: str = SERVER_VERSION) -> None:
        super().__init__(index_build_delay, server_version)
        self._election_id = ObjectId()
        self._started = time.monotonic()
        self._clock_seconds = 0
        self._clock_increment = 0
        self._clock_lock = threading.Lock()  # handshake commands stamp their replies outside the backend lock
        self._per_connection = threading.local()  # one thread per connection (wire.py)

    @property
    def _client_address(self) -> str:
        """Address the current command's connection reached (set by ``execute``)."""
        return str(getattr(self._per_connection, "address", DEFAULT_ADDRESS))

    @_client_address.setter
    def _client_address(self, address: str) -> None:
        self._per_connection.address = address

    def _tick(self) -> Timestamp:
        """Next cluster time: wall-clock seconds plus an increment, strictly increasing."""
        with self._clock_lock:
            now = int(time.time())
            if now > self._clock_seconds:
                self._clock_seconds, self._clock_increment = now, 1
            else:
                self._clock_increment += 1
            return Timestamp(self._clock_seconds, self._clock_increment)

    def _stamp(self, reply: dict[str, Any]) -> dict[str, Any]:
        """Add ``operationTime`` and ``$clusterTime``, as a replica-set member does on every reply."""
        ts = self._tick()
        reply["operationTime"] = ts
        reply["$clusterTime"] = {"clusterTime": ts, "signature": dict(_ZERO_SIGNATURE)}
        return reply

    def _hello(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        # No topologyVersion: drivers would switch to streaming (awaitable) hello, which
        # needs exhaust support. No compression: we do not implement OP_COMPRESSED.
        name = next(iter(cmd))
        client = cmd.get("client")
        if isinstance(client, dict) and isinstance(client.get("application"), dict):
            self._per_connection.app_name = client["application"].get("name")  # failCommand's appName
        me = self._client_address
        now = dt.datetime.now(dt.timezone.utc)
        op_time = {"ts": Timestamp(max(self._clock_seconds, 1), max(self._clock_increment, 1)), "t": Int64(1)}
        reply: dict[str, Any] = {
            "hosts": [me],
            "setName": REPLICA_SET,
            "setVersion": 1,
            "secondary": False,
            "primary": me,
            "me": me,
            "electionId": self._election_id,
            "lastWrite": {
                "opTime": op_time,
                "lastWriteDate": now.replace(microsecond=0),
                "majorityOpTime": op_time,
                "majorityWriteDate": now.replace(microsecond=0),
            },
            "helloOk": True,
            "maxBsonObjectSize": MAX_BSON_SIZE,
            "maxMessageSizeBytes": MAX_MESSAGE_SIZE,
            "maxWriteBatchSize": 100_000,
            "localTime": now,
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": conn,
            "minWireVersion": 0,
            "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False,
        }
        if name == "hello":
            reply["isWritablePrimary"] = True
        else:
            reply["ismaster"] = True
        self._hello_auth(cmd, reply)
        return reply

    def _hello_auth(self, cmd: dict[str, Any], reply: dict[str, Any]) -> None:
        """``saslSupportedMechs``/``speculativeAuthenticate``: :class:`~leaf_mongo.testing.commands.auth.AuthCommands`
        (before this class in the backend's bases) answers them; without it there is nothing to add."""

    def _build_info(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        return {
            "version": self.server_version,
            "versionArray": [*version_tuple(self.server_version), 0],
            "gitVersion": "leaf-mongo-emulator",
            "modules": ["leaf-mongo-emulator"],
            "bits": 64,
            "maxBsonObjectSize": MAX_BSON_SIZE,
            "storageEngines": ["mongomock"],
        }

    def _server_status(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "version": self.server_version,
            "process": "leaf-mongo-emulator",
            "pid": Int64(os.getpid()),
            "uptime": float(int(time.monotonic() - self._started)),
            "uptimeMillis": Int64(int((time.monotonic() - self._started) * 1000)),
            "localTime": dt.datetime.now(dt.timezone.utc),
            "repl": {"setName": REPLICA_SET, "isWritablePrimary": True, "primary": self._client_address},
        }

    def _host_info(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        """The fields of https://www.mongodb.com/docs/manual/reference/command/hostInfo/ that hold here."""
        return {
            "system": {
                "currentTime": dt.datetime.now(dt.timezone.utc),
                "hostname": socket.gethostname(),
                "cpuAddrSize": 64,
                "numCores": os.cpu_count() or 1,
                "cpuArch": platform.machine(),
                "numaEnabled": False,
            },
            "os": {"type": platform.system(), "name": platform.platform(), "version": platform.release()},
            "extra": {"versionString": platform.version()},
        }
