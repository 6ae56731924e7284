"""Every published LEAF packaging, in its real module layout, gives the vectors its model card's snippet computes.

Tiny random-weight models are built in the layouts of arctic-embed-m-v1.5 (CLS + Normalize, a query prompt),
mxbai-embed-large-v1 (CLS, no Normalize), mdbr-leaf-ir (mean + Dense with bias + Normalize), mdbr-leaf-mt
(Dense without bias, no Normalize) and mdbr-leaf-*-asym (one Router model: leaf route for queries, teacher route
for documents). For each combination a user may configure, the stored document vectors and the query vectors
(seen through exact-search scores) must equal the card's ``encode_document`` / ``encode_query`` followed by MRL
truncation and renormalization, through ``leaf-mongo ingest``, ``leaf-mongo search`` and ``LeafRetriever``
(sync and async) against the server fixtures.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymongo import AsyncMongoClient
from pymongo.database import Database
from typer.testing import CliRunner

from leaf_mongo.cli.app import app
from leaf_mongo.query.retriever import LeafRetriever
from leaf_mongo.spec.vectors import from_binary
from tests.conftest import DOCS

QUERY = "which planet is the biggest"
DIMS = 16  # MRL truncation below the 32-d models, so renormalization is exercised too


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)[..., :DIMS]
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def card_vectors(document_model: str, query_model: str, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """What the model cards' own snippet computes (whole models, Router included), truncated and renormalized."""
    from sentence_transformers import SentenceTransformer

    docs = SentenceTransformer(document_model).encode_document(texts)
    query = SentenceTransformer(query_model).encode_query([QUERY])[0]
    return _unit(docs), _unit(query)


def _env(uri: str, db: str, document_model: str, query_model: str) -> dict[str, str]:
    return {
        "LEAF_MONGO_URI": uri,
        "LEAF_MONGO_DATABASE": db,
        "LEAF_MONGO_TEACHER_MODEL": document_model,
        "LEAF_MONGO_LEAF_MODEL": query_model,
        "LEAF_MONGO_DIMENSIONS": str(DIMS),
        "COLUMNS": "200",
    }


COMBINATIONS = {
    "arctic+leaf-ir": ("arctic", "leaf-ir"),
    "mxbai+leaf-mt": ("mxbai", "leaf-mt"),
    "ir-asym as documents + leaf-ir": ("ir-asym", "leaf-ir"),
    "arctic + ir-asym as queries": ("arctic", "ir-asym"),
    "ir-asym alone": ("ir-asym", "ir-asym"),
    "mt-asym alone": ("mt-asym", "mt-asym"),
}


@pytest.mark.parametrize("combo", list(COMBINATIONS))
def test_vectors_equal_the_model_cards(
    combo: str, models: dict[str, str], docs_dir: Path, mongo_uri: str, db_name: str, database: Database[Any]
) -> None:
    document_model, query_model = (models[k] for k in COMBINATIONS[combo])
    env = _env(mongo_uri, db_name, document_model, query_model)
    ingested = CliRunner().invoke(app, ["ingest", str(docs_dir), "--json"], env=env)
    assert ingested.exit_code == 0, ingested.output

    stored = {d["source"]: d for d in database["chunks"].find({})}
    assert set(stored) == set(DOCS)
    texts = [stored[s]["text"] for s in sorted(stored)]
    want_docs, want_query = card_vectors(document_model, query_model, texts)
    got_docs = np.stack([from_binary(stored[s]["embedding"]) for s in sorted(stored)])
    np.testing.assert_allclose(got_docs, want_docs, atol=1e-5)

    # Exact search: every score is (1 + cosine(query, doc)) / 2, so the scores pin the query vector down.
    want_scores = {s: (1 + float(want_query @ want_docs[i])) / 2 for i, s in enumerate(sorted(stored))}
    searched = CliRunner().invoke(app, ["search", QUERY, "--json", "--exact", "-k", "3"], env=env)
    assert searched.exit_code == 0, searched.output
    rows = json.loads(searched.stdout)
    assert {r["metadata"]["source"]: pytest.approx(want_scores[r["metadata"]["source"]], abs=1e-5) for r in rows} == {
        r["metadata"]["source"]: r["score"] for r in rows
    }

    retriever = LeafRetriever(collection=database["chunks"], k=3, exact=True)
    sync = {d.metadata["source"]: d.metadata["score"] for d in retriever.invoke(QUERY)}
    assert sync == pytest.approx(want_scores, abs=1e-5)

    async def run() -> dict[str, float]:
        client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_uri)
        try:
            r = LeafRetriever(async_collection=client[db_name]["chunks"], k=3, exact=True)
            return {d.metadata["source"]: d.metadata["score"] for d in await r.ainvoke(QUERY)}
        finally:
            await client.close()

    assert asyncio.run(run()) == pytest.approx(want_scores, abs=1e-5)


def test_asym_query_side_holds_only_the_query_route(models: dict[str, str]) -> None:
    from leaf_mongo.models.loading import load_model

    whole = sum(p.numel() for p in load_model(models["ir-asym"]).parameters())
    query = load_model(models["ir-asym"], task="query")
    leaf = sum(p.numel() for p in load_model(models["leaf-ir"]).parameters())
    assert sum(p.numel() for p in query.parameters()) == leaf < whole
    assert "Router" not in {type(m).__name__ for m in query}


def test_document_route_drives_chunking(models: dict[str, str]) -> None:
    """A Router teacher chunks with its document route's tokenizer and sequence limit, not the first route's."""
    from sentence_transformers import SentenceTransformer

    from leaf_mongo.models.encoders import SideEncoder

    side = SideEncoder(models["ir-asym"], "document")
    teacher = SentenceTransformer(models["arctic"])
    assert side.st_model.max_seq_length == teacher.max_seq_length
    assert side.st_model.tokenizer.vocab == teacher.tokenizer.vocab


def test_wrong_dimension_refused_before_anything_is_written(
    models: dict[str, str], docs_dir: Path, mongo_uri: str, db_name: str, database: Database[Any]
) -> None:
    env = {**_env(mongo_uri, db_name, models["arctic"], models["leaf-24"]), "LEAF_MONGO_DIMENSIONS": ""}
    env.pop("LEAF_MONGO_DIMENSIONS")
    result = CliRunner().invoke(app, ["ingest", str(docs_dir)], env=env)
    assert result.exit_code == 2, result.output
    assert "24-d" in result.output and "cannot be compared" in result.output
    assert database["chunks"].estimated_document_count() == 0
    assert "chunks" not in database.list_collection_names()


def test_other_space_refused_before_anything_is_written(
    models: dict[str, str], docs_dir: Path, mongo_uri: str, db_name: str, database: Database[Any], tmp_path: Path
) -> None:
    """A leaf distilled onto another teacher (its alignment card says so) cannot query this teacher's vectors."""
    import shutil

    leaf = tmp_path / "leaf-for-mxbai"
    shutil.copytree(models["leaf-ir"], leaf, symlinks=True)
    (leaf / "leaf_mongo_alignment.json").write_text(json.dumps({"teacher": models["mxbai"]}))
    result = CliRunner().invoke(
        app, ["ingest", str(docs_dir)], env=_env(mongo_uri, db_name, models["arctic"], str(leaf))
    )
    assert result.exit_code == 2, result.output
    assert "another space" in result.output
    assert "chunks" not in database.list_collection_names()


def test_configured_prompt_differing_from_recorded_is_refused(
    models: dict[str, str], docs_dir: Path, mongo_uri: str, db_name: str, database: Database[Any]
) -> None:
    env = {**_env(mongo_uri, db_name, models["arctic"], models["leaf-ir"]), "LEAF_MONGO_QUERY_PROMPT": "search: "}
    assert CliRunner().invoke(app, ["ingest", str(docs_dir)], env=env).exit_code == 0
    from leaf_mongo.spec.store import load_spec

    spec = load_spec(database["chunks"])
    assert spec is not None and spec.query_prompt == "search: " and spec.document_prompt == ""
    # Without the explicit setting, the leaf's own configured prompt disagrees with the recorded one.
    with pytest.raises(Exception, match="configured with the query prompt"):
        LeafRetriever(collection=database["chunks"], k=1).invoke(QUERY)
    # With it, the recorded prompt is reproduced.
    docs = LeafRetriever(collection=database["chunks"], k=1, query_prompt="search: ").invoke(QUERY)
    assert len(docs) == 1


def test_teacher_with_a_default_prompt(
    models: dict[str, str], docs_dir: Path, mongo_uri: str, db_name: str, database: Database[Any], tmp_path: Path
) -> None:
    """A teacher configured with a document prompt and a ``default_prompt_name``: the stored vectors are what its
    ``encode_document`` computes, and the spec records the prompt that was applied (the cache key's prompt)."""
    from sentence_transformers import SentenceTransformer

    from leaf_mongo.spec.store import load_spec

    teacher = SentenceTransformer(models["arctic"])
    teacher.prompts = {"query": "query: ", "document": "passage: ", "clustering": "cluster: "}
    teacher.default_prompt_name = "clustering"
    teacher.save(str(tmp_path / "prompted"))
    env = _env(mongo_uri, db_name, str(tmp_path / "prompted"), models["leaf-ir"])
    cache = tmp_path / "cache"
    result = CliRunner().invoke(app, ["ingest", str(docs_dir)], env={**env, "LEAF_MONGO_EMBEDDING_CACHE": str(cache)})
    assert result.exit_code == 0, result.output
    spec = load_spec(database["chunks"])
    assert spec is not None and spec.document_prompt == "passage: "
    stored = {d["source"]: d for d in database["chunks"].find({})}
    texts = [stored[s]["text"] for s in sorted(stored)]
    want = _unit(SentenceTransformer(str(tmp_path / "prompted")).encode_document(texts))
    np.testing.assert_allclose(np.stack([from_binary(stored[s]["embedding"]) for s in sorted(stored)]), want, atol=1e-5)
    from leaf_mongo.models.cache import open_cache

    cached = open_cache(cache).get_many(str(tmp_path / "prompted"), "passage: ", texts)
    assert all(v is not None for v in cached)
