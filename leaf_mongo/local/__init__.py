"""The local store: leaf-mongo's default deployment when no MongoDB server is configured.

A data folder (:func:`default_path`, or any folder) served by one background process per folder, started on
demand by the first caller of :func:`ensure_server` and reused by every later one. The process is the
``leaf_mongo.testing`` engine (MongoDB wire protocol, exact ``$vectorSearch``, tantivy ``$search``) made durable
by :mod:`leaf_mongo.testing.durable`: each acknowledged write is committed to the folder's SQLite file (WAL mode)
before its reply leaves, so a SIGKILL of the client or of the server loses nothing that was acknowledged, and a
restart loads the data and rebuilds the vector and full-text indexes.

It is for one machine: everything is held in memory and searched exactly. Moving to MongoDB 8.2 + mongot or
Atlas is a URI change (``LEAF_MONGO_URI``).

The server listens on 127.0.0.1 (a free port; the previous one when it is free again after a restart) and
serves only connections from its owner's processes (:mod:`leaf_mongo.local.peers`, Linux; elsewhere any local
process). On top of that it can authenticate clients (SCRAM-SHA-256, the emulator's): ``ensure_server(users=FILE)``
(``LEAF_MONGO_LOCAL_USERS``), and leaf-mongo then connects as ``LEAF_MONGO_LOCAL_USERNAME``/``_PASSWORD``.
``ensure_server(test_commands=True)`` (``LEAF_MONGO_LOCAL_TEST_COMMANDS``) enables ``configureFailPoint`` for fault
tests. A running server started with other options is refused, never silently reused.

Files in the folder (0700; files 0600): ``store.sqlite3`` (+ ``-wal``/``-shm``), ``server.json`` (pid, port,
version, users file and test commands of the running server), ``server.log``, ``serve.lock`` (held by the server
for its lifetime: two servers never share a folder), ``ensure.lock`` (held by a caller while it checks for, or
starts, the server).
"""

from __future__ import annotations

from leaf_mongo.local.info import status
from leaf_mongo.local.server import default_path, ensure_server, stop

__all__ = ["default_path", "ensure_server", "status", "stop"]
