"""The emulator's autoEmbed provider calls, over real HTTP to a scripted provider: what mongot's client sends,
when it embeds (initial scan, every write, reuse of unchanged text), and what it does when the provider fails.

Sources (mongot d38b926, ``src/main/java/com/xgen/mongot/``): ``embedding/providers/clients/VoyageClient.java``
(buildRequest, extractVectorsFromResponse), ``embedding/providers/EmbeddingProviderManager.java`` (documents
retried, queries not), ``embedding/.../EmbeddingIndexingWorkScheduler.java`` (dedup, 400 = no vector),
``AutoEmbeddingDocumentUtils.compareDocuments`` (hash reuse), ``util/SecretsParser.java`` (key files).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure
from pymongo.operations import SearchIndexModel

from leaf_mongo.testing import MongoEmulator, wait_for_search_index
from tests.autoembed_helpers import (
    ScriptedProvider,
    embedding_config,
    quantize_int8,
    scripted_provider,
    text_vector,
)
from tests.serve_helpers import INDEXING_KEY, QUERY_KEY, ROOT

FIELD = {"type": "autoEmbed", "modality": "text", "path": "text", "model": "voyage-4", "numDimensions": 16}


@pytest.fixture
def provider() -> Iterator[ScriptedProvider]:
    with scripted_provider() as p:
        yield p


@pytest.fixture
def coll(provider: ScriptedProvider, tmp_path: Path) -> Iterator[Any]:
    config = embedding_config(provider.url, tmp_path, max_retries=3, initial_wait_s=0.01, max_wait_s=0.02)
    with MongoEmulator(embedding=config) as emulator, MongoClient(emulator.uri) as client:
        yield client.db.docs


def make_index(coll: Any, *fields: dict[str, Any]) -> None:
    coll.create_search_index(SearchIndexModel({"fields": list(fields or [FIELD])}, name="ae", type="vectorSearch"))
    wait_for_search_index(coll, "ae", 10)


def search(coll: Any, query: Any, limit: int = 10, **extra: Any) -> list[Any]:
    stage = {"index": "ae", "path": "text", "query": query, "limit": limit, "numCandidates": 100, **extra}
    return [d["_id"] for d in coll.aggregate([{"$vectorSearch": stage}])]


def test_requests_are_mongots(coll: Any, provider: ScriptedProvider) -> None:
    coll.insert_many([{"_id": 1, "text": "alpha"}, {"_id": 2, "text": "beta"}, {"_id": 3, "text": "alpha"}])
    make_index(coll)
    search(coll, {"text": "a question"})
    doc_req, query_req = provider.requests
    assert "Content-Type" not in doc_req["headers"]
    assert doc_req["headers"]["Authorization"] == f"Bearer {INDEXING_KEY}"
    assert doc_req["headers"]["X-Voyage-Tier"] == "document" and doc_req["headers"]["X-Voyage-Model"] == "voyage-4"
    assert doc_req["headers"]["User-Agent"] == "mongot/UNKNOWN (UNKNOWN)"
    assert list(doc_req["body"]) == [
        "input_type", "model", "input", "encoding_format", "truncation", "output_dimension", "output_dtype",
    ]  # fmt: skip
    assert sorted(doc_req["body"]["input"]) == ["alpha", "beta"]  # deduplicated per batch
    assert doc_req["body"]["truncation"] is True and doc_req["body"]["output_dtype"] == "float"
    assert query_req["headers"]["Authorization"] == f"Bearer {QUERY_KEY}"
    assert query_req["body"]["input_type"] == "query" and query_req["body"]["truncation"] is False
    assert query_req["body"]["input"] == ["a question"] and query_req["body"]["output_dimension"] == 16


def test_query_ranks_by_the_providers_vectors(coll: Any) -> None:
    texts = {i: f"document number {i}" for i in range(20)}
    coll.insert_many([{"_id": i, "text": t} for i, t in texts.items()])
    make_index(coll)
    q = text_vector("the query", 16)
    want = sorted(texts, key=lambda i: -float(text_vector(texts[i], 16) @ q))[:5]
    assert search(coll, "the query", limit=5) == want
    assert search(coll, {"text": "the query"}, limit=5) == want
    # queryVector against an autoEmbed index: no embedding call, same field (VectorSearchCommandAutoEmbedTest)
    stage = {"index": "ae", "path": "text", "queryVector": q.tolist(), "limit": 5, "numCandidates": 100}
    assert [d["_id"] for d in coll.aggregate([{"$vectorSearch": stage}])] == want


def test_writes_embed_and_unchanged_text_reuses_its_vector(coll: Any, provider: ScriptedProvider) -> None:
    make_index(coll)
    coll.insert_one({"_id": 1, "text": "first", "n": 0})
    coll.insert_one({"_id": 2, "text": "second", "n": 0})
    assert provider.inputs("document") == ["first", "second"]
    coll.update_one({"_id": 1}, {"$set": {"n": 1}})  # text unchanged: no call
    assert provider.inputs("document") == ["first", "second"]
    coll.update_one({"_id": 1}, {"$set": {"text": "changed"}})
    assert provider.inputs("document")[-1] == "changed"
    assert search(coll, "changed", limit=1) == [1]
    coll.delete_one({"_id": 1})
    assert search(coll, "changed") == [2]
    coll.replace_one({"_id": 2}, {"text": 5})  # no longer a string: no vector
    assert search(coll, "anything") == []


def test_documents_are_retried_then_left_pending_until_the_provider_recovers(
    coll: Any, provider: ScriptedProvider
) -> None:
    make_index(coll)
    provider.status, provider.fail_times = 503, 2
    coll.insert_one({"_id": 1, "text": "retried"})  # two 503s, then vectors (backoff within max_retries=3)
    assert len(provider.requests) == 3 and search(coll, "retried") == [1]
    provider.status, provider.fail_times = 500, 10**9
    coll.insert_one({"_id": 2, "text": "pending"})  # the write is acknowledged; its vector is not there yet
    provider.status = None
    assert search(coll, "pending") == [2, 1] or search(coll, "pending") == [1, 2]  # caught up before the search


def test_a_400_leaves_documents_without_vectors_and_fails_a_query(coll: Any, provider: ScriptedProvider) -> None:
    make_index(coll)
    provider.status, provider.body = 400, "input too long"
    coll.insert_one({"_id": 1, "text": "refused"})
    assert len(provider.requests) == 1  # a 400 is not retried: the document just has no vector
    with pytest.raises(OperationFailure, match=r"Got error when embedding query: Optional\[input too long\]"):
        search(coll, "q")
    provider.status = None
    assert search(coll, "q") == []


def test_a_failing_query_is_not_retried(coll: Any, provider: ScriptedProvider) -> None:
    coll.insert_one({"_id": 1, "text": "x"})
    make_index(coll)
    provider.status, before = 503, len(provider.requests)
    with pytest.raises(OperationFailure, match="Failed to embed query text"):
        search(coll, "q")
    assert len(provider.requests) == before + 1


def test_without_an_embedding_config_autoembed_indexes_are_refused() -> None:
    refused = pytest.raises(OperationFailure, match=r"Supported models: none \(embedding service not configured\)")
    with MongoEmulator() as emulator, MongoClient(emulator.uri) as client, refused:
        make_index(client.db.docs)


def test_autoembed_vector_in_a_search_index_is_an_emulator_limitation(coll: Any) -> None:
    # mongot parses it (index/definition/SearchAutoEmbedFieldDefinition.java: model, modality, sourceField) and
    # embeds into a materialized view; the emulator serves automated embedding in vectorSearch indexes only.
    field = {"type": "autoEmbedVector", "model": "voyage-4", "modality": "text", "sourceField": "text"}
    model = SearchIndexModel({"mappings": {"dynamic": False, "fields": {"vec": field}}}, name="s", type="search")
    with pytest.raises(OperationFailure, match="emulator limitation") as info:
        coll.create_search_index(model)
    assert info.value.code == 238 and "use an autoEmbed field in a vectorSearch index" in str(info.value)
    assert not list(coll.list_search_indexes())


def test_key_files_must_be_owner_only(tmp_path: Path, provider: ScriptedProvider) -> None:
    config = embedding_config(provider.url, tmp_path)
    Path(config.query_key_file).chmod(0o644)
    with pytest.raises(ValueError, match="Failed to read Voyage API credential files"):
        MongoEmulator(embedding=config)


def test_command_line_embedding_endpoint(tmp_path: Path, provider: ScriptedProvider) -> None:
    config = embedding_config(provider.url, tmp_path)
    args = [
        "--port", "0", "--index-delay", "0", "--embedding-endpoint", provider.url,
        "--indexing-key-file", config.indexing_key_file, "--query-key-file", config.query_key_file,
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaf_mongo.testing", *args], stdout=subprocess.PIPE, text=True, cwd=str(ROOT)
    )
    try:
        assert proc.stdout is not None
        uri = proc.stdout.readline().split()[-1]
        with MongoClient(uri) as client:
            client.db.docs.insert_one({"_id": 1, "text": "hello"})
            make_index(client.db.docs)
            assert search(client.db.docs, "hello") == [1]
        assert json.dumps(provider.inputs("query")) == '["hello"]'
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize(("quantization", "dtype"), [("scalar", "int8"), ("binaryNoRescore", "binary")])
def test_quantized_fields_ask_for_their_dtype_and_rank_by_it(
    coll: Any, provider: ScriptedProvider, quantization: str, dtype: str
) -> None:
    # VoyageClient.getOutputDataType: scalar -> int8, binaryNoRescore -> binary (offset bits), decoded as mongot does.
    texts = {i: f"document number {i}" for i in range(12)}
    coll.insert_many([{"_id": i, "text": t} for i, t in texts.items()])
    make_index(coll, {**FIELD, "quantization": quantization})
    got = search(coll, "the query", limit=3)
    assert {r["body"]["output_dtype"] for r in provider.requests} == {dtype}
    q = text_vector("the query", 16)
    if dtype == "int8":  # mongot's native int8 dot product
        qi = quantize_int8(q).astype(np.int64)
        score = {i: int(quantize_int8(text_vector(t, 16)).astype(np.int64) @ qi) for i, t in texts.items()}
    else:  # euclidean over bits: fewer differing bits ranks higher
        score = {i: -int(np.sum((text_vector(t, 16) > 0) != (q > 0))) for i, t in texts.items()}
    best = sorted(score.values(), reverse=True)[:3]
    assert sorted((score[i] for i in got), reverse=True) == best
