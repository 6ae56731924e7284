"""Every legal and illegal vector-spec combination, with the exact message the user sees."""

from __future__ import annotations

import itertools

import pytest

from leaf_mongo import (
    PROFILES,
    SettingsError,
    SpecMismatchError,
    VectorSpec,
    load_settings,
    spec_from_settings,
)

DTYPES = ("float32", "int8", "binary")
QUANTS = ("none", "scalar", "binary")
SIMS = ("cosine", "dotProduct", "euclidean")


def expected_error(dtype: str, quant: str, sim: str, dims: int) -> str | None:
    """The rules of MongoDB Vector Search (reference §2.1), written out independently of the code."""
    if dims > 768:
        return f"LEAF_MONGO_DIMENSIONS: {dims} exceeds the model's 768 dimensions"
    if dtype == "binary" and sim != "euclidean":
        return f"LEAF_MONGO_SIMILARITY: '{sim}' is not allowed with LEAF_MONGO_DTYPE=binary"
    if dtype == "binary" and quant != "none":
        return f"LEAF_MONGO_QUANTIZATION: '{quant}' is not allowed with LEAF_MONGO_DTYPE=binary"
    if dtype == "binary" and dims % 8:
        return f"LEAF_MONGO_DIMENSIONS: {dims} is not allowed with LEAF_MONGO_DTYPE=binary; allowed: a multiple of 8"
    if dtype == "int8" and quant != "none":
        return f"LEAF_MONGO_QUANTIZATION: '{quant}' is not allowed with LEAF_MONGO_DTYPE=int8"
    if quant == "binary" and dims % 8:
        return f"LEAF_MONGO_DIMENSIONS: {dims} is not allowed with LEAF_MONGO_QUANTIZATION=binary"
    return None


@pytest.mark.parametrize(
    ("dtype", "quant", "sim", "dims"), list(itertools.product(DTYPES, QUANTS, SIMS, (768, 256, 100, 769)))
)
def test_every_combination(dtype: str, quant: str, sim: str, dims: int) -> None:
    settings = load_settings(profile="ir", dtype=dtype, quantization=quant, similarity=sim, dimensions=dims)
    want = expected_error(dtype, quant, sim, dims)
    if want is None:
        spec = spec_from_settings(settings)
        assert (spec.dtype, spec.quantization, spec.similarity, spec.dimensions) == (dtype, quant, sim, dims)
    else:
        with pytest.raises(SettingsError) as info:
            spec_from_settings(settings)
        assert str(info.value).startswith(want)
        assert "allowed" in str(info.value)


def test_dimension_bounds() -> None:
    for dims, msg in ((0, "greater than or equal to 1"), (9000, "9000 is out of range; allowed: 1..8192")):
        with pytest.raises(SettingsError, match="LEAF_MONGO_DIMENSIONS"):
            spec_from_settings(load_settings(dimensions=dims))
        if dims:
            with pytest.raises(SettingsError, match=msg):
                VectorSpec(teacher_model="t", leaf_model="l", full_dimensions=9000, dimensions=dims)


@pytest.mark.parametrize("name", ["ir", "mt"])
def test_profiles(name: str) -> None:
    spec = spec_from_settings(load_settings(profile=name))
    p = PROFILES[name]
    assert spec.teacher_model == p.teacher_model and spec.leaf_model == p.leaf_model
    assert spec.dimensions == spec.full_dimensions == {"ir": 768, "mt": 1024}[name]
    assert (spec.int8_min, spec.int8_max) == {"ir": (-0.3, 0.3), "mt": (-1.0, 1.0)}[name]
    assert spec.query_prompt == "Represent this sentence for searching relevant passages: "
    assert spec.similarity == "cosine"


def test_binary_defaults_to_euclidean_and_explicit_models_override_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEAF_MONGO_PROFILE", "mt")
    monkeypatch.setenv("LEAF_MONGO_LEAF_MODEL", "me/my-leaf")
    spec = spec_from_settings(load_settings(dtype="binary", dimensions=512))
    assert spec.similarity == "euclidean"
    assert spec.teacher_model == "mixedbread-ai/mxbai-embed-large-v1" and spec.leaf_model == "me/my-leaf"
    assert spec.bytes_per_vector == 4 + 1 + 2 + 64  # BinData length, subtype, vector header, 512 bits


def test_spec_is_immutable_and_round_trips() -> None:
    spec = spec_from_settings(load_settings(dtype="int8", dimensions=256))
    with pytest.raises(Exception, match="frozen"):
        spec.dimensions = 128  # type: ignore[misc]
    assert VectorSpec.from_document(spec.to_document()) == spec


def test_storage_conflicts() -> None:
    stored = spec_from_settings(load_settings(dtype="int8"))
    assert stored.storage_conflicts(spec_from_settings(load_settings(dtype="int8", similarity="euclidean"))) == []
    other = spec_from_settings(load_settings(dtype="float32", dimensions=256))
    assert other.storage_conflicts(stored) == [
        "dimensions: stored 768, requested 256",
        "dtype: stored 'int8', requested 'float32'",
    ]
    with pytest.raises(SpecMismatchError, match="--recreate"):
        other.require_compatible(stored, "db.chunks")
    rng = spec_from_settings(load_settings(dtype="int8", int8_min=-0.5, int8_max=0.5))
    assert rng.storage_conflicts(stored) == ["int8 range: stored [-0.3, 0.3], requested [-0.5, 0.5]"]
