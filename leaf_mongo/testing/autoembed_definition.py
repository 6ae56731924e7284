"""``autoEmbed`` vector fields as mongot parses and validates them, and mongot's Community model catalog.

Sources (mongot d38b926): ``index/definition/VectorAutoEmbedFieldSpecification.java`` (parsing, defaults,
similarity by quantization), ``config/provider/community/embedding/AutoEmbeddingIndexValidator.java`` (catalog,
no mixing, no update), ``src/main/resources/config/community/embedding-service-configs.yml`` (the catalog:
1024 dimensions, float, the voyage-4 family mutually compatible).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leaf_mongo.testing.docs import is_int
from leaf_mongo.testing.errors import failed_to_parse, reject_unknown_fields

MAX_DIMENSIONS = 8192
AUTO_QUANTIZATIONS = ("float", "scalar", "binary", "binaryNoRescore")
SIMILARITIES = ("euclidean", "cosine", "dotProduct")
_VOYAGE_4 = frozenset({"voyage-4", "voyage-4-large", "voyage-4-lite"})
# Community's bundled catalog: model -> the query models it accepts (compatibleModels).
CATALOG: dict[str, frozenset[str]] = {
    "voyage-4": _VOYAGE_4,
    "voyage-4-large": _VOYAGE_4,
    "voyage-4-lite": _VOYAGE_4,
    "voyage-code-3": frozenset({"voyage-code-3"}),
}
DEFAULT_DIMENSIONS = 1024
DEFAULT_QUANTIZATION = "float"
# VoyageClient.getOutputDataType: what mongot asks the provider for, per quantization.
OUTPUT_DTYPE = {"float": "float", "binary": "float", "scalar": "int8", "binaryNoRescore": "binary"}


@dataclass(frozen=True)
class AutoEmbedSpec:
    """What an ``autoEmbed`` field asks of the provider."""

    path: str
    model: str
    num_dimensions: int
    quantization: str

    @property
    def output_dtype(self) -> str:
        return OUTPUT_DTYPE[self.quantization]

    @property
    def store_key(self) -> str:
        """Key in the namespace's stores: fields differing in model or shape need their own vectors."""
        return f"\0autoEmbed:{self.path}:{self.model}:{self.num_dimensions}:{self.output_dtype}"

    @classmethod
    def of(cls, field: Mapping[str, Any]) -> AutoEmbedSpec:
        return cls(field["path"], field["model"], field["numDimensions"], field["quantization"])


def normalize_autoembed_field(f: dict[str, Any], ctx: str) -> dict[str, Any]:
    """One ``type: "autoEmbed"`` field with mongot's defaults resolved (model lowercased)."""
    reject_unknown_fields(f, {"type", "path", "model", "modality", "numDimensions", "similarity", "quantization"}, ctx)
    model = f.get("model")
    if model is None:
        raise failed_to_parse(f'"{ctx}.model" is required')
    if not isinstance(model, str):
        raise failed_to_parse(f'"{ctx}.model" must be a string')
    if "modality" not in f:
        raise failed_to_parse(f'"{ctx}.modality" is required')
    if f["modality"] != "text":
        raise failed_to_parse(f"\"{ctx}.modality\" must be 'text'")
    dims = f.get("numDimensions", DEFAULT_DIMENSIONS)
    if not is_int(dims):
        raise failed_to_parse(f'"{ctx}.numDimensions" must be an integer')
    dims = int(dims)
    if not 1 <= dims <= MAX_DIMENSIONS:
        raise failed_to_parse(f'"{ctx}.numDimensions" must be within bounds [1, {MAX_DIMENSIONS}], got {dims}')
    quant = f.get("quantization", DEFAULT_QUANTIZATION)
    if quant not in AUTO_QUANTIZATIONS:
        raise failed_to_parse(f'"{ctx}.quantization" must be one of [{", ".join(AUTO_QUANTIZATIONS)}], got {quant!r}')
    if quant in ("binary", "binaryNoRescore") and dims % 8:
        raise failed_to_parse(f"numDimensions must be a multiple of 8 for quantization type {quant}; but got {dims}")
    default_sim = "euclidean" if quant in ("binary", "binaryNoRescore") else "dotProduct"
    sim = f.get("similarity", default_sim)
    if sim not in SIMILARITIES:
        raise failed_to_parse(f'"{ctx}.similarity" must be one of [{", ".join(SIMILARITIES)}], got {sim!r}')
    return {
        "type": "autoEmbed",
        "modality": "text",
        "path": f["path"],
        "model": model.lower(),
        "numDimensions": dims,
        "quantization": quant,
        "similarity": sim,
    }


def autoembed_fields(normalized: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [f for f in (normalized or {}).get("fields", []) if f["type"] == "autoEmbed"]


def check_no_mixing(fields: list[dict[str, Any]]) -> None:
    """AutoEmbeddingIndexValidator.throwIfMixedVectorTypes."""
    kinds = {f["type"] for f in fields}
    if "autoEmbed" in kinds and "vector" in kinds:
        raise failed_to_parse(
            "Index cannot mix regular vector fields with auto-embedding fields. Please use either pre-computed "
            "embeddings or auto-embedding, but not both in the same index."
        )


def check_models(normalized: dict[str, Any], registered: frozenset[str]) -> None:
    """AutoEmbeddingIndexValidator: every model must be in the catalog (empty when no embedding is configured)."""
    unregistered = sorted({f["model"] for f in autoembed_fields(normalized)} - registered)
    if unregistered:
        supported = ", ".join(sorted(registered)) if registered else "none (embedding service not configured)"
        raise failed_to_parse(
            f"The following embedding model(s) are not supported: {', '.join(unregistered)}. "
            f"Supported models: {supported}."
        )


def check_update(name: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    """validateNoAutoEmbeddingTypeConversion and validateNoAutoEmbeddingFieldChanges."""
    before, after = autoembed_fields(old), autoembed_fields(new)
    if before and not after:
        raise failed_to_parse(
            "For a vector search index definition, you cannot convert a type:autoEmbed to a type:vector"
        )
    if before and before != after:
        raise failed_to_parse(
            f"Index: {name} cannot update type:autoEmbed fields. To modify an index containing Automated Embedding "
            "fields, please delete the index and create a new one instead"
        )


def check_query_model(query_model: str | None, index_model: str) -> str:
    """The model that embeds the query (VectorSearchCommand.findEmbedRequestInfo's two checks)."""
    if query_model is None:
        return index_model
    model = query_model.lower()
    allowed = sorted(set().union(*CATALOG.values()))
    if model not in allowed:
        raise failed_to_parse(f"model '{query_model}' is not allowed. Allowed models are: {', '.join(allowed)}")
    if model not in CATALOG.get(index_model, frozenset()):
        raise failed_to_parse(f"query model '{query_model}' is not compatible with the index model '{index_model}'")
    return model
