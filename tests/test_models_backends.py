"""ONNX Runtime and OpenVINO backends: the exported graph is the whole route (pooling, Dense, Normalize), its
vectors match the torch path, and the query path runs without importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymongo.database import Database

from leaf_mongo.models.encoders import SideEncoder
from leaf_mongo.query.retriever import LeafRetriever
from tests.test_models_layouts import QUERY
from tests.tiny_models import QUERY_PROMPT

TEXTS = ["which planet is the biggest", "a much longer query about volcanoes, magma and the crust " * 3, "bees"]


@pytest.fixture(autouse=True)
def backend_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path_factory.getbasetemp() / "backend-cache"
    monkeypatch.setenv("LEAF_MONGO_BACKEND_CACHE", str(root))
    return root


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
@pytest.mark.parametrize(("model", "task"), [("leaf-ir", "query"), ("leaf-mt", "query"), ("arctic", "document"),
                                             ("ir-asym", "query"), ("mt-asym", "document")])  # fmt: skip
def test_float_backends_match_torch(models: dict[str, str], model: str, task: str, backend: str) -> None:
    from sentence_transformers import SentenceTransformer

    card = SentenceTransformer(models[model])
    call = card.encode_query if task == "query" else card.encode_document
    want = call(TEXTS)  # the card's snippet, prompt included
    side = SideEncoder(models[model], task, backend)  # type: ignore[arg-type]
    got = side.encode(TEXTS, side.default_prompt())
    assert got.shape == want.shape  # the Dense projection is in the graph (not the backbone's width)
    assert _cos(got, want).min() >= 0.9999
    # OpenVINO's CPU kernels (GELU, fused matmuls) round differently in the 4th decimal; cosine stays >= 0.9999.
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731 - mxbai-style outputs are unnormalized
    np.testing.assert_allclose(unit(got), unit(want), atol=2e-5 if backend == "onnx" else 5e-4)
    assert side.default_prompt() == (QUERY_PROMPT if task == "query" else "")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx-int8", "openvino-int8"])
def test_int8_backends_stay_close(minilm_path: str, backend: str) -> None:
    from sentence_transformers import SentenceTransformer

    want = SentenceTransformer(minilm_path).encode_query(TEXTS)
    got = SideEncoder(minilm_path, "query", backend).encode(TEXTS, "")
    assert got.shape == want.shape
    assert _cos(got, want).min() >= 0.97


def test_retriever_on_onnx_matches_torch(
    models: dict[str, str], docs_dir: Path, mongo_uri: str, db_name: str, database: Database[Any]
) -> None:
    from leaf_mongo import ingest, load_settings

    settings = load_settings(uri=mongo_uri, database=db_name, teacher_model=models["ir-asym"],
                             leaf_model=models["ir-asym"], teacher_backend="onnx")  # fmt: skip
    ingest([docs_dir], settings)
    torch_scores = {
        d.metadata["source"]: d.metadata["score"]
        for d in LeafRetriever(collection=database["chunks"], k=3, exact=True).invoke(QUERY)
    }
    onnx_scores = {
        d.metadata["source"]: d.metadata["score"]
        for d in LeafRetriever(collection=database["chunks"], k=3, exact=True, leaf_backend="onnx").invoke(QUERY)
    }
    assert onnx_scores == pytest.approx(torch_scores, abs=1e-5)


def test_onnx_query_path_never_imports_torch(models: dict[str, str], backend_cache: Path) -> None:
    SideEncoder(models["leaf-ir"], "query", "onnx").encode(["warm the export"], "")  # exports once (needs torch)
    code = (
        "import sys, json; from leaf_mongo.models.encoders import SideEncoder; "
        f"s = SideEncoder({models['leaf-ir']!r}, 'query', 'onnx'); v = s.encode(['hello'], s.default_prompt()); "
        "print(json.dumps({'torch': 'torch' in sys.modules, 'transformers': 'transformers' in sys.modules, "
        "'dim': int(v.shape[1])}))"
    )
    env = {**os.environ, "LEAF_MONGO_BACKEND_CACHE": str(backend_cache)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"torch": False, "transformers": False, "dim": 32}


def test_unknown_backend_is_one_clear_error() -> None:
    from leaf_mongo.errors import SettingsError
    from leaf_mongo.settings import load_settings

    with pytest.raises(SettingsError, match="LEAF_MONGO_LEAF_BACKEND"):
        load_settings(leaf_backend="tensorrt")
