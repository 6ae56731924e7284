"""Test support for leaf-mongo: a MongoDB 8.2 + mongot wire-level emulator.

An emulator for tests and offline walkthroughs, **not a database**: no
durability (everything is in memory), no authentication, no transactions, a
single node, and ``$vectorSearch`` is exact brute force where a real server's
HNSW index is approximate. It speaks the real wire protocol (on MockupDB, with
mongomock for storage and queries) so pymongo, ``AsyncMongoClient`` and Motor
talk to it exactly as they would to a server. See ``README.md`` in this folder.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Loaded on first access: the local store's clients import ``leaf_mongo.testing.durable`` alone, without the
# engine's dependencies (mockupdb, mongomock, tantivy).
_LAZY = {
    "MongoEmulator": "leaf_mongo.testing.emulator",
    "wait_for_search_index": "leaf_mongo.testing.waiting",
    "wait_until_searchable": "leaf_mongo.testing.waiting",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'leaf_mongo.testing' has no attribute {name!r}")


__all__ = ["MongoEmulator", "wait_for_search_index", "wait_until_searchable"]
