"""Vector storage and exact scoring behind the emulator's ``$vectorSearch``.

mongot keeps vectors in Lucene segments fed from the change stream; scanning
documents through mongomock on every query would be far too slow (10,000 x
768-d documents would take seconds). Instead each indexed path of a collection
gets a :class:`PathVectors` holding one dense numpy matrix per (kind,
dimension), updated on every write, so a query is one matrix-vector product.

Three kinds mirror mongot's Lucene fields (reference §3): ``float`` (BSON
arrays of numbers or BinData float32), ``byte`` (BinData int8) and ``bit``
(BinData packed bits). The query vector's kind selects the matrix searched, so a
kind mismatch yields an empty result exactly like the real server.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from bson.binary import Binary

from leaf_mongo.testing.errors import TYPE_MISMATCH, CommandError, bad_value

if TYPE_CHECKING:
    from leaf_mongo.testing.autoembed_definition import AutoEmbedSpec

Kind = Literal["float", "byte", "bit"]

VECTOR_SUBTYPE = 9
_DTYPE_FLOAT32 = 0x27
_DTYPE_INT8 = 0x03
_DTYPE_PACKED_BIT = 0x10


@dataclass(frozen=True)
class ParsedVector:
    """A vector as mongot sees it: kind, logical dimension and numeric payload.

    ``values`` is float32 for ``float``, int8 for ``byte`` and packed uint8 for
    ``bit`` (whose ``dim`` counts bits, like ``numDimensions``).
    """

    kind: Kind
    dim: int
    values: np.ndarray
    padding: int = 0


def parse_vector(value: Any) -> ParsedVector | None:
    """Parse a stored field value; None when mongot would not index it as a vector."""
    if isinstance(value, Binary):
        if value.subtype != VECTOR_SUBTYPE or len(value) < 2:
            return None
        raw = bytes(value)
        dtype, padding = raw[0], raw[1] & 0x07
        payload = raw[2:]
        if dtype == _DTYPE_FLOAT32:
            if len(payload) % 4 or padding:
                return None
            arr = np.frombuffer(payload, dtype="<f4").astype(np.float32, copy=False)
            if not np.all(np.isfinite(arr)):
                return None
            return ParsedVector("float", arr.size, arr)
        if dtype == _DTYPE_INT8:
            if padding:
                return None
            arr8 = np.frombuffer(payload, dtype=np.int8)
            return ParsedVector("byte", arr8.size, arr8)
        if dtype == _DTYPE_PACKED_BIT:
            bits = np.frombuffer(payload, dtype=np.uint8)
            # "The dimensions of binary vector should be a multiple of 8 and the padding
            # should be zero." (mongot BsonVectorParser) -> such documents are skipped.
            if padding or bits.size == 0:
                return None
            return ParsedVector("bit", bits.size * 8, bits)
        return None
    if isinstance(value, list) and value:
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
            return None
        arrf = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(arrf)):
            return None
        return ParsedVector("float", arrf.size, arrf.astype(np.float32))
    return None


def parse_query_vector(value: Any) -> ParsedVector:
    """Parse ``queryVector``, raising the server's errors for unusable input."""
    if isinstance(value, Binary):
        if value.subtype != VECTOR_SUBTYPE or len(value) < 2:
            raise bad_value('"queryVector" must be an array of numbers or a BinData vector (subtype 9)')
        raw = bytes(value)
        dtype, padding = raw[0], raw[1] & 0x07
        if dtype == _DTYPE_PACKED_BIT and padding:
            raise bad_value("The dimensions of binary vector should be a multiple of 8 and the padding should be zero.")
        parsed = parse_vector(value)
        if parsed is None:
            raise bad_value('"queryVector" is not a valid BinData vector')
        if parsed.kind == "float":
            _check_finite(parsed.values)
        return parsed
    if isinstance(value, list):
        if not value:
            raise bad_value('"queryVector" must not be empty')
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
            raise bad_value('"queryVector" must be an array of numbers')
        arr = np.asarray(value, dtype=np.float64)
        _check_finite(arr)
        return ParsedVector("float", arr.size, arr.astype(np.float32))
    raise CommandError('"queryVector" must be an array of numbers or a BinData vector', TYPE_MISMATCH)


def _check_finite(arr: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise bad_value(f"'queryVector' contains a non-finite value (Infinity or NaN) at position [{int(bad[0])}]")


class SlotMatrix:
    """Rows of equal-width vectors with O(1) insert/delete (free-list of slots).

    Deleted rows are only marked dead so writes never copy the whole matrix;
    capacity grows by doubling. ``norms`` caches L2 norms (cosine, euclidean).
    """

    def __init__(self, kind: Kind, dim: int) -> None:
        self.kind = kind
        self.dim = dim
        width = dim // 8 if kind == "bit" else dim
        # float: float32 for BLAS speed; byte: float64 so int8 dot products stay exact.
        self._dtype: Any = {"float": np.float32, "byte": np.float64, "bit": np.uint8}[kind]
        self.data = np.zeros((16, width), dtype=self._dtype)
        self.sq_norms = np.zeros(16, dtype=np.float64)
        self.alive = np.zeros(16, dtype=bool)
        self.keys: list[Any] = [None] * 16
        self._free: list[int] = list(range(15, -1, -1))
        self._high = 0  # rows [0, _high) have ever been used

    def add(self, key: Any, values: np.ndarray) -> int:
        if not self._free:
            self._grow()
        row = self._free.pop()
        self.data[row] = values
        vals64 = values.astype(np.float64)
        self.sq_norms[row] = float(vals64 @ vals64) if self.kind != "bit" else 0.0
        self.alive[row] = True
        self.keys[row] = key
        self._high = max(self._high, row + 1)
        return row

    def remove(self, row: int) -> None:
        self.alive[row] = False
        self.keys[row] = None
        self._free.append(row)

    def _grow(self) -> None:
        old = self.data.shape[0]
        new = old * 2
        data = np.zeros((new, self.data.shape[1]), dtype=self._dtype)
        data[:old] = self.data
        self.data = data
        self.sq_norms = np.concatenate([self.sq_norms, np.zeros(old)])
        self.alive = np.concatenate([self.alive, np.zeros(old, dtype=bool)])
        self.keys.extend([None] * old)
        self._free.extend(range(new - 1, old - 1, -1))

    @property
    def used(self) -> int:
        return self._high


class PathVectors:
    """All vectors found at one dotted path of one collection, keyed by document."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.matrices: dict[tuple[Kind, int], SlotMatrix] = {}
        self._where: dict[Any, tuple[tuple[Kind, int], int]] = {}

    def upsert(self, key: Any, doc: Mapping[str, Any]) -> None:
        self.remove(key)
        parsed = parse_vector(get_path(doc, self.path))
        if parsed is None:
            return
        slot = (parsed.kind, parsed.dim)
        matrix = self.matrices.get(slot)
        if matrix is None:
            matrix = self.matrices[slot] = SlotMatrix(parsed.kind, parsed.dim)
        self._where[key] = (slot, matrix.add(key, parsed.values))

    def remove(self, key: Any) -> None:
        loc = self._where.pop(key, None)
        if loc is not None:
            self.matrices[loc[0]].remove(loc[1])

    def clear(self) -> None:
        self.matrices.clear()
        self._where.clear()

    def __len__(self) -> int:
        return len(self._where)


_MISSING = object()


def get_path(doc: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted path through sub-documents (arrays of documents are not indexed)."""
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return _MISSING
        cur = cur.get(part, _MISSING)
        if cur is _MISSING:
            return _MISSING
    return cur


@dataclass(frozen=True)
class VectorField:
    """The parts of a ``type: "vector"`` field definition that affect search."""

    path: str
    num_dimensions: int
    similarity: str
    quantization: str
    store: str = ""  # key of its vectors in the namespace's stores ("" = the path)
    auto: AutoEmbedSpec | None = None  # set for an autoEmbed field: how its vectors are made


def score_matrix(field: VectorField, matrix: SlotMatrix, query: ParsedVector) -> np.ndarray:
    """Scores for rows ``[0, matrix.used)``; rows mongot would have skipped get ``-inf``.

    Formulas (reference §4): float cosine ``(1+cos)/2``, dotProduct ``(1+dot)/2``,
    euclidean ``1/(1+squared L2)`` (Lucene); int8 cosine ``(1+cos)/2``, dotProduct
    ``0.5 + dot/(dim*2^15)``, euclidean ``1/(1+squared L2)``; bits ``(dim-hamming)/dim``.
    """
    n = matrix.used
    data = matrix.data[:n]
    valid = matrix.alive[:n].copy()
    sim = field.similarity
    if query.kind == "bit":
        xor = np.bitwise_xor(data, query.values[np.newaxis, :])
        if hasattr(np, "bitwise_count"):
            ham = np.bitwise_count(xor).sum(axis=1, dtype=np.int64)
        else:  # numpy < 2.0
            ham = _POPCOUNT[xor].sum(axis=1, dtype=np.int64)
        scores = (field.num_dimensions - ham) / float(field.num_dimensions)
    else:
        # einsum, not ``data @ q``: a BLAS gemv this size runs on OpenBLAS worker threads, which keep spinning
        # after it returns; in-process (tests, notebooks, benchmarks) they take the cores the client's next
        # torch forward pass needs (measured: batch-1 query encoding 2-3x slower). einsum stays on this thread.
        if query.kind == "float":
            q = query.values.astype(np.float32)
            dots = np.einsum("ij,j->i", data, q).astype(np.float64)
        else:
            q = query.values.astype(np.float64)
            dots = np.einsum("ij,j->i", data, q)
        q_sq = float(q.astype(np.float64) @ q.astype(np.float64))
        sq = matrix.sq_norms[:n]
        if sim == "cosine":
            # "Cosine similarity does not support zero vectors. Skipping." (IndexableFieldFactory)
            valid &= sq > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                cos = dots / (np.sqrt(sq) * math.sqrt(q_sq))
            scores = (1.0 + np.clip(cos, -1.0, 1.0)) / 2.0
        elif sim == "dotProduct":
            # Lucene float DOT_PRODUCT vs mongot's native int8 scorer.
            scores = (1.0 + dots) / 2.0 if query.kind == "float" else 0.5 + dots / (matrix.dim * float(1 << 15))
        else:  # euclidean
            d2 = np.maximum(sq + q_sq - 2.0 * dots, 0.0)
            scores = 1.0 / (1.0 + d2)
        if query.kind == "float":
            scores = scores.astype(np.float32).astype(np.float64)  # Lucene scores are float32
    return np.where(valid, scores, -np.inf)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def matrix_for(field: VectorField, store: PathVectors | None, query: ParsedVector) -> SlotMatrix | None:
    """The matrix mongot would search for this query, or None (=> empty result)."""
    if store is None:
        return None
    if query.kind in ("byte", "bit") and field.quantization != "none":
        # "Quantization is only supported for FLOAT vectors but found BYTE vector, skipping"
        return None
    if query.kind == "bit" and field.similarity != "euclidean":
        return None
    return store.matrices.get((query.kind, field.num_dimensions))


def top_k(scores: np.ndarray, keys: list[Any], k: int, allowed: Iterable[Any] | None) -> Iterator[tuple[Any, float]]:
    """Best ``k`` (key, score) pairs, score descending; ``allowed`` restricts keys (pre-filter)."""
    if allowed is not None:
        allowed_set = allowed if isinstance(allowed, (set, frozenset)) else set(allowed)
        mask = np.fromiter((key in allowed_set for key in keys[: scores.size]), dtype=bool, count=scores.size)
        scores = np.where(mask, scores, -np.inf)
    finite = np.flatnonzero(np.isfinite(scores))
    if finite.size == 0:
        return iter(())
    k = min(k, finite.size)
    sub = scores[finite]
    part = np.argpartition(-sub, k - 1)[:k] if k < sub.size else np.arange(sub.size)
    order = part[np.argsort(-sub[part], kind="stable")]
    rows = finite[order]
    return ((keys[int(r)], float(scores[int(r)])) for r in rows)
