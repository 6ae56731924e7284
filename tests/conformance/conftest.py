"""The ``indexed`` fixture: a collection with documents and a READY, searchable vector index."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.operations import SearchIndexModel

from leaf_mongo.testing import wait_for_search_index, wait_until_searchable
from tests.conformance.helpers import TIMEOUT


@pytest.fixture
def indexed(database: Database) -> Callable[..., Collection]:
    """Create a collection with docs + a vector index and wait until ``searchable`` docs are visible."""

    def make(
        docs: list[dict[str, Any]],
        fields: list[dict[str, Any]],
        *,
        probe: Any,
        searchable: int,
        name: str = "vi",
        coll_name: str = "docs",
    ) -> Collection:
        coll = database[coll_name]
        if docs:
            coll.insert_many(docs)
        else:
            database.create_collection(coll_name)
        coll.create_search_index(SearchIndexModel({"fields": fields}, name=name, type="vectorSearch"))
        wait_for_search_index(coll, name, TIMEOUT)
        wait_until_searchable(coll, name, fields[0]["path"], probe, searchable, TIMEOUT)
        return coll

    return make
