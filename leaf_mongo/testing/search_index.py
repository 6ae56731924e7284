"""Search-index definitions and their mongot-like lifecycle.

Validation follows mongot's schemas (``packages/search-index-schema/schema/vectorSearch`` and
``.../schema/search``, ``VectorFieldSpecification.java``);
messages use mongot's ``"<path>" <problem>`` style so callers see what a real server
would reject. Status is computed lazily from timestamps (no timer threads):
PENDING for the first third of the build delay, BUILDING until it elapses, READY
after, so client code that polls ``$listSearchIndexes`` is genuinely exercised.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId

from leaf_mongo.testing.docs import is_int
from leaf_mongo.testing.errors import failed_to_parse, not_implemented
from leaf_mongo.testing.stored_source import parse_stored_source
from leaf_mongo.testing.vectors import VectorField

MAX_DIMENSIONS = 8192
SIMILARITIES = ("euclidean", "cosine", "dotProduct")
QUANTIZATIONS = ("none", "scalar", "binary")
INDEXING_METHODS = ("hnsw", "flat")
NUM_PARTITIONS = (1, 2, 4, 8, 16, 32, 64)


def _check_keys(doc: dict[str, Any], allowed: set[str], ctx: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        where = f'"{ctx}"' if ctx else "index definition"
        raise failed_to_parse(f"{where} has unrecognized field(s): {', '.join(repr(u) for u in unknown)}")


def normalize_vector_definition(definition: Any) -> dict[str, Any]:
    """Validate a ``vectorSearch`` definition; return it with defaults applied.

    The normalized form is what "same definition" is judged on (mongot compares
    parsed definitions, so ``quantization: "none"`` equals an omitted one).
    """
    if not isinstance(definition, dict):
        raise failed_to_parse('"definition" must be a document')
    _check_keys(definition, {"fields", "nestedRoot", "storedSource", "numPartitions"}, "")
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
            _check_keys(f, {"type", "path"}, ctx)
            out_fields.append({"type": "filter", "path": path})
        elif ftype == "vector":
            out_fields.append(_normalize_vector_field(f, ctx))
        elif ftype == "autoEmbed":
            raise failed_to_parse(f'"{ctx}.type" autoEmbed is not supported by the leaf-mongo emulator')
        else:
            raise failed_to_parse(f'"{ctx}.type" must be one of [vector, filter]')
    if not any(f["type"] == "vector" for f in out_fields):
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
    _check_keys(
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
        _check_keys(opts, {"maxEdges", "numEdgeCandidates"}, f"{ctx}.hnswOptions")
        max_edges = opts.get("maxEdges", 16)
        cands = opts.get("numEdgeCandidates", 100)
        for name, value, lo, hi in (("maxEdges", max_edges, 16, 64), ("numEdgeCandidates", cands, 100, 3200)):
            if not is_int(value) or not lo <= int(value) <= hi:
                raise failed_to_parse(f'"{ctx}.hnswOptions.{name}" must be within bounds [{lo}, {hi}], got {value!r}')
        out["hnswOptions"] = {"maxEdges": int(max_edges), "numEdgeCandidates": int(cands)}
    else:
        out["hnswOptions"] = {"maxEdges": 16, "numEdgeCandidates": 100} if method == "hnsw" else None
    return out


SEARCH_FIELD_TYPES = (
    "autocomplete",
    "boolean",
    "date",
    "dateFacet",
    "document",
    "embeddedDocuments",
    "geo",
    "knnVector",
    "number",
    "numberFacet",
    "objectId",
    "string",
    "stringFacet",
    "token",
    "uuid",
    "vector",
)  # fmt: skip  (mongot packages/search-index-schema/schema/search/components/mappings/field.json)
EMULATED_FIELD_TYPES = ("boolean", "date", "document", "number", "objectId", "string", "token")
STRING_KEYS = {
    "type",
    "analyzer",
    "searchAnalyzer",
    "indexOptions",
    "store",
    "ignoreAbove",
    "multi",
    "norms",
    "similarity",
}
FIELD_KEYS = {
    "boolean": {"type"},
    "date": {"type"},
    "objectId": {"type"},
    "token": {"type", "normalizer"},
    "number": {"type", "representation", "indexIntegers", "indexDoubles"},
    "document": {"type", "dynamic", "fields"},
    "string": STRING_KEYS,
}


def _check_analyzer(value: Any, ctx: str, custom: set[str]) -> str:
    from leaf_mongo.testing.fulltext import ANALYZERS

    if not isinstance(value, str):
        raise failed_to_parse(f'"{ctx}" must be a string')
    if value in custom:
        raise failed_to_parse(f'"{ctx}": custom analyzers are not supported by the leaf-mongo emulator')
    if value not in ANALYZERS and not value.startswith("lucene."):
        raise failed_to_parse(f'"{ctx}": analyzer {value!r} not found')
    if value not in ANALYZERS:
        raise failed_to_parse(f'"{ctx}": analyzer {value!r} is not supported by the leaf-mongo emulator')
    return value


def _normalize_mapping(mapping: Any, ctx: str, custom: set[str], root: bool) -> dict[str, Any]:
    if not isinstance(mapping, dict):
        raise failed_to_parse(f'"{ctx}" must be a document')
    allowed = {"dynamic", "fields"} if root else {"type", "dynamic", "fields"}
    _check_keys(mapping, allowed, ctx)
    dynamic = mapping.get("dynamic", False)
    if isinstance(dynamic, dict):
        raise failed_to_parse(f'"{ctx}.dynamic" typeSets are not supported by the leaf-mongo emulator')
    if not isinstance(dynamic, bool):
        raise failed_to_parse(f'"{ctx}.dynamic" must be a boolean')
    fields = mapping.get("fields", {})
    if not isinstance(fields, dict):
        raise failed_to_parse(f'"{ctx}.fields" must be a document')
    if root and not dynamic and not fields:
        raise failed_to_parse(f'"{ctx}.fields" must be specified (and not empty) when "{ctx}.dynamic" is false')
    out_fields: dict[str, Any] = {}
    for name, spec in fields.items():
        fctx = f"{ctx}.fields.{name}"
        if not name:
            raise failed_to_parse(f'"{fctx}": field names must be non-empty')
        specs = spec if isinstance(spec, list) else [spec]
        if not specs:
            raise failed_to_parse(f'"{fctx}" must not be an empty array')
        normalized = [_normalize_field(s, fctx, custom) for s in specs]
        kinds = [n["type"] for n in normalized]
        if len(set(kinds)) != len(kinds):
            raise failed_to_parse(f'"{fctx}": a field cannot be mapped twice with the same type')
        out_fields[name] = normalized if isinstance(spec, list) else normalized[0]
    out: dict[str, Any] = {"dynamic": dynamic, "fields": out_fields}
    if not root:
        out["type"] = "document"
    return out


def _normalize_field(spec: Any, ctx: str, custom: set[str]) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise failed_to_parse(f'"{ctx}" must be a document')
    kind = spec.get("type")
    if kind is None:
        raise failed_to_parse(f'"{ctx}.type" is required')
    if kind not in SEARCH_FIELD_TYPES:
        raise failed_to_parse(f'"{ctx}.type" must be one of [{", ".join(SEARCH_FIELD_TYPES)}], got {kind!r}')
    if kind not in EMULATED_FIELD_TYPES:
        raise not_implemented(f'"{ctx}.type" {kind} is not supported by the leaf-mongo emulator')
    if kind == "document":
        return _normalize_mapping(spec, ctx, custom, root=False)
    _check_keys(spec, FIELD_KEYS[kind], ctx)
    out = dict(spec)
    if kind == "string":
        for key in ("analyzer", "searchAnalyzer"):
            if key in spec:
                _check_analyzer(spec[key], f"{ctx}.{key}", custom)
        if "multi" in spec:
            raise not_implemented(f'"{ctx}.multi" is not supported by the leaf-mongo emulator')
        if spec.get("indexOptions", "offsets") not in ("docs", "freqs", "positions", "offsets"):
            raise failed_to_parse(f'"{ctx}.indexOptions" must be one of [docs, freqs, positions, offsets]')
    if kind == "token" and spec.get("normalizer", "none") not in ("none", "lowercase"):
        raise failed_to_parse(f'"{ctx}.normalizer" must be one of [lowercase, none]')
    if kind == "number" and spec.get("representation", "double") not in ("int64", "double"):
        raise failed_to_parse(f'"{ctx}.representation" must be one of [int64, double]')
    return out


def normalize_search_definition(definition: Any) -> dict[str, Any]:
    """Validate a ``search`` definition as mongot's schema does (``search/components/*.json``).

    ``mappings`` is required; ``mappings.dynamic`` defaults to false, and then ``mappings.fields`` must
    name at least one field; field types come from mongot's list; analyzers are named ``lucene.*``
    built-ins. What the emulator cannot serve (custom analyzers, synonyms, autocomplete, ...) is refused
    with code 238 instead of being accepted and ignored.
    """
    if not isinstance(definition, dict):
        raise failed_to_parse('"definition" must be a document')
    _check_keys(
        definition,
        {
            "mappings",
            "analyzer",
            "searchAnalyzer",
            "analyzers",
            "synonyms",
            "storedSource",
            "numPartitions",
            "typeSets",
        },
        "",
    )
    if "mappings" not in definition:
        raise failed_to_parse('"mappings" is required')
    custom = {str(a.get("name")) for a in definition.get("analyzers", []) if isinstance(a, dict)}
    for key in ("synonyms", "analyzers", "typeSets"):
        if key in definition:
            raise not_implemented(f'"{key}" is not supported by the leaf-mongo emulator')
    out: dict[str, Any] = {"mappings": _normalize_mapping(definition["mappings"], "mappings", custom, root=True)}
    for key in ("analyzer", "searchAnalyzer"):
        if key in definition:
            out[key] = _check_analyzer(definition[key], key, custom)
    out.setdefault("analyzer", "lucene.standard")
    out.setdefault("searchAnalyzer", out["analyzer"])
    if "storedSource" in definition:
        out["storedSource"] = copy.deepcopy(definition["storedSource"])
    if "numPartitions" in definition:
        if definition["numPartitions"] not in (1, 2, 4):
            raise failed_to_parse('"numPartitions" must be one of [1, 2, 4]')
        out["numPartitions"] = definition["numPartitions"]
    return out


def normalize(index_type: str, definition: Any) -> dict[str, Any]:
    if index_type == "vectorSearch":
        return normalize_vector_definition(definition)
    if index_type == "search":
        return normalize_search_definition(definition)
    raise failed_to_parse(f'"type" must be one of [search, vectorSearch], got {index_type!r}')


@dataclass
class SearchIndex:
    """One search index and its (lazy) build state."""

    name: str
    type: str
    definition: dict[str, Any]  # latest, as the user sent it
    normalized: dict[str, Any]
    build_delay: float
    id: str = field(default_factory=lambda: str(ObjectId()))
    version: int = 0
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    build_started: float = field(default_factory=time.monotonic)
    # Definition queries use until a rebuild finishes (mongot serves from the old index).
    active_normalized: dict[str, Any] | None = None

    def _progress(self) -> float:
        if self.build_delay <= 0:
            return 1.0
        return (time.monotonic() - self.build_started) / self.build_delay

    def refresh(self) -> None:
        """Swap in the new definition once its (re)build has finished."""
        if self._progress() >= 1.0:
            self.active_normalized = self.normalized

    @property
    def status(self) -> str:
        self.refresh()
        p = self._progress()
        if p >= 1.0:
            return "READY"
        if self.active_normalized is None and p < 1 / 3:
            return "PENDING"
        return "BUILDING"

    @property
    def queryable(self) -> bool:
        self.refresh()
        return self.active_normalized is not None

    @property
    def internal_state(self) -> str:
        """mongot's internal state name, used in "cannot query" errors."""
        status = self.status
        return {"PENDING": "NOT_STARTED", "BUILDING": "INITIAL_SYNC"}.get(status, "STEADY")

    def update(self, definition: dict[str, Any], normalized: dict[str, Any]) -> None:
        self.refresh()
        self.definition = copy.deepcopy(definition)
        self.normalized = normalized
        self.version += 1
        self.created_at = dt.datetime.now(dt.timezone.utc)
        self.build_started = time.monotonic()
        self.refresh()

    def vector_fields(self) -> dict[str, VectorField]:
        """Vector fields of the definition queries currently run against."""
        self.refresh()
        spec = self.active_normalized or {}
        return {
            f["path"]: VectorField(f["path"], f["numDimensions"], f["similarity"], f["quantization"])
            for f in spec.get("fields", [])
            if f["type"] == "vector"
        }

    def filter_paths(self) -> set[str]:
        self.refresh()
        spec = self.active_normalized or {}
        return {f["path"] for f in spec.get("fields", []) if f["type"] == "filter"}

    def all_vector_paths(self) -> set[str]:
        """Paths of latest and active definitions (both must be kept up to date)."""
        paths = {f["path"] for f in self.normalized.get("fields", []) if f.get("type") == "vector"}
        if self.active_normalized:
            paths |= {f["path"] for f in self.active_normalized.get("fields", []) if f.get("type") == "vector"}
        return paths

    def to_document(self) -> dict[str, Any]:
        """The ``$listSearchIndexes`` entry (mongot ListSearchIndexesResponseDefinition)."""
        status = self.status
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "status": status,
            "queryable": self.queryable,
            "latestDefinitionVersion": {"version": self.version, "createdAt": self.created_at},
            "latestDefinition": copy.deepcopy(self.definition),
            "statusDetail": [],
        }
