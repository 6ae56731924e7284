"""Polling helpers that make tests pass on the emulator *and* on a real server.

mongot builds search indexes asynchronously and follows writes through a change
stream, so on a real deployment an index is not queryable right after
``createSearchIndexes`` and freshly inserted documents are not searchable right
after the insert (Community also refreshes index status only every few seconds).
Fixed sleeps are flaky; these helpers poll with a deadline instead (reference §1.6,
§5.1, §7.1; "the reference" is described in this folder's README).

``wait_for_search_index`` follows the same rule as the package's own index waiting
(``leaf_mongo``'s ``wait_for_search_index``): an index that is not listed yet, or not
queryable yet, is polled for until the deadline; ``FAILED`` ends the wait at once. Both
failures raise :class:`leaf_mongo.errors.SearchIndexError` naming the index and its
last state (``DOES_NOT_EXIST`` when it was never listed).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Mapping
from typing import Any

from bson.binary import Binary
from pymongo.errors import OperationFailure

from leaf_mongo.errors import SearchIndexError

MISSING = "DOES_NOT_EXIST"  # the state reported for an index that is not listed


def _usable(collection: Any, name: str, entry: Mapping[str, Any] | None, require_ready: bool) -> bool:
    """Whether the listed index can be used now; SearchIndexError once it has FAILED."""
    if entry is None:
        return False
    status = entry.get("status", "UNKNOWN")
    if status == "FAILED":
        raise SearchIndexError(f"search index {name!r}{_on(collection)} FAILED to build: {_failure_reason(entry)}")
    return status == "READY" or (bool(entry.get("queryable")) and not require_ready)


def _failure_reason(entry: Mapping[str, Any]) -> str:
    """mongot's reason: each host's ``mainIndex``/``stagedIndex`` ``message`` in ``statusDetail``, or ``message``."""
    reasons = [
        str(detail["message"])
        for host in entry.get("statusDetail") or []
        if isinstance(host, Mapping)
        for detail in (host.get("mainIndex"), host.get("stagedIndex"))
        if isinstance(detail, Mapping) and detail.get("message")
    ]
    if entry.get("message"):
        reasons.append(str(entry["message"]))
    return "; ".join(dict.fromkeys(reasons)) or "no reason given"


def _timed_out(collection: Any, name: str, entry: Mapping[str, Any] | None, timeout: float) -> SearchIndexError:
    status = MISSING if entry is None else entry.get("status", "UNKNOWN")
    return SearchIndexError(f"search index {name!r}{_on(collection)} is still {status} after {timeout:g} s")


def _on(collection: Any) -> str:
    full_name = getattr(collection, "full_name", None)
    return f" on {full_name}" if isinstance(full_name, str) else ""


def _pause(interval: float, deadline: float) -> float:
    return min(interval, max(0.0, deadline - time.monotonic()))


def wait_for_search_index(
    collection: Any, name: str, timeout: float = 120.0, *, require_ready: bool = False, interval: float = 0.1
) -> dict[str, Any]:
    """Block until search index ``name`` is queryable (or READY); return its listing.

    Use ``require_ready=True`` after ``update_search_index``: during a rebuild the
    old version stays queryable while status is BUILDING. Raises
    :class:`~leaf_mongo.errors.SearchIndexError` when the index FAILED, or at the
    deadline (not listed, or not queryable, in ``timeout`` seconds).
    """
    deadline = time.monotonic() + timeout
    while True:
        entry = next(iter(collection.list_search_indexes(name)), None)
        if _usable(collection, name, entry, require_ready):
            assert entry is not None
            return dict(entry)
        if time.monotonic() >= deadline:
            raise _timed_out(collection, name, entry, timeout)
        time.sleep(_pause(interval, deadline))


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
        entry = docs[0] if docs else None
        if _usable(collection, name, entry, require_ready):
            assert entry is not None
            return dict(entry)
        if time.monotonic() >= deadline:
            raise _timed_out(collection, name, entry, timeout)
        await asyncio.sleep(_pause(interval, deadline))


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
