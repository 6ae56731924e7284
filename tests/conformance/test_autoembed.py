"""Conformance: ``autoEmbed`` vectorSearch fields and ``$vectorSearch`` with ``query`` (automated embedding).

On the emulator an embedding provider is configured (a scripted Voyage-protocol server on a loopback port, see
tests/autoembed_helpers.py); against a real server (``LEAF_MONGO_TEST_URI``) the tests that need a provider skip
when its mongot has none ("Supported models: none"). ``LEAF_MONGO_TEST_AUTOEMBED_DIMS`` (default 256) is the
``numDimensions`` used, so a real provider's dimensions can be matched. "MT" = mongot d38b926
``src/main/java/com/xgen/mongot/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure
from pymongo.operations import SearchIndexModel

from leaf_mongo.testing import MongoEmulator, wait_for_search_index
from leaf_mongo.testing.pytest_plugin import URI_ENV
from tests.autoembed_helpers import embedding_config, scripted_provider
from tests.conformance.helpers import TIMEOUT, expect_error, poll, vfield

DIMS = int(os.environ.get("LEAF_MONGO_TEST_AUTOEMBED_DIMS", "256"))


def ae(path: str = "text", **extra: Any) -> dict[str, Any]:
    return {"type": "autoEmbed", "modality": "text", "path": path, "model": "voyage-4", "numDimensions": DIMS, **extra}


def create(db: Database, fields: list[dict[str, Any]], name: str = "ae", coll: str = "docs") -> Collection:
    c = db[coll]
    c.create_search_index(SearchIndexModel({"fields": fields}, name=name, type="vectorSearch"))
    return c


def qs(query: Any, limit: int = 10, path: str = "text", index: str = "ae", **extra: Any) -> list[dict[str, Any]]:
    return [
        {"$vectorSearch": {"index": index, "path": path, "query": query, "limit": limit, "numCandidates": 100, **extra}}
    ]


@pytest.fixture(scope="module")
def ae_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoClient]:
    """A client of a deployment with an embedding provider (the emulator with one, or the real server)."""
    uri = os.environ.get(URI_ENV)
    if uri:
        with MongoClient(uri) as client:
            yield client
        return
    with scripted_provider() as provider:
        config = embedding_config(provider.url, tmp_path_factory.mktemp("keys"))
        with MongoEmulator(index_build_delay=0.3, embedding=config) as emulator, MongoClient(emulator.uri) as client:
            yield client


@pytest.fixture
def ae_db(ae_client: MongoClient, db_name: str) -> Iterator[Database]:
    db = ae_client[db_name]
    try:
        create(db, [ae()], name="probe", coll="probe")
    except OperationFailure as exc:
        if "Supported models: none" in str(exc):
            pytest.skip("this deployment's mongot has no embedding provider configured")
        raise
    yield db
    ae_client.drop_database(db_name)


@pytest.fixture
def ready(ae_db: Database) -> Collection:
    """``docs`` with three texts and a READY autoEmbed index over all of them."""
    c = ae_db.docs
    c.insert_many([{"_id": i, "text": t, "n": i} for i, t in enumerate(["red apples", "green pears", "blue sky"])])
    create(ae_db, [ae(), {"type": "filter", "path": "n"}])
    wait_for_search_index(c, "ae", TIMEOUT)
    poll(lambda: len(list(c.aggregate(qs("fruit")))) == 3)
    return c


# --------------------------------------------------------------------------- definitions (no provider needed)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"numDimensions": 0}, "numDimensions"),  # MT index/definition/VectorAutoEmbedFieldSpecification: 1..8192
        ({"numDimensions": 8193}, "numDimensions"),
        ({"quantization": "int4"}, "quantization"),  # VectorAutoEmbedQuantization: float/scalar/binary/...NoRescore
        ({"quantization": "binary", "numDimensions": 12}, "multiple of 8"),  # binary needs numDimensions % 8 == 0
        ({"modality": "image"}, "modality"),  # MODALITY must be 'text'
        ({"model": None}, "model"),  # MODEL is required
    ],
)
def test_autoembed_field_is_validated(database: Database, change: dict[str, Any], fragment: str) -> None:
    field = {k: v for k, v in {**ae(), **change}.items() if v is not None}
    expect_error(lambda: create(database, [field]), fragment)


def test_autoembed_is_not_a_search_index_type(database: Database) -> None:
    # MT index/definition/FieldTypeDefinition.java: a search index's field types are Type in camelCase; automated
    # embedding there is AUTO_EMBED_VECTOR ("autoEmbedVector", SearchAutoEmbedFieldDefinition), so "autoEmbed" fails
    # in util/bson/parser/EnumField.java with the sorted, non-deprecated names (dateFacet etc. left out).
    definition = {"mappings": {"dynamic": False, "fields": {"text": {"type": "autoEmbed", "model": "voyage-4"}}}}
    model = SearchIndexModel(definition, name="ae_search", type="search")
    names = "autoEmbedVector, autocomplete, boolean, date, document, embeddedDocuments, geo, knnVector, number"
    expect_error(lambda: database.docs.create_search_index(model), f"must be one of [{names}, objectId, string,")


def test_autoembed_without_provider_or_unknown_model_is_refused(ae_db: Database) -> None:
    # MT config/provider/community/embedding/AutoEmbeddingIndexValidator: models must be in EmbeddingModelCatalog.
    expect_error(lambda: create(ae_db, [ae(model="text-embedding-3-small")]), "are not supported")


def test_autoembed_and_vector_fields_do_not_mix(ae_db: Database) -> None:
    # MT AutoEmbeddingIndexValidator.throwIfMixedVectorTypes.
    expect_error(lambda: create(ae_db, [ae(), vfield()]), "cannot mix regular vector fields with auto-embedding")


def test_autoembed_fields_cannot_be_updated(ready: Collection) -> None:
    # MT AutoEmbeddingIndexValidator.validateNoAutoEmbeddingFieldChanges / validateNoAutoEmbeddingTypeConversion.
    expect_error(lambda: ready.update_search_index("ae", {"fields": [ae(similarity="cosine")]}), "cannot update")
    expect_error(lambda: ready.update_search_index("ae", {"fields": [vfield(path="text")]}), "cannot convert")


# --------------------------------------------------------------------------- queries


def test_query_as_string_or_text_document(ready: Collection) -> None:
    # MT index/query/operators/VectorSearchQueryInput.fromBson: STRING -> Text, DOCUMENT -> MultiModal {text}.
    by_string = [d["_id"] for d in ready.aggregate(qs("apples"))]
    assert by_string == [d["_id"] for d in ready.aggregate(qs({"text": "apples"}))]
    assert sorted(by_string) == [0, 1, 2]
    expect_error(lambda: list(ready.aggregate(qs({"text": "a", "image": "b"}))), "image")  # allowUnknownFields(false)


def test_query_and_query_vector_exclude_each_other(ready: Collection) -> None:
    # MT VectorSearchCriteria.checkBasicFields; VectorSearchQueryInput.fromBson (model without query).
    expect_error(lambda: list(ready.aggregate(qs("x", queryVector=[0.0] * DIMS))), "Exactly one and only one")
    stage = {"index": "ae", "path": "text", "queryVector": [0.1] * DIMS, "limit": 3, "numCandidates": 10}
    expect_error(lambda: list(ready.aggregate([{"$vectorSearch": {**stage, "model": "voyage-4"}}])), "model can only")
    # queryVector alone against an autoEmbed index: accepted, no embedding (VectorSearchCommandAutoEmbedTest).
    assert len(list(ready.aggregate([{"$vectorSearch": stage}]))) == 3


def test_query_errors(ready: Collection) -> None:
    # MT server/command/search/VectorSearchCommand: maybeEmbed, findEmbedRequestInfo.
    expect_error(lambda: list(ready.aggregate(qs(""))), "'query' field cannot be empty")
    expect_error(lambda: list(ready.aggregate(qs("x", model="voyage-3"))), "model 'voyage-3' is not allowed")
    expect_error(lambda: list(ready.aggregate(qs("x", model="voyage-code-3"))), "is not compatible with the index")
    expect_error(lambda: list(ready.aggregate(qs("x", path="n"))), "is not defined in Automated Embedding index")


def test_compatible_query_model_and_filter(ready: Collection) -> None:
    # MT EmbeddingModelCatalog: the voyage-4 family is mutually compatible; filter fields work as on vector indexes.
    got = [d["_id"] for d in ready.aggregate(qs("sky", model="voyage-4-lite", filter={"n": {"$gte": 1}}))]
    assert sorted(got) == [1, 2]


def test_query_on_a_vector_index_needs_query_vector(ae_db: Database) -> None:
    # MT VectorSearchCommand.maybeEmbed: "queryVector must be present" when the index is not autoEmbed.
    c = ae_db.plain
    c.insert_one({"_id": 1, "v": [1.0, 0.0, 0.0]})
    create(ae_db, [vfield()], name="vi", coll="plain")
    wait_for_search_index(c, "vi", TIMEOUT)
    expect_error(lambda: list(c.aggregate(qs("x", index="vi", path="v"))), "queryVector must be present")


def test_writes_follow_the_collection(ready: Collection) -> None:
    # MT MaterializedViewWriter: INSERT -> ReplaceOne, DELETE -> DeleteOne; non-strings get no vector.
    ready.insert_many([{"_id": 10, "text": "yellow bananas"}, {"_id": 11, "text": 42}])
    poll(lambda: len(list(ready.aggregate(qs("fruit")))) == 4)
    ready.delete_one({"_id": 0})
    poll(lambda: 0 not in [d["_id"] for d in ready.aggregate(qs("fruit"))])
    assert sorted(d["_id"] for d in ready.aggregate(qs("fruit"))) == [1, 2, 10]
