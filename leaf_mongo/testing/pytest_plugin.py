"""Pytest fixtures: one emulator per session, or a real server via ``LEAF_MONGO_TEST_URI``.

Enable with ``pytest_plugins = ["leaf_mongo.testing.pytest_plugin"]`` in a conftest.
Tests written against these fixtures run unchanged on the emulator (default) and
on a real MongoDB 8.2 + mongot or Atlas deployment, so both are held to one
contract. Each test gets its own database (``db_name``) that is dropped after it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database

from leaf_mongo.testing.emulator import MongoEmulator

URI_ENV = "LEAF_MONGO_TEST_URI"
DELAY_ENV = "LEAF_MONGO_EMULATOR_INDEX_DELAY"


@pytest.fixture(scope="session")
def mongo_emulator() -> Iterator[MongoEmulator | None]:
    """The session's emulator, or None when tests target a real server."""
    if os.environ.get(URI_ENV):
        yield None
        return
    delay = float(os.environ.get(DELAY_ENV, "0.3"))
    with MongoEmulator(port=0, index_build_delay=delay) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def mongo_uri(mongo_emulator: MongoEmulator | None) -> str:
    """``LEAF_MONGO_TEST_URI`` if set, else the session emulator's URI."""
    uri = os.environ.get(URI_ENV)
    if uri:
        return uri
    assert mongo_emulator is not None
    return mongo_emulator.uri


@pytest.fixture(scope="session")
def mongo_client(mongo_uri: str) -> Iterator[MongoClient]:
    client: MongoClient = MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    try:
        yield client
    finally:
        client.close()


@pytest_asyncio.fixture
async def async_mongo_client(mongo_uri: str) -> AsyncIterator[AsyncMongoClient]:
    """Function-scoped because an async client is bound to the test's event loop."""
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def db_name(mongo_client: MongoClient, mongo_emulator: MongoEmulator | None) -> Iterator[str]:
    """A fresh database name, dropped after the test (emulator state is reset too)."""
    name = f"leaf_test_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        mongo_client.drop_database(name)
        if mongo_emulator is not None:
            mongo_emulator.reset()


@pytest.fixture
def database(mongo_client: MongoClient, db_name: str) -> Database:
    return mongo_client[db_name]
