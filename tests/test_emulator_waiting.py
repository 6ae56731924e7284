"""``leaf_mongo.testing``'s waiting helpers follow the package's own rule for search indexes.

An index that is not listed yet (or not queryable yet) is polled for until the deadline, a FAILED index
ends the wait at once, and both failures are :class:`leaf_mongo.errors.SearchIndexError` naming the
index and its last state. The listing-level cases use stand-in collections (neither the emulator nor a
test deployment builds an index that FAILS); the missing-then-created case runs through the driver.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo.database import Database
from pymongo.operations import SearchIndexModel

from leaf_mongo.errors import SearchIndexError
from leaf_mongo.testing import wait_for_search_index
from leaf_mongo.testing.waiting import async_wait_for_search_index

DEFINITION = {"fields": [{"type": "vector", "path": "v", "numDimensions": 3, "similarity": "cosine"}]}


class Listing:
    """A collection whose ``list_search_indexes`` answers from a script of listings (the last one repeats)."""

    full_name = "db.coll"

    def __init__(self, *listings: list[dict[str, Any]]) -> None:
        self.listings = list(listings)
        self.calls = 0

    def list_search_indexes(self, name: str) -> Iterator[dict[str, Any]]:
        self.calls += 1
        listing = self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]
        return iter([e for e in listing if e["name"] == name])


class AsyncListing(Listing):
    """The same for ``AsyncCollection``: ``list_search_indexes`` is a coroutine returning a cursor."""

    class _Cursor:
        def __init__(self, docs: list[dict[str, Any]]) -> None:
            self.docs = docs

        async def to_list(self, length: int | None) -> list[dict[str, Any]]:
            return self.docs

    async def list_search_indexes(self, name: str) -> _Cursor:  # type: ignore[override]
        return self._Cursor(list(Listing.list_search_indexes(self, name)))


def entry(status: str, queryable: bool, **extra: Any) -> dict[str, Any]:
    return {"name": "vi", "status": status, "queryable": queryable, **extra}


def test_a_missing_index_is_waited_for_then_returned() -> None:
    coll = Listing([], [], [entry("PENDING", False)], [entry("READY", True)])
    assert wait_for_search_index(coll, "vi", timeout=5, interval=0.001)["status"] == "READY"
    assert coll.calls == 4


def test_listed_as_missing_or_deleting_is_waited_for_like_not_listed() -> None:
    # e.g. an index dropped and created again under the same name
    coll = Listing([entry("DOES_NOT_EXIST", False)], [entry("DELETING", False)], [], [entry("BUILDING", True)])
    assert wait_for_search_index(coll, "vi", timeout=5, interval=0.001)["status"] == "BUILDING"
    assert coll.calls == 4


def test_require_ready_waits_past_a_queryable_rebuild() -> None:
    coll = Listing([entry("BUILDING", True)], [entry("READY", True)])
    assert wait_for_search_index(coll, "vi", timeout=5, require_ready=True, interval=0.001)["status"] == "READY"
    assert coll.calls == 2


def test_failed_index_raises_at_once_with_its_detail() -> None:
    # mongot's shape: the reason is each host's mainIndex (or stagedIndex) message
    host = {
        "hostname": "h",
        "status": "FAILED",
        "queryable": False,
        "mainIndex": {"status": "FAILED", "message": "bad mapping"},
    }
    coll = Listing([entry("FAILED", False, statusDetail=[host])])
    with pytest.raises(SearchIndexError, match=r"search index 'vi' on db\.coll FAILED to build: bad mapping$"):
        wait_for_search_index(coll, "vi", timeout=60, interval=0.001)
    assert coll.calls == 1


def test_deadline_names_the_last_state() -> None:
    with pytest.raises(SearchIndexError, match=r"'vi' on db\.coll is still DOES_NOT_EXIST after 0\.05 s"):
        wait_for_search_index(Listing([]), "vi", timeout=0.05, interval=0.01)
    with pytest.raises(SearchIndexError, match=r"is still BUILDING after 0\.05 s"):
        wait_for_search_index(Listing([entry("BUILDING", True)]), "vi", 0.05, require_ready=True, interval=0.01)


async def test_async_twin_follows_the_same_rule() -> None:
    coll = AsyncListing([], [entry("READY", True)])
    assert (await async_wait_for_search_index(coll, "vi", timeout=5, interval=0.001))["status"] == "READY"
    with pytest.raises(SearchIndexError, match="FAILED to build"):
        await async_wait_for_search_index(AsyncListing([entry("FAILED", False)]), "vi", timeout=5, interval=0.001)
    with pytest.raises(SearchIndexError, match="is still DOES_NOT_EXIST after"):
        await async_wait_for_search_index(AsyncListing([]), "vi", timeout=0.05, interval=0.01)


def test_index_created_while_waiting_is_found(database: Database) -> None:
    coll = database.late
    coll.insert_one({"_id": 1, "v": [1.0, 0.0, 0.0]})

    def create_later() -> None:
        time.sleep(0.3)
        coll.create_search_index(SearchIndexModel(DEFINITION, name="vi", type="vectorSearch"))

    creator = threading.Thread(target=create_later)
    creator.start()
    try:
        listing = wait_for_search_index(coll, "vi", timeout=120)
    finally:
        creator.join()
    assert listing["name"] == "vi" and (listing["queryable"] or listing["status"] == "READY")
