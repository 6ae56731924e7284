"""``vectorSearch`` index definitions, validated as mongot validates them and normalized.

Validation follows mongot's schema (``packages/search-index-schema/schema/vectorSearch``) and
``VectorFieldSpecification.java``; messages use mongot's ``"<path>" <problem>`` style so callers see what a
real server would reject. The normalized form (defaults applied) is what "same definition" is judged on.
"""

from __future__ import annotations

from typing import Any

from leaf_mongo.testing.autoembed_definition import check_no_mixing, normalize_autoembed_field
from leaf_mongo.testing.docs import is_int
from leaf_mongo.testing.errors import failed_to_parse, not_implemented, reject_unknown_fields
from leaf_mongo.testing.stored_source import parse_stored_source

MAX_DIMENSIONS = 8192
SIMILARITIES = ("euclidean", "cosine", "dotProduct")
QUANTIZATIONS = ("none", "scalar", "binary")
INDEXING_METHODS = ("hnsw", "flat")
NUM_PARTITIONS = (1, 2, 4, 8, 16, 32, 64)


def normalize_vector_definition(definition: Any) -> dict[str, Any]:
    """Validate a ``vectorSearch`` definition; return it with defaults applied.

    The normalized form is what "same definition" is judged on (mongot compares
    parsed definitions, so ``quantization: "none"`` equals an omitted one).
    """
    if not isinstance(definition, dict):
        raise failed_to_parse('"definition" must be a document')
    reject_unknown_fields(definition, {"fields", "nestedRoot", "storedSource", "numPartitions"}, "")
    if "nestedRoot" in definition:
        raise not_implemented(
            "nestedRoot (vector search over arrays of embedded documents) is not supported by the leaf-mongo "
            "emulator (emulator limitation)"
        )
    stored = parse_stored_source(definition["storedSource"], "vectorSearch") if "storedSource" in definition else None
    partitions = check_num_partitions(definition.get("numPartitions", 1))
    fields = definition.get("fields")
    if fields is None:
        raise failed_to_parse('"fields" is required')
    if not isinstance(fields, list) or not fields:
        raise failed_to_parse('"fields" must be a non-empty array')
    out_fields: list[dict[str, Any]] = []
    seen_paths: set[str] = set()
    for i, f in enumerate(fields):
        ctx = f"fields[{i}]"
        if not isinstance(f, dict):
            raise failed_to_parse(f'"{ctx}" must be a document')
        ftype = f.get("type")
        if ftype is None:
            raise failed_to_parse(f'"{ctx}.type" is required')
        path = f.get("path")
        if path is None:
            raise failed_to_parse(f'"{ctx}.path" is required')
        if not isinstance(path, str) or not path:
            raise failed_to_parse(f'"{ctx}.path" must be a non-empty string')
        if path in seen_paths:
            raise failed_to_parse("same path specified for separate field definitions on the same index")
        seen_paths.add(path)
        if ftype == "filter":
            reject_unknown_fields(f, {"type", "path"}, ctx)
            out_fields.append({"type": "filter", "path": path})
        elif ftype == "vector":
            out_fields.append(_normalize_vector_field(f, ctx))
        elif ftype == "autoEmbed":
            out_fields.append(normalize_autoembed_field(f, ctx))
        else:
            raise failed_to_parse(f'"{ctx}.type" must be one of [vector, filter, autoEmbed]')
    check_no_mixing(out_fields)
    if not any(f["type"] in ("vector", "autoEmbed") for f in out_fields):
        raise failed_to_parse('"fields" must contain at least one field of type "vector"')
    out: dict[str, Any] = {"fields": out_fields}
    if stored is not None and stored is not False:
        out["storedSource"] = stored  # false is the default (StoredSourceDefinition.defaultValue)
    if partitions != 1:
        out["numPartitions"] = partitions  # 1 is the default (UserVectorIndexDefinition.toBson)
    return out


def check_num_partitions(value: Any) -> int:
    """``numPartitions``: 1, 2, 4, 8, 16, 32 or 64 (mongot ``UserIndexDefinition.java``)."""
    if not is_int(value):
        raise failed_to_parse('"numPartitions" must be an int')
    if int(value) not in NUM_PARTITIONS:
        raise failed_to_parse(f"numPartitions {int(value)} must be of 1, 2, 4, 8, 16, 32, or 64.")
    return int(value)


def _normalize_vector_field(f: dict[str, Any], ctx: str) -> dict[str, Any]:
    reject_unknown_fields(
        f,
        {"type", "path", "numDimensions", "similarity", "quantization", "hnswOptions", "indexingMethod"},
        ctx,
    )
    if "numDimensions" not in f:
        raise failed_to_parse(f'"{ctx}.numDimensions" is required')
    dims = f["numDimensions"]
    if not is_int(dims):
        raise failed_to_parse(f'"{ctx}.numDimensions" must be an integer')
    dims = int(dims)
    if not 1 <= dims <= MAX_DIMENSIONS:
        raise failed_to_parse(f'"{ctx}.numDimensions" must be within bounds [1, {MAX_DIMENSIONS}], got {dims}')
    if "similarity" not in f:
        raise failed_to_parse(f'"{ctx}.similarity" is required')
    sim = f["similarity"]
    if sim not in SIMILARITIES:
        raise failed_to_parse(f'"{ctx}.similarity" must be one of [{", ".join(SIMILARITIES)}], got {sim!r}')
    quant = f.get("quantization", "none")
    if quant not in QUANTIZATIONS:
        raise failed_to_parse(f'"{ctx}.quantization" must be one of [{", ".join(QUANTIZATIONS)}], got {quant!r}')
    if quant == "binary" and dims % 8:
        raise failed_to_parse(f"numDimensions {dims} must be a multiple of 8 for binary quantization")
    method = f.get("indexingMethod", "hnsw")
    if method not in INDEXING_METHODS:
        raise failed_to_parse(f'"{ctx}.indexingMethod" must be one of [{", ".join(INDEXING_METHODS)}]')
    out: dict[str, Any] = {
        "type": "vector",
        "path": f["path"],
        "numDimensions": dims,
        "similarity": sim,
        "quantization": quant,
        "indexingMethod": method,
    }
    if "hnswOptions" in f:
        if method != "hnsw":
            raise failed_to_parse('hnswOptions is only supported with "indexingMethod: hnsw".')
        opts = f["hnswOptions"]
        if not isinstance(opts, dict):
            raise failed_to_parse(f'"{ctx}.hnswOptions" must be a document')
        reject_unknown_fields(opts, {"maxEdges", "numEdgeCandidates"}, f"{ctx}.hnswOptions")
        max_edges = opts.get("maxEdges", 16)
        cands = opts.get("numEdgeCandidates", 100)
        for name, value, lo, hi in (("maxEdges", max_edges, 16, 64), ("numEdgeCandidates", cands, 100, 3200)):
            if not is_int(value) or not lo <= int(value) <= hi:
                raise failed_to_parse(f'"{ctx}.hnswOptions.{name}" must be within bounds [{lo}, {hi}], got {value!r}')
        out["hnswOptions"] = {"maxEdges": int(max_edges), "numEdgeCandidates": int(cands)}
    else:
        out["hnswOptions"] = {"maxEdges": 16, "numEdgeCandidates": 100} if method == "hnsw" else None
    return out
