"""End to end: the emulator with a running ``leaf-mongo serve`` as its embedding provider (real HTTP, real
pymongo, tiny replicas of the published layouts). Documents inserted are embedded by the service's teacher,
``$vectorSearch: {query: {text}}`` by its leaf, and the results equal a client-side search with the vectors
sentence-transformers computes for the same texts (``encode_document`` / ``encode_query``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pymongo import MongoClient
from pymongo.operations import SearchIndexModel

from leaf_mongo.testing import MongoEmulator, wait_for_search_index
from tests.autoembed_helpers import embedding_config, serve_leaf_ir_pair
from tests.serve_helpers import expected

TEXTS = [
    "MongoDB stores documents as BSON.",
    "Vector search finds nearest neighbours of an embedding.",
    "The teacher model embeds documents; the leaf model embeds queries.",
    "Paris is the capital of France.",
    "Photosynthesis turns light into chemical energy.",
    "A binary heap is a complete binary tree.",
    "Rust has no garbage collector.",
    "Coffee contains caffeine.",
    "HNSW is a graph index for approximate search.",
    "The Nile is a long river in Africa.",
    "Embeddings map text to vectors.",
    "Mount Everest is the highest mountain.",
]
QUERIES = ["how do nearest neighbour indexes work", "rivers of Africa", "what is in coffee"]


@pytest.fixture(scope="module")
def serve(models: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from serve_leaf_ir_pair(models, tmp_path_factory.mktemp("serve"))


def test_query_text_through_serve_equals_client_side_search(serve: Any, models: dict[str, str]) -> None:
    server, root = serve
    config = embedding_config(server.url + "/v1/embeddings", root)
    field = {"type": "autoEmbed", "modality": "text", "path": "text", "model": "voyage-4", "numDimensions": 32}
    with MongoEmulator(embedding=config) as emulator, MongoClient(emulator.uri) as client:
        coll = client.db.docs
        coll.insert_many([{"_id": i, "text": t} for i, t in enumerate(TEXTS[:6])])  # before: the initial scan
        coll.create_search_index(SearchIndexModel({"fields": [field]}, name="ae", type="vectorSearch"))
        wait_for_search_index(coll, "ae", 30)
        coll.insert_many([{"_id": i, "text": t} for i, t in enumerate(TEXTS) if i >= 6])  # after: the writes
        docs = expected(models["arctic"], "document", TEXTS, 32, "float", (-1.0, 1.0))
        for query in QUERIES:
            q = expected(models["leaf-ir"], "query", [query], 32, "float", (-1.0, 1.0))[0]
            scores = (1.0 + docs @ q) / 2.0  # dotProduct, mongot's score
            want = np.sort(scores)[::-1][:10]
            assert len(np.unique(np.round(scores, 5))) >= 4  # the scores discriminate: the comparison means something
            stage = {"index": "ae", "path": "text", "query": {"text": query}, "limit": 10, "numCandidates": 100}
            got = list(coll.aggregate([{"$vectorSearch": stage}, {"$project": {"s": {"$meta": "vectorSearchScore"}}}]))
            ids, got_scores = [d["_id"] for d in got], [d["s"] for d in got]
            # Same vectors: each document's score is the client-side one, and the top 10 are the client's top 10
            # (the tiny models give near-ties, which either side may order differently within float32 noise).
            np.testing.assert_allclose(got_scores, scores[ids], atol=1e-5)
            np.testing.assert_allclose(got_scores, want, atol=1e-5)
            assert len(set(ids)) == 10
