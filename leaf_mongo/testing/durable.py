"""Durability for the emulator: every acknowledged write is committed to SQLite before its reply is sent.

Only used when the emulator is given a data folder (``MongoEmulator(data_path=...)``, ``python -m
leaf_mongo.testing --data PATH``, the local store of :mod:`leaf_mongo.local`); without one nothing here runs.

Why SQLite in WAL mode: it is in the standard library, it is the most deployed and tested embedded engine there
is, a transaction committed with ``synchronous=FULL`` survives the death of the process (and of the machine), and
WAL lets ``leaf-mongo local status`` read the file while the server writes. An LSM engine (RocksDB, LMDB) would
add a compiled dependency for write rates the emulator never reaches.

Why write-through of the documents a command touched, not a journal of commands replayed at start: a replay is
only faithful if every command gives the same result twice, and many do not (``ObjectId()`` of an upsert,
``$currentDate``, ``$setOnInsert``, the order of a multi-update that hits a unique index). The document as it
stands after the command is what was acknowledged; writing it (or deleting its row) is idempotent, and start-up
is a plain load, not a re-execution. The commands record their changes here under the backend lock; the backend
calls :meth:`DurableStore.commit` once per command, before the reply leaves, so a command is atomic on disk.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson
from bson.codec_options import CodecOptions

from leaf_mongo.errors import LocalStoreError, StoreFormatError

FORMAT_VERSION = 1
FILE_NAME = "store.sqlite3"
_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(document_class=dict)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (db TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (db, name));
CREATE TABLE IF NOT EXISTS documents (
  seq INTEGER PRIMARY KEY, db TEXT NOT NULL, coll TEXT NOT NULL, key BLOB NOT NULL, doc BLOB NOT NULL,
  UNIQUE (db, coll, key));
CREATE TABLE IF NOT EXISTS indexes (
  db TEXT NOT NULL, coll TEXT NOT NULL, name TEXT NOT NULL, spec BLOB NOT NULL, PRIMARY KEY (db, coll, name));
CREATE TABLE IF NOT EXISTS search_indexes (
  db TEXT NOT NULL, coll TEXT NOT NULL, name TEXT NOT NULL, spec BLOB NOT NULL, PRIMARY KEY (db, coll, name));
CREATE TABLE IF NOT EXISTS retries (seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, reply BLOB NOT NULL);
"""
_UPSERT = (
    "INSERT INTO documents (db, coll, key, doc) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (db, coll, key) DO UPDATE SET doc = excluded.doc"
)
Namespace = tuple[str, str]


def row_key(_id: Any) -> bytes:
    """The row key of an ``_id``, equal exactly when the emulator's store treats two ids as one document.

    The store is a Python dict, so ``1``, ``1.0`` and ``Int64(1)`` are one key; BSON would tell them apart.
    """
    if isinstance(_id, (int, float)) and not isinstance(_id, bool):
        number: Any = int(_id) if isinstance(_id, float) and _id.is_integer() else _id
        return b"n" + repr(number).encode()
    return b"b" + bson.encode({"": _id})


def decode(blob: bytes) -> dict[str, Any]:
    return bson.decode(blob, codec_options=_CODEC)


def read_format(folder: Path) -> int | None:
    """The format version of the store in ``folder`` (None: no store there yet); read-only, safe while it runs."""
    path = folder / FILE_NAME
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise LocalStoreError(f"{path} is not a leaf-mongo local store ({exc})") from None
    return int(row[0]) if row else None


def check_format(folder: Path) -> None:
    """One clear line when the folder was written by a store format this version cannot read."""
    found = read_format(folder)
    if found is not None and found != FORMAT_VERSION:
        raise StoreFormatError(
            f"{folder} holds a local store of format {found}, this leaf-mongo reads format {FORMAT_VERSION}: "
            "use the leaf-mongo version that wrote it (then `leaf-mongo copy` its collections out), "
            "or move the folder away to start an empty store"
        )


@dataclass
class StoredCollection:
    """One collection as it comes back from disk, in its original insertion order."""

    ns: Namespace
    documents: list[dict[str, Any]] = field(default_factory=list)
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    search_indexes: list[dict[str, Any]] = field(default_factory=list)


class DurableStore:
    """The SQLite file behind a durable emulator: changes are staged per command and committed by the backend."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        check_format(folder)
        self.path = folder / FILE_NAME
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (str(FORMAT_VERSION),))
        self._in_transaction = False

    # ------------------------------------------------------------------ staging (under the backend lock)

    def _begin(self) -> sqlite3.Connection:
        if not self._in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._in_transaction = True
        return self._db

    def save_documents(self, ns: Namespace, changes: Iterable[tuple[Any, dict[str, Any] | None]]) -> None:
        """Write each ``(store key, document)``; a None document is deleted."""
        db = self._begin()
        upserts, deletes = [], []
        for key, doc in changes:
            if doc is None:
                deletes.append((*ns, row_key(key)))
            else:
                upserts.append((*ns, row_key(doc["_id"]), bson.encode(doc)))
        if upserts:
            db.execute("INSERT OR IGNORE INTO collections VALUES (?, ?)", ns)
            db.executemany(_UPSERT, upserts)
        if deletes:
            db.executemany("DELETE FROM documents WHERE db = ? AND coll = ? AND key = ?", deletes)

    def replace_documents(self, ns: Namespace, docs: Iterable[dict[str, Any]]) -> None:
        """The whole collection anew (``$out``, ``$merge``)."""
        self._begin().execute("DELETE FROM documents WHERE db = ? AND coll = ?", ns)
        self.save_documents(ns, ((doc["_id"], doc) for doc in docs))

    def save_catalog(
        self, ns: Namespace, exists: bool, indexes: dict[str, dict[str, Any]], search: list[dict[str, Any]]
    ) -> None:
        """A collection's existence, regular indexes and search index definitions; a dropped one loses its rows."""
        db = self._begin()
        for table in ("indexes", "search_indexes"):
            db.execute(f"DELETE FROM {table} WHERE db = ? AND coll = ?", ns)  # noqa: S608 - fixed table names
        if not exists:
            db.execute("DELETE FROM collections WHERE db = ? AND name = ?", ns)
            db.execute("DELETE FROM documents WHERE db = ? AND coll = ?", ns)
            return
        db.execute("INSERT OR IGNORE INTO collections VALUES (?, ?)", ns)
        db.executemany(
            "INSERT INTO indexes VALUES (?, ?, ?, ?)", [(*ns, n, bson.encode(i)) for n, i in indexes.items()]
        )
        rows = [(*ns, s["name"], bson.encode(s)) for s in search]
        db.executemany("INSERT INTO search_indexes VALUES (?, ?, ?, ?)", rows)

    def save_retry(self, key: str, reply: dict[str, Any], keep: int) -> None:
        """The reply of a retryable write (``lsid`` + ``txnNumber``), kept with the write itself; the last ``keep``."""
        db = self._begin()
        cur = db.execute("INSERT OR REPLACE INTO retries (key, reply) VALUES (?, ?)", (key, bson.encode(reply)))
        db.execute("DELETE FROM retries WHERE seq <= ?", ((cur.lastrowid or 0) - keep,))

    def load_retries(self, keep: int) -> list[tuple[str, dict[str, Any]]]:
        rows = self._db.execute("SELECT key, reply FROM retries ORDER BY seq DESC LIMIT ?", (keep,)).fetchall()
        return [(key, decode(reply)) for key, reply in reversed(rows)]

    def drop_database(self, name: str) -> None:
        db = self._begin()
        for table, column in (("collections", "db"), ("documents", "db"), ("indexes", "db"), ("search_indexes", "db")):
            db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))  # noqa: S608 - fixed names

    def clear(self) -> None:
        db = self._begin()
        for table in ("collections", "documents", "indexes", "search_indexes", "retries"):
            db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names

    def commit(self) -> None:
        """Make the command's changes durable (called once per command, before its reply is sent)."""
        if self._in_transaction:
            self._in_transaction = False
            self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._in_transaction:
            self._in_transaction = False
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        """Commit, fold the WAL back into the database file, and close."""
        self.commit()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    # ------------------------------------------------------------------ loading

    def load(self) -> Iterator[StoredCollection]:
        """Every collection with its documents (insertion order), indexes and search index definitions."""
        db = self._db
        for ns in db.execute("SELECT db, name FROM collections ORDER BY db, name").fetchall():
            stored = StoredCollection(ns=(ns[0], ns[1]))
            rows = db.execute("SELECT doc FROM documents WHERE db = ? AND coll = ? ORDER BY seq", ns)
            stored.documents = [decode(row[0]) for row in rows]
            for name, spec in db.execute("SELECT name, spec FROM indexes WHERE db = ? AND coll = ? ORDER BY rowid", ns):
                stored.indexes[name] = decode(spec)
            rows = db.execute("SELECT spec FROM search_indexes WHERE db = ? AND coll = ? ORDER BY rowid", ns)
            stored.search_indexes = [decode(row[0]) for row in rows]
            yield stored


def search_index_record(index: Any) -> dict[str, Any]:
    """What is kept of a search index: what ``$listSearchIndexes`` shows of it, less its build state."""
    created: dt.datetime = index.created_at
    return {"name": index.name, "type": index.type, "definition": index.definition, "id": index.id,
            "version": index.version, "createdAt": created}  # fmt: skip
