"""LeafEmbeddings: teacher for documents, leaf for queries, in the spec's space; and inside langchain-mongodb."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from pymongo.database import Database
from pymongo.errors import OperationFailure

from leaf_mongo import LeafEmbeddings, LeafRetriever, SpecMismatchError, VectorSpec, load_settings
from leaf_mongo.models.loading import load_model
from leaf_mongo.spec.index import ensure_vector_index, wait_for_vector_index
from leaf_mongo.spec.store import save_spec
from tests.test_query_retriever import CORPUS, INDEX, QUERIES, TEXT, WAIT, make_spec
from tests.tiny_models import make_tiny_model


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("tiny")
    teacher = make_tiny_model(root / "teacher", dimensions=48, seed=1)
    leaf = make_tiny_model(root / "leaf", dimensions=48, seed=2, prompt="query: ")
    return str(teacher), str(leaf)


def _unit(rows: Any) -> np.ndarray:
    a = np.asarray(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def test_documents_use_teacher_and_queries_use_leaf(tiny_pair: tuple[str, str]) -> None:
    teacher, leaf = tiny_pair
    spec = VectorSpec(teacher_model=teacher, leaf_model=leaf, full_dimensions=48, dimensions=16, query_prompt="query: ")
    emb = LeafEmbeddings(spec)
    docs = emb.embed_documents(["alpha beta", "gamma"])
    query = emb.embed_query("alpha")
    assert isinstance(docs, list) and isinstance(docs[0], list) and isinstance(docs[0][0], float)
    assert len(docs) == 2 and len(docs[0]) == 16 and len(query) == 16 and emb.dimensions == 16
    raw_docs = load_model(teacher).encode(["alpha beta", "gamma"])
    raw_query = load_model(leaf).encode_query(["alpha"])[0]  # the card's call: its configured "query: " prompt
    np.testing.assert_allclose(docs, _unit(raw_docs[:, :16]), atol=1e-5)  # MRL prefix, renormalized
    np.testing.assert_allclose(query, _unit(raw_query[:16]), atol=1e-5)
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)
    # Teacher mode: the teacher's own query route and prompt (its config sets "query": "", so none applies).
    teacher_mode = LeafEmbeddings(spec, query_mode="teacher").embed_query("alpha")
    np.testing.assert_allclose(teacher_mode, _unit(load_model(teacher).encode_query(["alpha"])[0][:16]), atol=1e-5)
    assert emb.embed_documents([]) == []


def test_async_variants_match(tiny_pair: tuple[str, str]) -> None:
    teacher, leaf = tiny_pair
    emb = LeafEmbeddings(VectorSpec(teacher_model=teacher, leaf_model=leaf, full_dimensions=48, dimensions=48))

    async def run() -> tuple[list[list[float]], list[float]]:
        return await emb.aembed_documents(["one", "two"]), await emb.aembed_query("one")

    docs, query = asyncio.run(run())
    assert docs == emb.embed_documents(["one", "two"])
    assert query == emb.embed_query("one")


def test_from_settings_resolves_spec(minilm_path: str) -> None:
    settings = load_settings(teacher_model=minilm_path, leaf_model=minilm_path, dimensions=128, query_prompt="")
    emb = LeafEmbeddings.from_settings(settings)
    assert emb.spec.full_dimensions == 384 and emb.spec.dimensions == 128
    assert len(emb.embed_query("hello")) == 128


def test_from_collection_reads_stored_spec(database: Database[Any], minilm_path: str) -> None:
    with pytest.raises(SpecMismatchError, match="has no leaf-mongo spec"):
        LeafEmbeddings.from_collection(database["chunks"])
    save_spec(database["chunks"], make_spec(minilm_path, dimensions=256), INDEX)
    assert LeafEmbeddings.from_collection(database["chunks"]).dimensions == 256


def test_with_langchain_mongodb_vector_store(database: Database[Any], minilm_path: str) -> None:
    """Float storage written and searched by langchain-mongodb's MongoDBAtlasVectorSearch with our pair."""
    from langchain_mongodb import MongoDBAtlasVectorSearch

    spec = make_spec(minilm_path)
    coll = database["lcm"]
    store = MongoDBAtlasVectorSearch(
        collection=coll, embedding=LeafEmbeddings(spec), index_name=INDEX, auto_create_index=False
    )
    store.add_texts(
        [text for _, _, text in CORPUS],
        metadatas=[{"source": f"{cat}/{i}.md", "category": cat, "chunk": 0} for i, cat, _ in CORPUS],
        ids=[i for i, _, _ in CORPUS],
    )
    stored = coll.find_one({"_id": "jupiter"})
    assert stored is not None and isinstance(stored["embedding"], list) and len(stored["embedding"]) == 384
    ensure_vector_index(coll, INDEX, spec)
    wait_for_vector_index(coll, INDEX, timeout=WAIT)
    probe = LeafEmbeddings(spec).embed_query("probe")
    deadline = time.monotonic() + WAIT
    while True:  # wait until the store sees every document (mongot follows writes with a lag)
        try:
            seen = len(store.similarity_search_by_vector(probe, k=len(CORPUS), oversampling_factor=2))
        except OperationFailure:
            seen = -1
        if seen == len(CORPUS) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert seen == len(CORPUS)

    for query, expected in QUERIES.items():
        top = store.similarity_search(query, k=2)
        assert top[0].page_content == TEXT[expected], query
    doc, score = store.similarity_search_with_score("biggest planet orbiting the sun", k=1)[0]
    assert doc.page_content == TEXT["jupiter"] and 0.5 < score <= 1.0
    filtered = store.similarity_search("biggest planet", k=5, pre_filter={"category": {"$eq": "food"}})
    assert [d.page_content for d in filtered] == [TEXT["cookies"]]
    as_retriever = store.as_retriever(search_kwargs={"k": 1})
    assert as_retriever.invoke("what makes a volcano erupt")[0].page_content == TEXT["volcano"]

    # The same collection, once its spec is saved, is searchable by LeafRetriever (same document schema).
    save_spec(coll, spec, INDEX)
    ours = LeafRetriever(collection=coll, k=3).invoke("biggest planet orbiting the sun")
    theirs = store.similarity_search("biggest planet orbiting the sun", k=3)
    assert [d.page_content for d in ours] == [d.page_content for d in theirs]


def test_plugs_into_in_memory_vector_store(minilm_path: str) -> None:
    """Any LangChain vector store takes the pair: here langchain-core's in-memory one."""
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore(LeafEmbeddings(make_spec(minilm_path, dimensions=256)))
    store.add_texts([text for _, _, text in CORPUS])
    assert store.similarity_search("biggest planet orbiting the sun", k=1)[0].page_content == TEXT["jupiter"]
