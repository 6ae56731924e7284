"""MRL truncation and BSON vector round trips, bit-exact against a plain numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
from bson import BSON
from bson.binary import Binary, BinaryVectorDtype

from leaf_mongo import VectorSpec
from leaf_mongo.spec.vectors import bson_vector_size, from_binary, quantize, to_bson_vectors, truncate_normalize


def _spec(dtype: str, dims: int, lo: float = -0.3, hi: float = 0.3) -> VectorSpec:
    return VectorSpec(
        teacher_model="t", leaf_model="l", full_dimensions=1024, dimensions=dims, dtype=dtype,  # type: ignore[arg-type]
        similarity="euclidean" if dtype == "binary" else "cosine", int8_min=lo, int8_max=hi,
    )  # fmt: skip


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_truncation_renormalizes() -> None:
    x = np.random.default_rng(0).standard_normal((5, 768)).astype(np.float32) * 3
    t = truncate_normalize(x, 256)
    assert t.shape == (5, 256)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(t, x[:, :256] / np.linalg.norm(x[:, :256], axis=1, keepdims=True), rtol=1e-6)
    assert np.all(truncate_normalize(np.zeros((1, 8)), 4) == 0)  # zero stays zero, no NaN
    with pytest.raises(ValueError, match="model produced 8 dimensions, spec needs 16"):
        truncate_normalize(np.ones((1, 8)), 16)


@pytest.mark.parametrize("dims", [256, 768, 1024])
@pytest.mark.parametrize(("lo", "hi"), [(-0.3, 0.3), (-1.0, 1.0)])
def test_int8_round_trip_bit_exact(dims: int, lo: float, hi: float) -> None:
    x = _unit(np.random.default_rng(dims), 16, dims) * 4  # some values beyond the range: clipped
    lo32, hi32 = np.float32(lo), np.float32(hi)  # sentence-transformers computes in float32
    ref = (np.clip(np.floor((x - lo32) / ((hi32 - lo32) / np.float32(255))), 0, 255) - 128).astype(np.int8)
    stored = to_bson_vectors(x, _spec("int8", dims, lo, hi))
    for row, b in zip(ref, stored, strict=True):
        assert b.subtype == 9 and b[:2] == b"\x03\x00"
        assert bytes(b[2:]) == row.tobytes()
        back = BSON.encode({"v": b}).decode()["v"]  # through BSON and back
        np.testing.assert_array_equal(from_binary(back), row)


@pytest.mark.parametrize("dims", [256, 768, 1024])
def test_packed_bits_round_trip_bit_exact(dims: int) -> None:
    x = _unit(np.random.default_rng(dims + 1), 16, dims)
    x[0, :8] = [1, -1, 1, -1, 0, 0, 1, 1]  # zero counts as a 0 bit
    ref = np.packbits(x > 0, axis=1)
    assert ref[0, 0] == 0b10100011
    stored = to_bson_vectors(x, _spec("binary", dims))
    for row, b in zip(ref, stored, strict=True):
        assert b[:2] == b"\x10\x00" and len(b) == 2 + dims // 8  # dtype PACKED_BIT, padding 0
        assert bytes(b[2:]) == row.tobytes()
        assert any(v > 127 for v in row)  # the bytes that trip pymongo's numpy uint8 check
        np.testing.assert_array_equal(from_binary(BSON.encode({"v": b}).decode()["v"]), row)


@pytest.mark.parametrize("dims", [256, 768, 1024])
def test_float32_round_trip(dims: int) -> None:
    x = _unit(np.random.default_rng(3), 4, dims)
    for row, b in zip(x, to_bson_vectors(x, _spec("float32", dims)), strict=True):
        assert b[:2] == b"\x27\x00"
        np.testing.assert_array_equal(from_binary(b), row)
        assert b.as_vector().dtype == BinaryVectorDtype.FLOAT32


def test_quantize_dtypes() -> None:
    x = _unit(np.random.default_rng(4), 2, 64)
    assert quantize(x, _spec("float32", 64)).dtype == np.float32
    assert quantize(x, _spec("int8", 64)).dtype == np.int8
    assert quantize(x, _spec("binary", 64)).shape == (2, 8)
    assert isinstance(from_binary([0.5, 0.25]), np.ndarray)


def test_bson_sizes_at_768() -> None:
    sizes = {d: bson_vector_size(d, 768) for d in ("float32", "int8", "binary")}
    assert sizes == {"float32": 3079, "int8": 775, "binary": 103}
    for d, n in sizes.items():
        b = Binary.from_vector(
            [0] * (96 if d == "binary" else 768),
            {
                "float32": BinaryVectorDtype.FLOAT32,
                "int8": BinaryVectorDtype.INT8,
                "binary": BinaryVectorDtype.PACKED_BIT,
            }[d],
        )
        assert len(BSON.encode({"v": b})) - len(BSON.encode({"v": b""})) + 4 + 1 == n
    assert bson_vector_size("float32", 768, as_array=True) > 6000


def test_one_number_per_stored_vector() -> None:
    """The spec (``leaf-mongo spec``) and the ingest report say what a stored vector really costs in BSON."""
    for dtype, dims in (("float32", 384), ("int8", 256), ("binary", 512)):
        spec = _spec(dtype, dims)
        vec = to_bson_vectors(np.ones((1, dims), dtype=np.float32) / np.sqrt(dims), spec)[0]
        real = len(BSON.encode({"v": vec})) - len(BSON.encode({})) - len(b"\x05v\x00")  # element type, key
        assert spec.bytes_per_vector == bson_vector_size(dtype, dims) == real
