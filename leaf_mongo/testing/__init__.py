"""Test support for leaf-mongo: a MongoDB 8.2 + mongot wire-level emulator.

An emulator for tests and offline walkthroughs, **not a database**: no
durability unless given a data folder (``MongoEmulator(data_path=...)``: every
acknowledged write is then committed to SQLite; the local store of
:mod:`leaf_mongo.local` runs it so), SCRAM-SHA-256 authentication only when given
users (``MongoEmulator(users=...)``), no transactions, a single node, and
``$vectorSearch`` is exact brute force where a real server's HNSW index is
approximate. It speaks the real wire protocol (on MockupDB, with
mongomock for storage and queries) so pymongo, ``AsyncMongoClient`` and Motor
talk to it exactly as they would to a server. See ``README.md`` in this folder.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leaf_mongo.testing.embedding import EmbeddingConfig
    from leaf_mongo.testing.emulator import MongoEmulator
    from leaf_mongo.testing.waiting import wait_for_search_index, wait_until_searchable

__all__ = ["EmbeddingConfig", "MongoEmulator", "wait_for_search_index", "wait_until_searchable"]
# Loaded on first use: a client of the local store imports ``leaf_mongo.testing.durable`` (the store's format),
# which must not pull in the engine's dependencies (mongomock, MockupDB, tantivy).
_LAZY = {
    "EmbeddingConfig": "embedding",
    "MongoEmulator": "emulator",
    "wait_for_search_index": "waiting",
    "wait_until_searchable": "waiting",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"leaf_mongo.testing.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'leaf_mongo.testing' has no attribute {name!r}")
