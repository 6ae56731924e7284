"""Polling helpers that make tests pass on the emulator *and* on a real server.

mongot builds search indexes asynchronously and follows writes through a change
stream, so on a real deployment an index is not queryable right after
``createSearchIndexes`` and freshly inserted documents are not searchable right
after the insert (Community also refreshes index status only every few seconds).
Fixed sleeps are flaky; these helpers poll with a deadline instead and fail
fast on ``FAILED`` (reference §1.6, §5.1, §7.1).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Mapping
from typing import Any

from bson.binary import Binary
from pymongo.errors import OperationFailure

_TERMINAL = ("FAILED", "DOES_NOT_EXIST", "DELETING")


def _index_ready(doc: Mapping[str, Any] | None, require_ready: bool) -> bool:
    if doc is None:
        return False
    status = doc.get("status")
    if status in _TERMINAL:
        raise RuntimeError(f"search index {doc.get('name')!r} is {status}: {doc.get('statusDetail')}")
    if require_ready:
        return status == "READY"
    return bool(doc.get("queryable")) or status == "READY"


def wait_for_search_index(
    collection: Any, name: str, timeout: float = 120.0, *, require_ready: bool = False, interval: float = 0.1
) -> dict[str, Any]:
    """Block until search index ``name`` is queryable (or READY); return its listing.

    Use ``require_ready=True`` after ``update_search_index``: during a rebuild the
    old version stays queryable while status is BUILDING.
    """
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while True:
        last = next(iter(collection.list_search_indexes(name)), None)
        if _index_ready(last, require_ready):
            assert last is not None
            return dict(last)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"search index {name!r} not ready after {timeout}s (last: {last})")
        time.sleep(interval)


async def async_wait_for_search_index(
    collection: Any, name: str, timeout: float = 120.0, *, require_ready: bool = False, interval: float = 0.1
) -> dict[str, Any]:
    """``wait_for_search_index`` for pymongo ``AsyncCollection`` and Motor collections."""
    deadline = time.monotonic() + timeout
    while True:
        cursor = collection.list_search_indexes(name)
        if inspect.isawaitable(cursor):  # pymongo async: coroutine; Motor: latent cursor
            cursor = await cursor
        docs = await cursor.to_list(None)
        last = docs[0] if docs else None
        if _index_ready(last, require_ready):
            assert last is not None
            return dict(last)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"search index {name!r} not ready after {timeout}s (last: {last})")
        await asyncio.sleep(interval)


def _vector_pipeline(
    index: str, path: str, query_vector: Any, expected_count: int, filter: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    stage: dict[str, Any] = {
        "index": index,
        "path": path,
        "queryVector": query_vector if isinstance(query_vector, (bytes, Binary)) else list(query_vector),
        "exact": True,
        "limit": max(int(expected_count), 1),
    }
    if filter:
        stage["filter"] = dict(filter)
    return [{"$vectorSearch": stage}, {"$project": {"_id": 1}}]


def _retryable(exc: OperationFailure) -> bool:
    return "cannot query vector index" in str(exc) or "is not indexed as vector" in str(exc)


def wait_until_searchable(
    collection: Any,
    index: str,
    path: str,
    query_vector: Any,
    expected_count: int,
    timeout: float = 120.0,
    *,
    filter: Mapping[str, Any] | None = None,
    interval: float = 0.1,
) -> int:
    """Block until an exact ``$vectorSearch`` returns ``expected_count`` documents.

    Covers both the index build and mongot's change-stream lag after writes.
    Returns the count seen.
    """
    deadline = time.monotonic() + timeout
    pipeline = _vector_pipeline(index, path, query_vector, expected_count, filter)
    seen = -1
    while True:
        try:
            seen = len(list(collection.aggregate(pipeline)))
        except OperationFailure as exc:
            if not _retryable(exc):
                raise
        if seen == expected_count:
            return seen
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{expected_count} documents not searchable after {timeout}s (saw {seen})")
        time.sleep(interval)


async def async_wait_until_searchable(
    collection: Any,
    index: str,
    path: str,
    query_vector: Any,
    expected_count: int,
    timeout: float = 120.0,
    *,
    filter: Mapping[str, Any] | None = None,
    interval: float = 0.1,
) -> int:
    """``wait_until_searchable`` for pymongo ``AsyncCollection`` and Motor collections."""
    deadline = time.monotonic() + timeout
    pipeline = _vector_pipeline(index, path, query_vector, expected_count, filter)
    seen = -1
    while True:
        try:
            cursor = collection.aggregate(pipeline)
            if inspect.isawaitable(cursor):
                cursor = await cursor
            seen = len(await cursor.to_list(None))
        except OperationFailure as exc:
            if not _retryable(exc):
                raise
        if seen == expected_count:
            return seen
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{expected_count} documents not searchable after {timeout}s (saw {seen})")
        await asyncio.sleep(interval)
