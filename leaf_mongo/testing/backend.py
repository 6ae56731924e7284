"""Command execution for the emulator: mongomock storage + hand-written search engines.

The wire layer (:mod:`leaf_mongo.testing.wire`) hands every decoded command
document to :meth:`Backend.execute`, which finds its handler in one table and
turns every failure into a server-shaped error reply. Where each behaviour lives:

* :mod:`~leaf_mongo.testing.state`: shared state, cursors, vector bookkeeping;
* :mod:`~leaf_mongo.testing.commands`: handshake, writes, reads, catalog
  (collections, databases, indexes), search-index commands, aggregate;
* :mod:`~leaf_mongo.testing.aggregation`: the aggregation stages the emulator runs
  itself (stage name -> handler) and the rewrites for mongomock;
* :mod:`~leaf_mongo.testing.vector_search`: the ``$vectorSearch`` engine;
* :mod:`~leaf_mongo.testing.search_stage`: the ``$search`` stage (its operators and index beside it);
* :mod:`~leaf_mongo.testing.fusion`: ``$rankFusion`` and ``$scoreFusion``.

The folder's README has the whole module map.
"""

from __future__ import annotations

import copy
import datetime as dt
import sqlite3
from collections.abc import Callable
from typing import Any

import mongomock

from leaf_mongo.testing.commands.aggregate import AggregateCommands
from leaf_mongo.testing.commands.auth import USER_ADMIN, AuthCommands
from leaf_mongo.testing.commands.catalog import CatalogCommands
from leaf_mongo.testing.commands.client_bulk import ClientBulkWriteCommands
from leaf_mongo.testing.commands.handshake import HandshakeCommands
from leaf_mongo.testing.commands.parameters import ParameterCommands
from leaf_mongo.testing.commands.reads import ReadCommands
from leaf_mongo.testing.commands.search_indexes import SearchIndexCommands
from leaf_mongo.testing.commands.writes import WriteCommands
from leaf_mongo.testing.docs import store_key, stored_documents
from leaf_mongo.testing.durable import DurableStore, StoredCollection
from leaf_mongo.testing.embedding import EmbeddingClient
from leaf_mongo.testing.errors import (
    BAD_VALUE,
    COMMAND_NOT_FOUND,
    DUPLICATE_KEY,
    INTERNAL_ERROR,
    NOT_A_RETRYABLE_WRITE_COMMAND,
    CloseConnection,
    CommandError,
    not_implemented,
)
from leaf_mongo.testing.failpoints import FailCommand, PrimaryTransactionalWrite
from leaf_mongo.testing.search_index import SearchIndex, normalize
from leaf_mongo.testing.state import SERVER_VERSION, _dup_msg
from leaf_mongo.testing.time_limit import command_deadline, exceeded, expired, is_read
from leaf_mongo.testing.users import Users

RETRYABLE_WRITES = frozenset({"insert", "update", "delete", "findandmodify", "bulkwrite"})
# Commands that read no data: answered at once, never behind a long command (a driver's heartbeat is a hello, and
# pymongo cancels the operations of a server whose heartbeat times out).
LOCK_FREE = frozenset({"hello", "ismaster", "ping", "buildinfo", "hostinfo", "serverstatus", "getparameter",
                       "connectionstatus", "whatsmyuri", "endsessions", "killallsessions",
                       "getcmdlineopts", "configurefailpoint", "saslstart", "saslcontinue"})  # fmt: skip
MAX_RETRY_REPLIES = 10_000
Handler = Callable[[str, dict[str, Any], int], dict[str, Any]]


class Backend(
    AuthCommands,  # before HandshakeCommands: its _hello_auth adds the authentication fields to hello
    HandshakeCommands,
    ParameterCommands,
    WriteCommands,
    ClientBulkWriteCommands,
    ReadCommands,
    CatalogCommands,
    SearchIndexCommands,
    AggregateCommands,
):
    """All emulator state and the command handlers (see module docstring)."""

    def __init__(
        self,
        index_build_delay: float = 0.0,
        server_version: str = SERVER_VERSION,
        storage: DurableStore | None = None,
        embedding: EmbeddingClient | None = None,
        test_commands: bool = False,
        users: Users | None = None,
    ) -> None:
        super().__init__(index_build_delay, server_version)
        self.users = users  # SCRAM-SHA-256 users: with any, commands need an authenticated connection
        self.embedding = embedding
        self.test_commands = test_commands  # mongod's --setParameter enableTestCommands=1
        self.fail_command = FailCommand()
        self.primary_write = PrimaryTransactionalWrite()
        self._retry_replies: dict[str, dict[str, Any]] = {}  # "lsid|txnNumber|command" -> the first reply
        self._handlers: dict[str, Handler] = {
            "hello": self._hello,
            "ismaster": self._hello,
            "ping": lambda db, cmd, conn: {},
            "hostinfo": self._host_info,
            "buildinfo": self._build_info,
            "endsessions": lambda db, cmd, conn: {},
            "killallsessions": lambda db, cmd, conn: {},
            "getparameter": self._get_parameter,
            "getcmdlineopts": self._get_cmd_line_opts,
            "serverstatus": self._server_status,
            "connectionstatus": self._connection_status,
            "saslstart": self._sasl_start,
            "saslcontinue": self._sasl_continue,
            "whatsmyuri": lambda db, cmd, conn: {"you": "127.0.0.1:0"},
            "insert": self._insert,
            "update": self._update,
            "delete": self._delete,
            "findandmodify": self._find_and_modify,
            "find": self._find,
            "getmore": self._get_more,
            "killcursors": self._kill_cursors,
            "aggregate": self._aggregate,
            "explain": self._explain,
            "count": self._count,
            "distinct": self._distinct,
            "create": self._create,
            "drop": self._drop,
            "listcollections": self._list_collections,
            "dropdatabase": self._drop_database,
            "listdatabases": self._list_databases,
            "createindexes": self._create_indexes,
            "listindexes": self._list_indexes,
            "dropindexes": self._drop_indexes,
            "deleteindexes": self._drop_indexes,
            "createsearchindexes": self._create_search_indexes,
            "updatesearchindex": self._update_search_index,
            "dropsearchindex": self._drop_search_index,
            "bulkwrite": self._client_bulk_write,
        }
        self._handlers.update(dict.fromkeys(USER_ADMIN, self._user_admin), authenticate=self._authenticate_command)
        if test_commands:
            self._handlers["configurefailpoint"] = self._configure_fail_point
        if storage is not None:
            for stored in storage.load():
                self._restore(stored)
            self._retry_replies.update(storage.load_retries(MAX_RETRY_REPLIES))
            self._storage = storage

    def reset(self) -> None:
        """Forget every database, cursor, search index and remembered retryable-write reply."""
        with self._lock:
            super().reset()
            self._retry_replies.clear()
            if self._storage is not None:
                self._storage.commit()

    def close(self) -> None:
        """Close the durable store, if any, once the command in flight is done (its WAL folded into the file)."""
        with self._lock:
            if self._storage is not None:
                self._storage.close()
                self._storage = None

    def execute(
        self, db: str, cmd: dict[str, Any], connection_id: int = 0, client_address: str | None = None
    ) -> dict[str, Any]:
        """Run one command; always returns a reply document (errors included).

        ``client_address`` is the ``host:port`` the client's connection reached; ``hello``
        advertises it as the replica set's only member.
        """
        if client_address:
            self._client_address = client_address  # per thread: each connection has its own
        name = next(iter(cmd), None)
        if isinstance(name, str):  # as mongod: an unknown command is "no such command" even before authentication
            refused = self._refuse_unauthenticated(name, name.lower() in self._handlers)
            if refused is not None:
                return self._stamp(refused)
        try:
            deadline = command_deadline(cmd)  # maxTimeMS: from the command's arrival (time_limit.py)
        except CommandError as exc:
            return self._stamp(exc.to_reply())
        if self.test_commands and isinstance(name, str):
            failed = self._fail_before(db, name, cmd, deadline)  # may block, or hang up (CloseConnection)
            if failed is not None:
                return self._stamp(failed)
        if isinstance(name, str) and name.lower() in LOCK_FREE:
            return self._stamp(self._after(db, name, cmd, self._run(db, cmd, connection_id)))
        with self._lock:
            self._per_connection.hang_up = False
            if expired(deadline):  # the lock was waited for past the deadline: nothing runs
                return self._stamp(exceeded())
            reply = self._run(db, cmd, connection_id)
            if isinstance(name, str) and reply.get("ok") and expired(deadline) and is_read(name, cmd):
                self._drop_cursor(reply)
                reply = exceeded()
            if self._storage is not None:
                reply = self._commit(reply)
            if self._per_connection.hang_up:  # onPrimaryTransactionalWrite: committed, then the connection closes
                raise CloseConnection("Failing write after commit due to 'onPrimaryTransactionalWrite' failpoint")
            return self._stamp(self._after(db, name, cmd, reply))

    def _drop_cursor(self, reply: dict[str, Any]) -> None:
        """A read interrupted at its deadline leaves no cursor behind (mongod kills it with the operation)."""
        cursor = reply.get("cursor")
        if isinstance(cursor, dict) and cursor.get("id"):
            self._cursors.pop(int(cursor["id"]), None)

    def _after(self, db: str, name: Any, cmd: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        return self._fail_after(db, name, cmd, reply) if self.test_commands and isinstance(name, str) else reply

    def _commit(self, reply: dict[str, Any]) -> dict[str, Any]:
        """Commit the command's changes to disk before the reply may leave; a failed commit is the reply."""
        assert self._storage is not None
        try:
            self._storage.commit()
        except sqlite3.Error as exc:
            self._storage.rollback()
            return CommandError(f"the local store could not save this write: {exc}", INTERNAL_ERROR).to_reply()
        return reply

    def _restore(self, stored: StoredCollection) -> None:
        """Put one collection back as it was saved, then build its vector and full-text indexes."""
        db, name = stored.ns
        self._client[db].create_collection(name)
        coll = self._coll(db, name)
        docs = stored_documents(coll)
        for doc in stored.documents:
            docs[store_key(doc["_id"])] = doc
        for index_name, info in stored.indexes.items():
            options = {k: v for k, v in info.items() if k not in ("key", "v", "ns")}
            coll.create_index([tuple(part) for part in info["key"]], name=index_name, **options)
        indexes = self._search_indexes.setdefault(stored.ns, {})
        for rec in stored.search_indexes:
            created: dt.datetime = rec["createdAt"]
            indexes[rec["name"]] = SearchIndex(
                name=rec["name"],
                type=rec["type"],
                definition=rec["definition"],
                normalized=normalize(rec["type"], rec["definition"]),
                build_delay=0.0,
                id=rec["id"],
                version=int(rec["version"]),
                created_at=created.replace(tzinfo=dt.timezone.utc),
            )
        self._refresh_vector_stores(stored.ns)
        for index in list(indexes.values()):
            if index.type == "search":
                self._text_index(db, coll, index.name)

    def _run(self, db: str, cmd: dict[str, Any], connection_id: int) -> dict[str, Any]:
        try:
            name = next(iter(cmd))
        except StopIteration:
            return CommandError("no command name", COMMAND_NOT_FOUND).to_reply()
        handler = self._handlers.get(name.lower())
        if handler is None:
            return CommandError(f"no such command: '{name}'", COMMAND_NOT_FOUND).to_reply()
        try:
            if "txnNumber" in cmd:
                return self._retryable_write(name, cmd, lambda: self._reply(handler, db, cmd, connection_id))
            return self._reply(handler, db, cmd, connection_id)
        except CommandError as exc:
            return exc.to_reply()

    def _reply(self, handler: Handler, db: str, cmd: dict[str, Any], connection_id: int) -> dict[str, Any]:
        try:
            reply = handler(db, cmd, connection_id)
        except CommandError as exc:
            return exc.to_reply()
        except mongomock.DuplicateKeyError as exc:
            return CommandError(_dup_msg(exc), DUPLICATE_KEY, extra=dict(exc.details or {})).to_reply()
        except mongomock.OperationFailure as exc:
            return CommandError(str(exc), exc.code or BAD_VALUE).to_reply()
        except NotImplementedError as exc:
            return not_implemented(f"not supported by the leaf-mongo emulator: {exc}").to_reply()
        except Exception as exc:  # noqa: BLE001 - any bug must still become a reply
            return CommandError(f"{type(exc).__name__}: {exc}", INTERNAL_ERROR).to_reply()
        reply.setdefault("ok", 1.0)
        return reply

    def _retryable_write(self, name: str, cmd: dict[str, Any], run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Retryable writes (drivers send ``txnNumber`` to a replica set): a retry gets the first reply.

        Multi-document transactions stay out of scope and are refused as such.
        """
        if "autocommit" in cmd or "startTransaction" in cmd:
            raise not_implemented("transactions are not supported by the leaf-mongo emulator (emulator limitation)")
        if name.lower() not in RETRYABLE_WRITES:
            raise CommandError(
                f"txnNumber may only be provided for retryable write commands, not {name}",
                NOT_A_RETRYABLE_WRITE_COMMAND,
            )
        lsid = cmd.get("lsid") or {}
        key = f"{lsid.get('id')!r}|{int(cmd['txnNumber'])}|{name.lower()}"
        done = self._retry_replies.get(key)
        if done is not None:
            return copy.deepcopy(done)
        hang_up = self._fail_retryable_write()
        reply = run()
        self._per_connection.hang_up = hang_up
        if reply.get("ok"):
            self._retry_replies[key] = copy.deepcopy(reply)
            if self._storage is not None:  # a driver retrying after a server crash gets this reply, not a rerun
                self._storage.save_retry(key, reply, MAX_RETRY_REPLIES)
            while len(self._retry_replies) > MAX_RETRY_REPLIES:
                self._retry_replies.pop(next(iter(self._retry_replies)))
        return reply
