"""Full-text and hybrid retrieval through the retriever, on the emulator or a real server.

The fixture corpus of :mod:`tests.test_query_retriever` (ten one-sentence chunks), with a ``search`` index as
ingest builds it. Every expectation is derived from documented behaviour: BM25 finds rare literal terms,
``$rankFusion`` scores ``Σ weight / (60 + rank)``, a zero weight leaves the other list's order.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure

from leaf_mongo import LeafRetriever, SearchIndexError, ServerError, SpecMismatchError
from leaf_mongo.query.pipelines import RANK_CONSTANT
from leaf_mongo.spec import FULLTEXT_FIELDS
from leaf_mongo.spec.index import ensure_fulltext_index, fulltext_index_definition, wait_for_search_index
from leaf_mongo.spec.store import save_spec
from leaf_mongo.testing import MongoEmulator
from tests.test_query_retriever import CORPUS, INDEX, QUERIES, WAIT, Recording, build_corpus, ids

FT = "leaf_fulltext_index"


def wait_text_searchable(coll: Collection[Any], expected: int, index: str = FT) -> None:
    """Poll ``$search`` until every document is visible (mongot follows the change stream)."""
    deadline = time.monotonic() + WAIT
    stage = {"$search": {"index": index, "exists": {"path": "text"}}}
    seen = -1
    while True:
        try:
            seen = len(list(coll.aggregate([stage, {"$project": {"_id": 1}}])))
        except OperationFailure as exc:
            if "cannot query" not in str(exc):
                raise
        if seen == expected or time.monotonic() > deadline:
            assert seen == expected, f"only {seen} of {expected} documents full-text searchable after {WAIT} s"
            return
        time.sleep(0.2)


def build_hybrid(database: Database[Any], model: str, name: str = "chunks") -> Collection[Any]:
    coll, spec = build_corpus(database, model, name=name)
    spec = spec.model_copy(update={"fulltext_fields": FULLTEXT_FIELDS})
    save_spec(coll, spec, INDEX, FT)
    ensure_fulltext_index(coll, FT, spec)
    wait_for_search_index(coll, FT, timeout=WAIT)
    wait_text_searchable(coll, len(CORPUS))
    return coll


@pytest.fixture
def hybrid_corpus(database: Database[Any], minilm_path: str) -> Collection[Any]:
    return build_hybrid(database, minilm_path)


def test_fulltext_finds_literal_terms(hybrid_corpus: Collection[Any]) -> None:
    r = LeafRetriever(collection=hybrid_corpus, k=3, search_mode="fulltext")
    for query, expected in (("1889", "eiffel"), ("nylon strings", "guitar"), ("magma crust", "volcano")):
        docs = r.invoke(query)
        assert docs and docs[0].id == expected, (query, ids(docs))
        assert all(d.metadata["score"] > 0 for d in docs)
        assert "embedding" not in docs[0].metadata


def test_fulltext_with_no_matching_term_is_empty_not_an_error(hybrid_corpus: Collection[Any]) -> None:
    # BM25 has nothing to rank for a word no document holds; that is a real empty result.
    assert LeafRetriever(collection=hybrid_corpus, k=3, search_mode="fulltext").invoke("zyzzyva") == []


def test_hybrid_scores_follow_the_documented_formula(hybrid_corpus: Collection[Any]) -> None:
    r = LeafRetriever(collection=hybrid_corpus, k=5, search_mode="hybrid", vector_weight=1.0, fulltext_weight=2.0)
    docs = r.invoke("which planet is the largest gas giant")
    assert docs[0].id == "jupiter"
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    for d in docs:
        details = d.metadata["score_details"]["details"]
        by_name = {x["inputPipelineName"]: x for x in details}
        assert set(by_name) == {"vector", "fulltext"}
        expected = sum(x["weight"] / (RANK_CONSTANT + x["rank"]) for x in details if x.get("rank"))
        assert d.metadata["score"] == pytest.approx(expected, rel=1e-9)
        assert by_name["fulltext"]["weight"] == 2.0 and by_name["vector"]["weight"] == 1.0


def test_zero_weight_leaves_the_other_lists_order(hybrid_corpus: Collection[Any]) -> None:
    # score = Σ weight / (60 + rank): with the full-text weight 0 the fused order is the vector order,
    # with the vector weight 0 it is the BM25 order (documents only in the weighted-0 list come last).
    query = "famous iron landmark in France"
    vector = ids(LeafRetriever(collection=hybrid_corpus, k=3).invoke(query))
    text = ids(LeafRetriever(collection=hybrid_corpus, k=3, search_mode="fulltext").invoke(query))
    hybrid = LeafRetriever(collection=hybrid_corpus, k=3, search_mode="hybrid")
    assert ids(hybrid.invoke(query, fulltext_weight=0.0))[: len(vector)] == vector
    assert ids(hybrid.invoke(query, vector_weight=0.0))[: len(text)] == text


def test_weights_change_the_order(hybrid_corpus: Collection[Any]) -> None:
    # A query whose literal terms point at one document and whose meaning points at another: raising a
    # list's weight moves its top document to first place.
    query = "sugar from sunlight and chocolate chips"
    text_top = ids(LeafRetriever(collection=hybrid_corpus, k=1, search_mode="fulltext").invoke(query))[0]
    vector_top = ids(LeafRetriever(collection=hybrid_corpus, k=1).invoke(query))[0]
    r = LeafRetriever(collection=hybrid_corpus, k=4, search_mode="hybrid")
    assert ids(r.invoke(query, vector_weight=5.0, fulltext_weight=1.0))[0] == vector_top
    assert ids(r.invoke(query, vector_weight=1.0, fulltext_weight=5.0))[0] == text_top


def test_filter_restricts_both_sides(hybrid_corpus: Collection[Any]) -> None:
    rec = Recording(hybrid_corpus)
    flt = {"category": "science"}
    r = LeafRetriever(collection=rec, k=10, search_mode="hybrid", pre_filter=flt)
    # "guitar strings" matches the (music) guitar chunk by text and by meaning: the filter must drop it
    docs = r.invoke("guitar strings and volcano magma")
    assert docs, "a filtered hybrid search must still find the science chunks"
    assert {d.metadata["category"] for d in docs} == {"science"}
    assert "guitar" not in ids(docs) and "volcano" in ids(docs)
    fusion = rec.pipelines[-1][0]["$rankFusion"]["input"]["pipelines"]
    assert fusion["vector"][0]["$vectorSearch"]["filter"] == flt
    assert fusion["fulltext"][0]["$search"]["compound"]["filter"] == [
        {"equals": {"path": "category", "value": "science"}}
    ]
    text_only = LeafRetriever(collection=hybrid_corpus, k=10, search_mode="fulltext", pre_filter=flt)
    assert {d.metadata["category"] for d in text_only.invoke("guitar strings and volcano magma")} == {"science"}


@pytest.mark.parametrize(
    "flt",
    [
        {"category": {"$in": ["music", "food"]}},
        {"category": {"$ne": "music"}},
        {"$or": [{"category": "music"}, {"category": "travel"}]},
        {"$and": [{"category": {"$nin": ["science"]}}, {"chunk": {"$gte": 0}}]},
    ],
)
def test_filter_operators_agree_between_sides(hybrid_corpus: Collection[Any], flt: dict[str, Any]) -> None:
    allowed = {doc_id for doc_id, cat, _ in CORPUS if _matches(flt, cat)}
    for mode in ("vector", "fulltext", "hybrid"):
        r = LeafRetriever(collection=hybrid_corpus, k=10, search_mode=mode, pre_filter=flt, exact=True)
        found = set(ids(r.invoke("guitar cookies Paris tower strings sugar")))
        assert found and found <= allowed, (mode, found, allowed)


def _matches(flt: dict[str, Any], category: str) -> bool:
    doc = {"category": category, "chunk": 0}
    import mongomock

    c = mongomock.MongoClient().db.c
    c.insert_one(doc)
    return c.count_documents(flt) == 1


def test_client_fusion_equals_native(hybrid_corpus: Collection[Any]) -> None:
    native = LeafRetriever(collection=hybrid_corpus, k=6, search_mode="hybrid", fulltext_weight=1.5)
    client = LeafRetriever(collection=hybrid_corpus, k=6, search_mode="hybrid", fulltext_weight=1.5, fusion="client")
    for query in list(QUERIES)[:4]:
        a, b = native.invoke(query), client.invoke(query)
        assert ids(a) == ids(b)
        assert [d.metadata["score"] for d in a] == pytest.approx([d.metadata["score"] for d in b])


async def test_hybrid_sync_and_async_identical(
    hybrid_corpus: Collection[Any], async_mongo_client: AsyncMongoClient[Any], mongo_uri: str
) -> None:
    from motor.motor_asyncio import AsyncIOMotorClient

    acoll = async_mongo_client[hybrid_corpus.database.name][hybrid_corpus.name]
    motor = AsyncIOMotorClient(mongo_uri)
    try:
        mcoll = motor[hybrid_corpus.database.name][hybrid_corpus.name]
        for mode, fusion in (("hybrid", "native"), ("hybrid", "client"), ("fulltext", "native")):
            kw: dict[str, Any] = {"k": 5, "search_mode": mode, "fusion": fusion, "pre_filter": {"chunk": 0}}
            sync = LeafRetriever(collection=hybrid_corpus, **kw)
            for async_coll in (acoll, mcoll):
                ar = LeafRetriever(async_collection=async_coll, **kw)
                for query in QUERIES:
                    expected = [(d.id, d.metadata) for d in await asyncio.to_thread(sync.invoke, query)]
                    assert expected or mode == "fulltext"  # BM25 finds nothing without a shared word
                    assert [(d.id, d.metadata) for d in await ar.ainvoke(query)] == expected
    finally:
        motor.close()


def test_collection_without_fulltext_says_so(database: Database[Any], minilm_path: str) -> None:
    coll, _ = build_corpus(database, minilm_path)  # spec without full-text paths (LEAF_MONGO_FULLTEXT=false)
    for mode in ("fulltext", "hybrid"):
        with pytest.raises(SpecMismatchError, match="without a full-text index.*LEAF_MONGO_FULLTEXT"):
            LeafRetriever(collection=coll, search_mode=mode).invoke("volcano")
    with pytest.raises(SpecMismatchError, match="without a full-text index"):
        LeafRetriever(collection=coll).invoke("volcano", search_mode="hybrid")


def test_missing_fulltext_index_is_not_answered_with_silence(database: Database[Any], minilm_path: str) -> None:
    coll, spec = build_corpus(database, minilm_path)
    save_spec(coll, spec.model_copy(update={"fulltext_fields": FULLTEXT_FIELDS}), INDEX, FT)
    with pytest.raises(SearchIndexError, match="no search index named 'leaf_fulltext_index'"):
        LeafRetriever(collection=coll, search_mode="hybrid").invoke("volcano")


def test_fulltext_index_definition_shape() -> None:
    from tests.test_query_retriever import make_spec

    spec = make_spec("m").model_copy(update={"fulltext_fields": FULLTEXT_FIELDS})
    d = fulltext_index_definition(spec)
    assert d["mappings"]["dynamic"] is False
    for path in FULLTEXT_FIELDS:
        assert d["mappings"]["fields"][path] == {"type": "string", "analyzer": "lucene.standard"}
    assert {"type": "token"} in d["mappings"]["fields"]["category"]
    assert {"type": "number"} in d["mappings"]["fields"]["chunk"]


def test_server_without_rank_fusion_gets_one_clear_message(minilm_path: str) -> None:
    # An 8.0 server answers $rankFusion with "Unrecognized pipeline stage name" (code 40324): the
    # retriever says which version is needed and how to fuse on the client, and never returns [].
    from pymongo import MongoClient

    with MongoEmulator(server_version="8.0.4") as old:
        client: MongoClient[Any] = MongoClient(old.uri)
        try:
            coll = build_hybrid(client["old"], minilm_path)
            r = LeafRetriever(collection=coll, k=3, search_mode="hybrid")
            with pytest.raises(ServerError) as info:
                r.invoke("biggest planet orbiting the sun")
            msg = str(info.value)
            assert "$rankFusion" in msg and "8.1" in msg and "fusion='client'" in msg
            docs = r.invoke("biggest planet orbiting the sun", search_mode="fulltext")
            assert docs  # full text alone needs no fusion stage
            client_side = LeafRetriever(collection=coll, k=3, search_mode="hybrid", fusion="client")
            assert ids(client_side.invoke("biggest planet orbiting the sun"))[0] == "jupiter"
        finally:
            client.close()


def test_rescore_is_vector_only(hybrid_corpus: Collection[Any]) -> None:
    from leaf_mongo import LeafMongoError

    with pytest.raises(LeafMongoError, match="rescore applies to vector search only"):
        LeafRetriever(collection=hybrid_corpus, search_mode="hybrid", rescore=True).invoke("x")
