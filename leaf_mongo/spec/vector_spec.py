"""The vector spec: one immutable description of how vectors are made, stored, indexed and queried.

Ingest, the index definition, the stored documents and the retriever all derive from one ``VectorSpec``,
and the spec is persisted beside the collection. MongoDB accepts several combinations that silently return
nothing (a packed-bit vector under cosine, an int8 vector under automatic quantization, a query of another
dtype than the stored one), so every rule is checked here, at construction, with a message that names the
setting and the values it allows.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from leaf_mongo.errors import SettingsError, SpecMismatchError
from leaf_mongo.settings import Dtype, LeafMongoSettings, Quantization, Similarity, env_name
from leaf_mongo.spec.profiles import PROFILES

MAX_DIMENSIONS = 8192  # mongot VectorFieldSpecification.MAX_DIMENSIONS
# mongot Community's embedding catalog (src/main/resources/config/community/embedding-service-configs.yml): the
# model names an autoEmbed field may give; `leaf-mongo serve` answers under them.
AUTOEMBED_MODELS = ("voyage-4", "voyage-4-large", "voyage-4-lite", "voyage-code-3")
# (dtype, quantization) -> the autoEmbed quantization that stores the same thing (VoyageClient.getOutputDataType).
AUTOEMBED_QUANTIZATION = {
    ("float32", "none"): "float",
    ("float32", "binary"): "binary",
    ("int8", "none"): "scalar",
    ("binary", "none"): "binaryNoRescore",
}
SPEC_VERSION = 1
FULLTEXT_FIELDS = ("text", "title", "headings")  # chunk text and the title/headings ingest stores with it


def payload_bytes(dtype: str, dimensions: int) -> int:
    """Bytes of the vector values alone: 4 per float32, 1 per int8, 1 per 8 packed bits."""
    return {"float32": 4 * dimensions, "int8": dimensions, "binary": (dimensions + 7) // 8}[dtype]


def stored_vector_bytes(dtype: str, dimensions: int) -> int:
    """Bytes one BSON vector value takes in a document: the one number leaf-mongo reports per stored vector.

    BinData: int32 length, subtype byte, then the vector's 2-byte header (dtype, padding) and its payload.
    """
    return 4 + 1 + 2 + payload_bytes(dtype, dimensions)


class VectorSpec(BaseModel):
    """How vectors are produced and stored; frozen so every part sees the same values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    teacher_model: str
    leaf_model: str
    full_dimensions: int
    dimensions: int
    dtype: Dtype = "float32"
    quantization: Quantization = "none"
    similarity: Similarity = "cosine"
    int8_min: float = -0.3
    int8_max: float = 0.3
    query_prompt: str = ""
    """The prompt applied to queries (recorded at ingest; the retriever reproduces it)."""
    document_prompt: str = ""
    """The prompt applied to documents (also part of the embedding-cache key)."""
    embedding_field: str = "embedding"
    text_field: str = "text"
    full_precision_field: str | None = None
    filter_fields: tuple[str, ...] = ("source",)
    hnsw_max_edges: int | None = None
    hnsw_num_edge_candidates: int | None = None
    fulltext_fields: tuple[str, ...] = ()
    """Paths of the ``search`` index (empty: no full-text index; index-only, never a re-embedding)."""
    fulltext_analyzer: str = "lucene.standard"
    autoembed_model: str | None = None
    """Set: mongot embeds ``text_field`` itself (an ``autoEmbed`` index naming this model); no stored vectors."""
    version: int = SPEC_VERSION

    def model_post_init(self, __context: Any) -> None:
        _validate(self)

    @property
    def autoembed_quantization(self) -> str:
        """The autoEmbed field's ``quantization`` for this spec's dtype and quantization (validated)."""
        return AUTOEMBED_QUANTIZATION[(self.dtype, self.quantization)]

    @property
    def bytes_per_vector(self) -> int:
        """Bytes one stored vector takes in its document: see :func:`stored_vector_bytes`."""
        return stored_vector_bytes(self.dtype, self.dimensions)

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> VectorSpec:
        return cls.model_validate({k: v for k, v in doc.items() if k in cls.model_fields})

    def storage_conflicts(self, stored: VectorSpec) -> list[str]:
        """Differences that make vectors written under ``stored`` incomparable with this spec.

        Index-only options (quantization, similarity, HNSW, filter fields) are not conflicts: the index
        can be updated in place. A different teacher, dimension, dtype or int8 calibration is.
        """
        out = []
        for name in (
            "teacher_model",
            "full_dimensions",
            "dimensions",
            "dtype",
            "embedding_field",
            "text_field",
            "document_prompt",
            "autoembed_model",
        ):
            a, b = getattr(stored, name), getattr(self, name)
            if a != b:
                out.append(f"{name}: stored {a!r}, requested {b!r}")
        if self.autoembed_model or stored.autoembed_model:  # mongot cannot update autoEmbed fields in place
            out += [
                f"{name} (autoEmbed): stored {getattr(stored, name)!r}, requested {getattr(self, name)!r}"
                for name in ("similarity", "quantization")
                if getattr(stored, name) != getattr(self, name)
            ]
        if self.dtype == "int8" and (stored.int8_min, stored.int8_max) != (self.int8_min, self.int8_max):
            out.append(
                f"int8 range: stored [{stored.int8_min}, {stored.int8_max}], "
                f"requested [{self.int8_min}, {self.int8_max}]"
            )
        return out

    def require_compatible(self, stored: VectorSpec, where: str) -> None:
        """Raise one clear message when ``stored`` vectors cannot be used with this spec."""
        conflicts = self.storage_conflicts(stored)
        if conflicts:
            raise SpecMismatchError(
                f"the vectors stored in {where} were made with a different spec ({'; '.join(conflicts)}). "
                "Use the stored settings, or re-ingest with --recreate to rebuild the collection."
            )


def _fail(field: str, message: str) -> None:
    raise SettingsError(env_name(field), message)


def _validate(s: VectorSpec) -> None:
    """The combinations MongoDB Vector Search accepts (reference §2.1)."""
    if not 1 <= s.dimensions <= MAX_DIMENSIONS:
        _fail("dimensions", f"{s.dimensions} is out of range; allowed: 1..{MAX_DIMENSIONS}")
    if s.dimensions > s.full_dimensions:
        _fail(
            "dimensions",
            f"{s.dimensions} exceeds the model's {s.full_dimensions} dimensions; "
            f"allowed: 1..{s.full_dimensions} (MRL truncation keeps a prefix)",
        )
    if s.dtype == "binary":
        if s.similarity != "euclidean":
            _fail(
                "similarity",
                f"{s.similarity!r} is not allowed with LEAF_MONGO_DTYPE=binary (packed bits are compared by "
                "Hamming distance, exposed as euclidean); allowed: euclidean",
            )
        if s.quantization != "none":
            _fail(
                "quantization",
                f"{s.quantization!r} is not allowed with LEAF_MONGO_DTYPE=binary (vectors are already "
                "quantized); allowed: none",
            )
        if s.dimensions % 8:
            _fail(
                "dimensions",
                f"{s.dimensions} is not allowed with LEAF_MONGO_DTYPE=binary; allowed: a multiple of 8",
            )
    if s.dtype == "int8" and s.quantization != "none":
        _fail(
            "quantization",
            f"{s.quantization!r} is not allowed with LEAF_MONGO_DTYPE=int8 (MongoDB quantizes only float "
            "vectors and silently skips others); allowed: none",
        )
    if s.quantization == "binary" and s.dimensions % 8:
        _fail(
            "dimensions",
            f"{s.dimensions} is not allowed with LEAF_MONGO_QUANTIZATION=binary; allowed: a multiple of 8",
        )
    if s.dtype == "int8" and not s.int8_min < s.int8_max:
        _fail("int8_min", f"must be below LEAF_MONGO_INT8_MAX (got {s.int8_min} >= {s.int8_max})")
    if s.full_precision_field is not None and s.full_precision_field == s.embedding_field:
        _fail("store_full_precision", "the full-precision field must differ from the embedding field")
    if s.autoembed_model is not None:
        _validate_autoembed(s)
    for f in s.filter_fields:
        if not f or f.startswith("$") or f in (s.embedding_field, s.full_precision_field):
            _fail("filter_fields", f"{f!r} cannot be a filter field; allowed: metadata field names")


def _validate_autoembed(s: VectorSpec) -> None:
    """What an autoEmbed field can express (mongot VectorAutoEmbedFieldSpecification, AutoEmbeddingIndexValidator)."""
    if s.autoembed_model not in AUTOEMBED_MODELS:
        _fail(
            "autoembed_model",
            f"{s.autoembed_model!r} is not in mongot's catalog; allowed: {', '.join(AUTOEMBED_MODELS)}",
        )
    if (s.dtype, s.quantization) not in AUTOEMBED_QUANTIZATION:
        _fail(
            "quantization",
            f"{s.quantization!r} with LEAF_MONGO_DTYPE={s.dtype} has no autoEmbed equivalent; allowed with "
            "LEAF_MONGO_AUTOEMBED_MODEL: float32 with none or binary, int8 or binary with none",
        )
    if s.full_precision_field is not None:
        _fail("store_full_precision", "not available with LEAF_MONGO_AUTOEMBED_MODEL (ingest stores no vectors)")


def resolved_teacher(settings: LeafMongoSettings) -> str:
    """The document model the settings ask for (explicit setting, else the profile's)."""
    return settings.teacher_model or PROFILES[settings.profile].teacher_model
