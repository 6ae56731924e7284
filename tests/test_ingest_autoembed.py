"""``ingest --autoembed`` and the retriever on an autoEmbed collection, end to end: the emulator with a running
``leaf-mongo serve`` as its provider. The chunks are written without vectors (no model loads in this process),
mongot's part embeds them through the service's teacher and the query through its leaf, and the top 10 equal the
client-side asymmetric path (teacher vectors written by ingest, leaf query vectors made here) on the same chunks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sentence_transformers
from pymongo import MongoClient

from leaf_mongo import LeafRetriever, ingest, load_settings
from leaf_mongo.testing import MongoEmulator
from tests.autoembed_helpers import embedding_config
from tests.serve_helpers import ROOT, ServeProcess


@pytest.fixture(scope="module")
def serve(models: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    root = tmp_path_factory.mktemp("serve")
    config = embedding_config("http://unused", root)
    args = [
        "--teacher-model", models["arctic"], "--leaf-model", models["leaf-ir"], "--leaf-backend", "torch",
        "--indexing-key-file", config.indexing_key_file, "--query-key-file", config.query_key_file,
    ]  # fmt: skip
    server = ServeProcess(args, root / "serve.log")
    yield server, root
    assert server.stop()


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
        for q in queries:
            want = _top10(plain, q)
            got = by_text[q]
            assert len(got) == 10
            # The same chunks scored the same (to float32 noise), in the same order up to exact ties.
            np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
            ties = {t for t, s in want if sum(abs(s - s2) < 1e-5 for _, s2 in want) > 1}
            assert [t for t, _ in got if t not in ties] == [t for t, _ in want if t not in ties]
            assert len({s for _, s in want}) >= 4  # the scores discriminate
            # The client-side leaf queryVector against the autoEmbed index gives the same top 10 too.
            by_vector = _top10(auto, q, autoembed_query="vector")
            np.testing.assert_allclose([s for _, s in by_vector], [s for _, s in want], atol=1e-5)
