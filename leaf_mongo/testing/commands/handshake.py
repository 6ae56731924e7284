"""Handshake and server-information commands: hello/isMaster, buildInfo, serverStatus."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from leaf_mongo.testing.state import MAX_BSON_SIZE, BackendState

SERVER_VERSION = "8.2.0"
MAX_WIRE_VERSION = 25  # MongoDB 8.2
MAX_MESSAGE_SIZE = 48_000_000


class HandshakeCommands(BackendState):
    def _hello(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        # No topologyVersion: drivers would switch to streaming (awaitable) hello, which
        # needs exhaust support. No compression: we do not implement OP_COMPRESSED.
        name = next(iter(cmd))
        reply: dict[str, Any] = {
            "helloOk": True,
            "maxBsonObjectSize": MAX_BSON_SIZE,
            "maxMessageSizeBytes": MAX_MESSAGE_SIZE,
            "maxWriteBatchSize": 100_000,
            "localTime": dt.datetime.now(dt.timezone.utc),
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
        return reply

    def _build_info(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        return {
            "version": SERVER_VERSION,
            "versionArray": [8, 2, 0, 0],
            "gitVersion": "leaf-mongo-emulator",
            "modules": ["leaf-mongo-emulator"],
            "bits": 64,
            "maxBsonObjectSize": MAX_BSON_SIZE,
            "storageEngines": ["mongomock"],
        }

    def _server_status(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        return {"version": SERVER_VERSION, "process": "leaf-mongo-emulator", "uptime": time.monotonic()}
