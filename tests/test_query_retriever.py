"""LeafRetriever against the emulator (or a real server via LEAF_MONGO_TEST_URI) with the offline model.

The fixture corpus is ten one-sentence chunks on distinct topics, written in the shape ingest writes
(``text``, BSON ``embedding``, optional ``embedding_full``, ``source``, ``chunk``, ...), with the spec saved
beside it and the index waited on; every wait polls, so a real mongot's lag is tolerated.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure

from leaf_mongo import FilterError, LeafMongoError, SearchIndexError, SpecMismatchError, VectorSpec, load_settings
from leaf_mongo.models.encoders import VectorEncoder
from leaf_mongo.query.filters import check_filter_operators, validate_pre_filter
from leaf_mongo.query.pipelines import num_candidates_for
from leaf_mongo.query.retriever import LeafRetriever
from leaf_mongo.spec.index import ensure_vector_index, wait_for_vector_index
from leaf_mongo.spec.store import save_spec
from leaf_mongo.spec.vectors import to_binary

INDEX = "leaf_vector_index"
WAIT = 180.0  # a real Community mongot refreshes index status every few seconds

# id, category, text
CORPUS: list[tuple[str, str, str]] = [
    (
        "photosynthesis",
        "science",
        "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into sugar.",
    ),
    ("eiffel", "travel", "The Eiffel Tower is a wrought-iron lattice tower in Paris, France, finished in 1889."),
    ("python", "tech", "Python is a programming language known for its readable syntax and large standard library."),
    ("volcano", "science", "Volcanoes erupt when molten magma rises through cracks in the Earth's crust."),
    ("basketball", "sports", "Basketball is played by two teams of five who score by shooting a ball through a hoop."),
    ("cookies", "food", "Chocolate chip cookies are baked from butter, sugar, flour, eggs and chocolate chips."),
    ("stocks", "finance", "On the stock market investors buy and sell shares of publicly traded companies."),
    ("jupiter", "science", "Jupiter is the largest planet in the solar system, a gas giant with a great red spot."),
    ("vaccines", "health", "Vaccines train the immune system to recognize and fight specific viruses."),
    ("guitar", "music", "A classical guitar has six nylon strings that are plucked with the fingers."),
]
TEXT = {doc_id: text for doc_id, _, text in CORPUS}
QUERIES: dict[str, str] = {
    "how do plants make food from light": "photosynthesis",
    "famous iron landmark in France": "eiffel",
    "which coding language is easy to read": "python",
    "what makes a volcano erupt": "volcano",
    "biggest planet orbiting the sun": "jupiter",
    "ingredients for baking cookies": "cookies",
    "how does immunization protect against disease": "vaccines",
    "trading shares of companies": "stocks",
}
FILTER_FIELDS = ("source", "category", "chunk")


def make_spec(model: str, dtype: str = "float32", *, dimensions: int = 384, full_precision: bool = False) -> VectorSpec:
    return VectorSpec(
        teacher_model=model,
        leaf_model=model,
        full_dimensions=384,
        dimensions=dimensions,
        dtype=dtype,  # type: ignore[arg-type]
        similarity="euclidean" if dtype == "binary" else "cosine",
        query_prompt="",
        full_precision_field="embedding_full" if full_precision else None,
        filter_fields=FILTER_FIELDS,
    )


def wait_searchable(coll: Collection[Any], spec: VectorSpec, probe: Any, expected: int, index: str = INDEX) -> None:
    """Poll an exact search until every document is visible (index build + change-stream lag)."""
    deadline = time.monotonic() + WAIT
    pipeline = [
        {"$vectorSearch": {"index": index, "path": spec.embedding_field, "queryVector": probe, "exact": True,
                           "limit": expected}},
        {"$project": {"_id": 1}},
    ]  # fmt: skip
    seen = -1
    while True:
        try:
            seen = len(list(coll.aggregate(pipeline)))
        except OperationFailure as exc:
            if "cannot query vector index" not in str(exc):
                raise
        if seen == expected or time.monotonic() > deadline:
            assert seen == expected, f"only {seen} of {expected} documents searchable after {WAIT} s"
            return
        time.sleep(0.2)


def build_corpus(
    database: Database[Any],
    model: str,
    dtype: str = "float32",
    *,
    name: str = "chunks",
    dimensions: int = 384,
    full_precision: bool = False,
) -> tuple[Collection[Any], VectorSpec]:
    """Write the fixture corpus as ingest would (chunk shape, spec, index) and wait until searchable."""
    spec = make_spec(model, dtype, dimensions=dimensions, full_precision=full_precision)
    encoder = VectorEncoder(spec)
    emb = encoder.embed_documents([text for _, _, text in CORPUS])
    stored = encoder.stored_vectors(emb)
    coll = database[name]
    docs = []
    for (doc_id, category, text), vec, full in zip(CORPUS, stored, emb, strict=True):
        doc: dict[str, Any] = {
            "_id": doc_id,
            "text": text,
            "embedding": vec,
            "source": f"{category}/{doc_id}.md",
            "chunk": 0,
            "content_hash": f"hash-{doc_id}",
            "title": doc_id.capitalize(),
            "headings": [doc_id.capitalize()],
            "record_id": None,
            "category": category,
        }
        if full_precision:
            doc["embedding_full"] = to_binary(full, "float32")
        docs.append(doc)
    coll.insert_many(docs)
    save_spec(coll, spec, INDEX)
    ensure_vector_index(coll, INDEX, spec)
    wait_for_vector_index(coll, INDEX, timeout=WAIT)
    wait_searchable(coll, spec, stored[0], len(docs))
    return coll, spec


class Recording:
    """A collection proxy that records every aggregate pipeline (to prove what is, or is not, sent)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.pipelines: list[list[dict[str, Any]]] = []

    def aggregate(self, pipeline: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        self.pipelines.append(pipeline)
        return self._inner.aggregate(pipeline, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def ids(docs: list[Any]) -> list[str]:
    return [d.id for d in docs]


@pytest.fixture
def float_corpus(database: Database[Any], minilm_path: str) -> Collection[Any]:
    return build_corpus(database, minilm_path)[0]


# ---------------------------------------------------------------------------------------------- no server


def test_num_candidates_default_and_clamps() -> None:
    assert num_candidates_for(4) == 80
    assert num_candidates_for(4, factor=10) == 40
    assert num_candidates_for(600) == 10_000
    assert num_candidates_for(10, num_candidates=3) == 10
    assert num_candidates_for(10, num_candidates=50_000) == 10_000


@pytest.mark.parametrize(
    "flt",
    [
        {"source": "a.md"},
        {"source": {"$eq": "a.md"}},
        {"chunk": {"$gte": 1, "$lt": 5}},
        {"source": {"$in": ["a", "b"]}, "chunk": {"$ne": 0}},
        {"source": {"$not": {"$in": ["a"]}}},
        {"$or": [{"source": "a"}, {"$and": [{"chunk": {"$gt": 2}}, {"category": {"$exists": True}}]}]},
        {"$nor": [{"category": "food"}]},
    ],
)
def test_valid_filters_pass(flt: dict[str, Any]) -> None:
    validate_pre_filter(flt, FILTER_FIELDS, "db.c")


@pytest.mark.parametrize(
    ("flt", "needle"),
    [
        ({"source": {"$regex": "^a"}}, "operator '$regex' on field 'source'"),
        ({"$where": "1"}, "operator '$where'"),
        ({"$or": [{"chunk": {"$size": 2}}]}, "operator '$size' on field 'chunk'"),
        ({"source": {"$not": {"$elemMatch": {}}}}, "operator '$elemMatch'"),
        ({"$and": []}, "$and needs a non-empty list"),
        ({"source": {"$in": "a"}}, "$in on field 'source' needs a list"),
        ({"source": {"nested": 1}}, "embedded document"),
    ],
)
def test_bad_filter_operators_fail_clearly(flt: dict[str, Any], needle: str) -> None:
    with pytest.raises(FilterError) as err:
        check_filter_operators(flt)
    assert needle in str(err.value)
    if "operator '" in needle:
        assert "allowed operators: $eq $ne $gt $lt $gte $lte $in $nin $exists $not $and $or $nor" in str(err.value)


def test_undeclared_filter_field_names_field_and_allowed() -> None:
    with pytest.raises(FilterError) as err:
        validate_pre_filter({"$or": [{"source": "a"}, {"author": "me"}]}, FILTER_FIELDS, "db.chunks")
    assert "'author' is not a filter field of db.chunks; allowed: source, category, chunk" in str(err.value)


def test_bad_operator_fails_at_construction() -> None:
    with pytest.raises(FilterError, match=r"\$regex"):
        LeafRetriever(collection=None, pre_filter={"source": {"$regex": "x"}})


def test_invoke_without_collection_says_what_is_needed() -> None:
    with pytest.raises(LeafMongoError, match="invoke needs collection="):
        LeafRetriever().invoke("q")
    with pytest.raises(LeafMongoError, match="ainvoke needs async_collection="):
        asyncio.run(LeafRetriever().ainvoke("q"))


# ---------------------------------------------------------------------------------------------- top hits


def test_float32_top_hits(float_corpus: Collection[Any]) -> None:
    retriever = LeafRetriever(collection=float_corpus, index_name=INDEX, k=3)
    for query, expected in QUERIES.items():
        docs = retriever.invoke(query)
        assert docs[0].id == expected, (query, ids(docs))
        assert len(docs) == 3
        scores = [d.metadata["score"] for d in docs]
        assert scores == sorted(scores, reverse=True)
    top = retriever.invoke("biggest planet orbiting the sun")[0]
    assert top.page_content == TEXT["jupiter"]
    assert top.metadata["source"] == "science/jupiter.md"
    assert top.metadata["chunk"] == 0
    assert top.metadata["title"] == "Jupiter"
    assert top.metadata["headings"] == ["Jupiter"]
    assert "embedding" not in top.metadata and "text" not in top.metadata and "_id" not in top.metadata


@pytest.mark.parametrize("dtype", ["int8", "binary"])
def test_quantized_storage_top_hits(database: Database[Any], minilm_path: str, dtype: str) -> None:
    coll, spec = build_corpus(database, minilm_path, dtype)
    recorder = Recording(coll)
    retriever = LeafRetriever(collection=recorder, k=3)
    for query, expected in QUERIES.items():
        assert retriever.invoke(query)[0].id == expected, (dtype, query)
    vector = recorder.pipelines[-1][0]["$vectorSearch"]["queryVector"]
    assert vector.as_vector().dtype.name == {"int8": "INT8", "binary": "PACKED_BIT"}[dtype]


def test_pipeline_shape(float_corpus: Collection[Any]) -> None:
    recorder = Recording(float_corpus)
    LeafRetriever(collection=recorder, k=4).invoke("planets")
    LeafRetriever(collection=recorder, k=2, exact=True, num_candidates_factor=5).invoke("planets")
    LeafRetriever(collection=recorder, k=2, num_candidates=7, score_threshold=0.1).invoke("planets")
    first, exact, explicit = recorder.pipelines
    search = first[0]["$vectorSearch"]
    assert {k: v for k, v in search.items() if k != "queryVector"} == {
        "index": INDEX,
        "path": "embedding",
        "limit": 4,
        "numCandidates": 80,
    }
    assert search["queryVector"].as_vector().dtype.name == "FLOAT32"
    assert first[1:] == [{"$set": {"score": {"$meta": "vectorSearchScore"}}}, {"$project": {"embedding": 0}}]
    assert exact[0]["$vectorSearch"]["exact"] is True and "numCandidates" not in exact[0]["$vectorSearch"]
    assert explicit[0]["$vectorSearch"]["numCandidates"] == 7
    assert explicit[-1] == {"$match": {"score": {"$gte": 0.1}}}


def test_teacher_mode_matches_when_teacher_is_leaf(float_corpus: Collection[Any]) -> None:
    asym = LeafRetriever(collection=float_corpus, k=5)
    teacher = LeafRetriever(collection=float_corpus, k=5, query_mode="teacher")
    for query in QUERIES:
        assert ids(asym.invoke(query)) == ids(teacher.invoke(query))


def test_exact_and_per_call_options(float_corpus: Collection[Any]) -> None:
    retriever = LeafRetriever(collection=float_corpus, k=2, exact=True)
    assert len(retriever.invoke("planets")) == 2
    docs = retriever.invoke("planets", k=6, pre_filter={"category": "science"})
    assert {d.metadata["category"] for d in docs} == {"science"} and len(docs) == 3
    with pytest.raises(TypeError, match="unexpected search options"):
        retriever.invoke("planets", limit=3)


# ---------------------------------------------------------------------------------------------- filters


def test_pre_filter_restricts_results(float_corpus: Collection[Any]) -> None:
    science = LeafRetriever(collection=float_corpus, k=10, pre_filter={"category": "science"})
    docs = science.invoke("famous iron landmark in France")
    assert sorted(ids(docs)) == ["jupiter", "photosynthesis", "volcano"]
    in_filter = LeafRetriever(
        collection=float_corpus, k=10, pre_filter={"source": {"$in": ["travel/eiffel.md", "food/cookies.md"]}}
    )
    assert sorted(ids(in_filter.invoke("anything"))) == ["cookies", "eiffel"]
    logical = LeafRetriever(
        collection=float_corpus,
        k=10,
        pre_filter={"$or": [{"category": "music"}, {"category": {"$eq": "sports"}}], "chunk": {"$gte": 0}},
    )
    assert sorted(ids(logical.invoke("anything"))) == ["basketball", "guitar"]
    negated = LeafRetriever(collection=float_corpus, k=10, pre_filter={"category": {"$nin": ["science", "tech"]}})
    assert len(negated.invoke("anything")) == 6


def test_undeclared_field_fails_before_any_search(float_corpus: Collection[Any]) -> None:
    recorder = Recording(float_corpus)
    retriever = LeafRetriever(collection=recorder, pre_filter={"title": "Jupiter"})
    with pytest.raises(FilterError, match="'title' is not a filter field of .*allowed: source, category, chunk"):
        retriever.invoke("planets")
    ok = LeafRetriever(collection=recorder)
    with pytest.raises(FilterError, match=r"operator '\$regex'"):
        ok.invoke("planets", pre_filter={"source": {"$regex": "^s"}})
    with pytest.raises(FilterError, match="'author' is not a filter field"):
        ok.invoke("planets", pre_filter={"author": "x"})
    assert recorder.pipelines == []  # nothing was ever sent


def test_score_threshold_and_post_filter(float_corpus: Collection[Any]) -> None:
    everything = LeafRetriever(collection=float_corpus, k=10).invoke("biggest planet orbiting the sun")
    cut = (everything[1].metadata["score"] + everything[2].metadata["score"]) / 2
    kept = LeafRetriever(collection=float_corpus, k=10, score_threshold=cut).invoke("biggest planet orbiting the sun")
    assert ids(kept) == ids(everything)[:2]
    post = LeafRetriever(
        collection=float_corpus,
        k=10,
        post_filter_pipeline=[{"$match": {"category": "science"}}, {"$project": {"headings": 0}}],
    ).invoke("biggest planet orbiting the sun")
    assert ids(post) == [d.id for d in everything if d.metadata["category"] == "science"]
    assert all("headings" not in d.metadata for d in post)


def test_metadata_values_made_json_friendly(database: Database[Any], minilm_path: str) -> None:
    coll, _ = build_corpus(database, minilm_path)
    oid = ObjectId()
    when = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    coll.update_one({"_id": "jupiter"}, {"$set": {"record_id": oid, "ingested_at": when, "refs": [oid]}})
    doc = LeafRetriever(collection=coll, k=1, exact=True).invoke("biggest planet orbiting the sun")[0]
    assert doc.metadata["record_id"] == str(oid)
    assert doc.metadata["ingested_at"].startswith("2024-05-01T12:00:00")
    assert doc.metadata["refs"] == [str(oid)]


# ---------------------------------------------------------------------------------------------- rescoring


def test_binary_rescoring_with_full_precision(database: Database[Any], minilm_path: str) -> None:
    coll, spec = build_corpus(database, minilm_path, "binary", full_precision=True)
    recorder = Recording(coll)
    retriever = LeafRetriever(collection=recorder, k=3, rescore=True, rescore_candidates=10)
    plain = LeafRetriever(collection=coll, k=3)
    encoder = VectorEncoder(make_spec(minilm_path))
    doc_emb = encoder.embed_documents([text for _, _, text in CORPUS])
    for query, expected in QUERIES.items():
        docs = retriever.invoke(query)
        assert docs[0].id == expected
        # Rescored = exact float cosine over the candidates: the float32 ranking and (1 + cos) / 2 scores.
        q = encoder.embed_queries([query])[0]
        sims = doc_emb @ q
        order = np.argsort(-sims)[:3]
        assert ids(docs) == [CORPUS[i][0] for i in order]
        assert [d.metadata["score"] for d in docs] == pytest.approx([(1 + sims[i]) / 2 for i in order], abs=1e-5)
        assert all(0 < d.metadata["search_score"] <= 1 for d in docs)
        assert all("embedding_full" not in d.metadata and "embedding" not in d.metadata for d in docs)
        assert len(plain.invoke(query)) == 3
    sent = recorder.pipelines[-1]
    assert sent[0]["$vectorSearch"]["limit"] == 10 and sent[0]["$vectorSearch"]["numCandidates"] == 60
    assert sent[2] == {"$project": {"embedding": 0}}  # full-precision vectors come back only when rescoring
    thresholded = LeafRetriever(collection=coll, k=3, rescore=True, score_threshold=0.99)
    assert thresholded.invoke("biggest planet orbiting the sun") == []


def test_rescore_without_full_precision_fails_clearly(database: Database[Any], minilm_path: str) -> None:
    coll, _ = build_corpus(database, minilm_path, "int8")
    with pytest.raises(SpecMismatchError, match="without full-precision copies"):
        LeafRetriever(collection=coll, rescore=True).invoke("planets")


# ---------------------------------------------------------------------------------------------- async


async def test_sync_and_async_identical(
    database: Database[Any], async_mongo_client: AsyncMongoClient[Any], minilm_path: str
) -> None:
    coll, _ = await asyncio.to_thread(build_corpus, database, minilm_path, "int8")
    sync = LeafRetriever(collection=coll, k=4)
    acoll = async_mongo_client[database.name]["chunks"]
    aretriever = LeafRetriever(async_collection=acoll, k=4)
    inline = LeafRetriever(async_collection=acoll, k=4, encode_in_thread=False)
    for query in QUERIES:
        expected = [(d.id, d.page_content, d.metadata) for d in await asyncio.to_thread(sync.invoke, query)]
        assert [(d.id, d.page_content, d.metadata) for d in await aretriever.ainvoke(query)] == expected
        assert [(d.id, d.page_content, d.metadata) for d in await inline.ainvoke(query)] == expected


async def test_motor_collection(database: Database[Any], mongo_uri: str, minilm_path: str) -> None:
    from motor.motor_asyncio import AsyncIOMotorClient

    coll, _ = await asyncio.to_thread(build_corpus, database, minilm_path)
    client: Any = AsyncIOMotorClient(mongo_uri)
    try:
        retriever = LeafRetriever(async_collection=client[database.name]["chunks"], k=2)
        for query, expected in QUERIES.items():
            assert (await retriever.ainvoke(query))[0].id == expected
        sync = await asyncio.to_thread(LeafRetriever(collection=coll, k=2).invoke, "what makes a volcano erupt")
        assert ids(await retriever.ainvoke("what makes a volcano erupt")) == ids(sync)
    finally:
        client.close()


async def test_32_concurrent_ainvoke(
    database: Database[Any], async_mongo_client: AsyncMongoClient[Any], minilm_path: str
) -> None:
    await asyncio.to_thread(build_corpus, database, minilm_path)
    retriever = LeafRetriever(async_collection=async_mongo_client[database.name]["chunks"], k=3)
    items = list(QUERIES.items()) * 4
    results = await asyncio.gather(*(retriever.ainvoke(q) for q, _ in items))
    assert len(results) == 32
    assert [r[0].id for r in results] == [expected for _, expected in items]


async def test_async_spec_mismatch_and_missing_spec(
    database: Database[Any], async_mongo_client: AsyncMongoClient[Any], minilm_path: str
) -> None:
    await asyncio.to_thread(build_corpus, database, minilm_path)
    adb = async_mongo_client[database.name]
    with pytest.raises(SpecMismatchError, match="dimensions: stored 384, requested 128"):
        await LeafRetriever(async_collection=adb["chunks"], dimensions=128).ainvoke("q")
    await adb["empty"].insert_one({"_id": 1, "text": "x"})
    with pytest.raises(SpecMismatchError, match=r"\.empty has no leaf-mongo spec: ingest first"):
        await LeafRetriever(async_collection=adb["empty"]).ainvoke("q")


# ---------------------------------------------------------------------------------------------- mismatches


def test_no_stored_spec_fails_clearly(database: Database[Any]) -> None:
    database["raw"].insert_one({"_id": 1, "text": "no spec here"})
    with pytest.raises(SpecMismatchError) as err:
        LeafRetriever(collection=database["raw"]).invoke("q")
    assert str(err.value).startswith(f"collection {database.name}.raw has no leaf-mongo spec: ingest first")


def test_leaf_model_of_other_dimension_is_refused(database: Database[Any], minilm_path: str, tmp_path: Path) -> None:
    from tests.tiny_models import make_tiny_model

    coll, spec = build_corpus(database, minilm_path, dimensions=256)
    assert spec.dimensions == 256
    assert LeafRetriever(collection=coll, k=1).invoke("biggest planet orbiting the sun")[0].id == "jupiter"
    tiny = make_tiny_model(tmp_path / "tiny", dimensions=32)
    recorder = Recording(coll)
    with pytest.raises(SpecMismatchError) as err:
        LeafRetriever(collection=recorder, leaf_model=str(tiny)).invoke("q")
    assert "produces 32-d vectors" in str(err.value) and "384-d" in str(err.value)
    with pytest.raises(SpecMismatchError, match="dimensions: stored 256, requested 384"):
        LeafRetriever(collection=recorder, dimensions=384).invoke("q")
    with pytest.raises(SpecMismatchError, match="dtype: stored 'float32', requested 'binary'"):
        LeafRetriever(collection=recorder, dtype="binary").invoke("q")
    assert recorder.pipelines == []


def test_missing_index_is_not_answered_with_silence(float_corpus: Collection[Any]) -> None:
    with pytest.raises(SearchIndexError, match="no search index named 'typo_index'"):
        LeafRetriever(collection=float_corpus, index_name="typo_index").invoke("q")


def test_spec_is_read_once(float_corpus: Collection[Any]) -> None:
    retriever = LeafRetriever(collection=float_corpus, k=1)
    assert retriever.spec is None
    retriever.invoke("planets")
    spec = retriever.spec
    assert spec is not None and spec.dimensions == 384
    float_corpus.database["leaf_mongo_specs"].delete_many({})
    assert retriever.invoke("biggest planet orbiting the sun")[0].id == "jupiter"  # cached


# ---------------------------------------------------------------------------------------------- settings, LCEL


def test_from_settings_sync_and_async(float_corpus: Collection[Any], mongo_uri: str) -> None:
    settings = load_settings(uri=mongo_uri, database=float_corpus.database.name, collection="chunks", k=2)
    retriever = LeafRetriever.from_settings(settings)
    try:
        assert ids(retriever.invoke("biggest planet orbiting the sun"))[0] == "jupiter"
        assert len(retriever.invoke("x")) == 2

        async def run() -> list[str]:
            try:
                return ids(await retriever.ainvoke("biggest planet orbiting the sun"))
            finally:
                await retriever.aclose()

        assert asyncio.run(run())[0] == "jupiter"
        assert asyncio.run(run())[0] == "jupiter"  # a second event loop gets its own client
    finally:
        retriever.close()


def test_retriever_in_lcel_chain(float_corpus: Collection[Any]) -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    retriever = LeafRetriever(collection=float_corpus, k=2)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the context.\n{context}"), ("human", "{question}")]
    )
    seen: list[str] = []

    def capture(value: Any) -> Any:
        seen.append(value.to_string())
        return value

    def join(docs: list[Any]) -> str:
        return "\n".join(d.page_content for d in docs)

    llm = FakeListChatModel(responses=["Jupiter.", "Jupiter again."])
    chain = (
        {"context": retriever | RunnableLambda(join), "question": RunnablePassthrough()}
        | prompt
        | RunnableLambda(capture)
        | llm
        | StrOutputParser()
    )
    assert chain.invoke("biggest planet orbiting the sun") == "Jupiter."
    assert TEXT["jupiter"] in seen[0] and "biggest planet orbiting the sun" in seen[0]
    assert isinstance(chain.batch(["what makes a volcano erupt"])[0], str)
    assert TEXT["volcano"] in seen[1]


async def test_retriever_in_async_lcel_chain(
    database: Database[Any], async_mongo_client: AsyncMongoClient[Any], minilm_path: str
) -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnablePassthrough

    await asyncio.to_thread(build_corpus, database, minilm_path)
    retriever = LeafRetriever(async_collection=async_mongo_client[database.name]["chunks"], k=1)
    prompt = ChatPromptTemplate.from_template("Context: {context}\nQuestion: {question}")
    contexts: list[str] = []

    async def fmt(docs: list[Any]) -> str:
        contexts.append(docs[0].page_content)
        return docs[0].page_content

    chain = (
        {"context": retriever | fmt, "question": RunnablePassthrough()}
        | prompt
        | FakeListChatModel(responses=["ok"])
        | StrOutputParser()
    )
    assert await chain.ainvoke("ingredients for baking cookies") == "ok"
    assert contexts == [TEXT["cookies"]]
