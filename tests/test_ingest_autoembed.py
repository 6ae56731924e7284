"""``ingest --autoembed`` and the retriever on an autoEmbed collection, end to end: the emulator with a running
``leaf-mongo serve`` as its provider. The chunks are written without vectors (no model loads in this process),
mongot's part embeds them through the service's teacher and the query through its leaf, and the top 10 equal the
client-side asymmetric path (teacher vectors written by ingest, leaf query vectors made here) on the same chunks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sentence_transformers
from pymongo import MongoClient
from typer.testing import CliRunner

from leaf_mongo import LeafRetriever, ingest, load_settings
from leaf_mongo.cli.app import app
from leaf_mongo.errors import SettingsError, SpecMismatchError
from leaf_mongo.spec.index import vector_index_definition
from leaf_mongo.spec.vector_spec import VectorSpec
from leaf_mongo.testing import MongoEmulator
from tests.autoembed_helpers import embedding_config, scripted_provider, serve_leaf_ir_pair
from tests.serve_helpers import ROOT


@pytest.fixture(scope="module")
def serve(models: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    yield from serve_leaf_ir_pair(models, tmp_path_factory.mktemp("serve"))


def _top10(settings: Any, query: str, **kw: Any) -> list[tuple[str, float]]:
    retriever = LeafRetriever.from_settings(settings, k=10, search_mode="vector", leaf_backend="torch", **kw)
    try:
        return [(d.page_content, float(d.metadata["score"])) for d in retriever.invoke(query)]
    finally:
        retriever.close()


def test_ingest_autoembed_then_query_text_equals_the_client_side_path(
    serve: tuple[Any, Path], models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, root = serve
    config = embedding_config(server.url + "/v1/embeddings", root)
    with MongoEmulator(embedding=config) as emulator:
        common: dict[str, Any] = dict(
            uri=emulator.uri, database="kb", teacher_model=models["arctic"], leaf_model=models["leaf-ir"],
            dimensions=32, chunk_size=96, chunk_overlap=16, index_wait_seconds=60, fulltext=False,
        )  # fmt: skip
        plain = load_settings(collection="plain", **common)
        ingest([ROOT / "docs"], plain)
        auto = load_settings(collection="auto", autoembed_model="voyage-4", **common)

        def no_model(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("a model was loaded in the ingesting/querying process")

        with monkeypatch.context() as m:
            m.setattr(sentence_transformers.SentenceTransformer, "__init__", no_model)
            report = ingest([ROOT / "docs"], auto)
            assert report.chunks_written > 20 and report.index_action == "created"
            queries = ["how does ingest write chunks", "what does leaf-mongo serve answer", "scale to millions"]
            by_text = {q: _top10(auto, q) for q in queries}
        with MongoClient(emulator.uri) as client:
            chunks = {c: sorted(d["text"] for d in client.kb[c].find()) for c in ("plain", "auto")}
            assert chunks["auto"] == chunks["plain"]  # the same chunks: the tokenizer alone cuts as the model does
            assert client.kb.auto.find_one({"embedding": {"$exists": True}}) is None  # no vectors written
        distinct: set[float] = set()
        for q in queries:
            want = _top10(plain, q)
            got = by_text[q]
            assert len(got) == 10
            # The same chunks scored the same (to float32 noise), in the same order up to exact ties.
            np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
            ties = {t for t, s in want if sum(abs(s - s2) < 1e-5 for _, s2 in want) > 1}
            assert [t for t, _ in got if t not in ties] == [t for t, _ in want if t not in ties]
            distinct |= {s for _, s in want}
            # The client-side leaf queryVector against the autoEmbed index gives the same top 10 too.
            by_vector = _top10(auto, q, autoembed_query="vector")
            np.testing.assert_allclose([s for _, s in by_vector], [s for _, s in want], atol=1e-5)
        # The scores discriminate (the order checks above mean something). Over the three queries: the tiny random
        # model scores a top 10 within ~1e-4, so one query's top 10 of the repository's docs (a corpus every doc
        # edit changes) can hold as few as 3 distinct values.
        assert len(distinct) >= 6


def test_cli_ingest_autoembed_and_search_by_text(serve: tuple[Any, Path], models: dict[str, str]) -> None:
    server, root = serve
    config = embedding_config(server.url + "/v1/embeddings", root)
    with MongoEmulator(embedding=config) as emulator:
        env = {
            "LEAF_MONGO_URI": emulator.uri, "LEAF_MONGO_DATABASE": "kb", "LEAF_MONGO_COLLECTION": "chunks",
            "LEAF_MONGO_TEACHER_MODEL": models["arctic"], "LEAF_MONGO_LEAF_MODEL": models["leaf-ir"],
            "LEAF_MONGO_DIMENSIONS": "32", "LEAF_MONGO_CHUNK_SIZE": "96", "LEAF_MONGO_CHUNK_OVERLAP": "16",
            "LEAF_MONGO_FULLTEXT": "false", "COLUMNS": "200",
        }  # fmt: skip
        result = CliRunner().invoke(app, ["ingest", "--autoembed", str(ROOT / "docs"), "--json"], env=env)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["chunks_written"] > 20
        with MongoClient(emulator.uri) as client:
            (index,) = list(client.kb.chunks.list_search_indexes())  # --no-fulltext: the vector index alone
            field = index["latestDefinition"]["fields"][0]
            assert field == {
                "type": "autoEmbed", "modality": "text", "path": "text", "model": "voyage-4", "numDimensions": 32,
                "quantization": "float", "similarity": "cosine",
            }  # fmt: skip
        query = ["search", "how does ingest write chunks", "--json", "-k", "10"]
        by_text = json.loads(CliRunner().invoke(app, query, env=env).stdout)
        result = CliRunner().invoke(app, [*query, "--autoembed-query", "vector", "--leaf-backend", "torch"], env=env)
        by_vector = json.loads(result.stdout)
        assert len(by_text) == 10
        np.testing.assert_allclose([r["score"] for r in by_text], [r["score"] for r in by_vector], atol=1e-5)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"autoembed_model": "text-embedding-3-small"}, "not in mongot's catalog"),
        ({"quantization": "scalar"}, "no autoEmbed equivalent"),
        ({"dtype": "int8", "full_precision_field": "f"}, "STORE_FULL_PRECISION"),
    ],
)
def test_spec_refuses_what_autoembed_cannot_express(change: dict[str, Any], fragment: str) -> None:
    base: dict[str, Any] = dict(teacher_model="t", leaf_model="l", full_dimensions=64, dimensions=64)
    with pytest.raises(SettingsError, match=fragment):
        VectorSpec(**{**base, "autoembed_model": "voyage-4", **change})


@pytest.mark.parametrize(
    ("dtype", "quantization", "similarity", "auto"),
    [
        ("float32", "none", "cosine", "float"),
        ("float32", "binary", "cosine", "binary"),
        ("int8", "none", "dotProduct", "scalar"),
        ("binary", "none", "euclidean", "binaryNoRescore"),
    ],
)
def test_autoembed_index_definition_from_the_spec(dtype: str, quantization: str, similarity: str, auto: str) -> None:
    spec = VectorSpec(
        teacher_model="t", leaf_model="l", full_dimensions=64, dimensions=64, dtype=dtype,
        quantization=quantization, similarity=similarity, autoembed_model="voyage-4-lite",
    )  # fmt: skip
    fields = vector_index_definition(spec)["fields"]
    assert fields[0] == {
        "type": "autoEmbed", "modality": "text", "path": "text", "model": "voyage-4-lite", "numDimensions": 64,
        "quantization": auto, "similarity": similarity,
    }  # fmt: skip
    assert fields[1:] == [{"type": "filter", "path": "source"}]


def test_changed_autoembed_options_need_recreate(models: dict[str, str], tmp_path: Path) -> None:
    """mongot cannot update autoEmbed fields: a changed similarity is a storage conflict (--recreate rebuilds)."""
    with scripted_provider() as provider, MongoEmulator(embedding=embedding_config(provider.url, tmp_path)) as emu:
        common: dict[str, Any] = dict(
            uri=emu.uri, database="kb", collection="c", teacher_model=models["arctic"], leaf_model=models["leaf-ir"],
            dimensions=32, index_wait_seconds=60, fulltext=False, autoembed_model="voyage-4",
        )  # fmt: skip
        ingest([ROOT / "docs" / "faq.md"], load_settings(**common))
        with pytest.raises(SpecMismatchError, match="--recreate"):
            ingest([ROOT / "docs" / "faq.md"], load_settings(similarity="dotProduct", **common))
        report = ingest([ROOT / "docs" / "faq.md"], load_settings(similarity="dotProduct", **common), recreate=True)
        assert report.index_action == "created"
