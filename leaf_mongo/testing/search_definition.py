"""``search`` (full-text) index definitions, validated as mongot's schema does and normalized.

Sources: mongot ``packages/search-index-schema/schema/search/components/*.json`` (``mappings.json``: fields
are required when ``dynamic`` is false; ``common.json``: the analyzers, ``lucene.*`` built-ins or custom ones);
the field types as mongot's parser reads them (see ``SEARCH_FIELD_TYPES``). What the emulator cannot serve
(custom analyzers, synonyms, autocomplete, automated embedding, ...) is refused with NotImplemented instead of
being accepted and ignored; the analyzers it serves are the ones :mod:`leaf_mongo.testing.fulltext` builds.
"""

from __future__ import annotations

import copy
from typing import Any

from leaf_mongo.testing.errors import failed_to_parse, not_implemented, reject_unknown_fields
from leaf_mongo.testing.fulltext import ANALYZERS

# mongot parses a field's type as FieldTypeDefinition.Type in camelCase (MT index/definition/FieldTypeDefinition
# .java); an unknown one fails in EnumField.parse (MT util/bson/parser/EnumField.java) with "must be one of [...]",
# listing the values not marked @Deprecated, sorted. `autoEmbed` is a vectorSearch-index type only: in a search
# index mongot spells automated embedding `autoEmbedVector` (SearchAutoEmbedFieldDefinition), and `autoEmbed` gets
# that generic message. "MT" = mongot d38b926 src/main/java/com/xgen/mongot/.
SEARCH_FIELD_TYPES = (
    "autoEmbedVector",
    "autocomplete",
    "boolean",
    "date",
    "document",
    "embeddedDocuments",
    "geo",
    "knnVector",
    "number",
    "objectId",
    "string",
    "token",
    "uuid",
    "vector",
)  # fmt: skip
DEPRECATED_FIELD_TYPES = (
    "dateFacet",
    "numberFacet",
    "sortableDateBetaV1",
    "sortableNumberBetaV1",
    "sortableStringBetaV1",
    "stringFacet",
)  # parsed, but left out of the error message
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
    reject_unknown_fields(mapping, allowed, ctx)
    dynamic = mapping.get("dynamic", False)
    if isinstance(dynamic, dict):
        raise failed_to_parse(f'"{ctx}.dynamic" typeSets are not supported by the leaf-mongo emulator')
    if not isinstance(dynamic, bool):
        raise failed_to_parse(f'"{ctx}.dynamic" must be a boolean')
    fields = mapping.get("fields", {})
    if not isinstance(fields, dict):
        raise failed_to_parse(f'"{ctx}.fields" must be a document')
    # `{dynamic: false}` with no fields is a valid (empty) index: mongot's DocumentFieldDefinition defaults `fields`
    # to {} and checks no count (its test's valid "explicit dynamic" spec); Atlas and the drivers' prose tests use it.
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
    if kind not in SEARCH_FIELD_TYPES + DEPRECATED_FIELD_TYPES:
        raise failed_to_parse(f'"{ctx}.type" must be one of [{", ".join(SEARCH_FIELD_TYPES)}]')
    if kind == "autoEmbedVector":
        raise not_implemented(
            f'"{ctx}.type" autoEmbedVector: automated embedding in a search index is an emulator limitation '
            "(not supported by the leaf-mongo emulator); use an autoEmbed field in a vectorSearch index"
        )
    if kind not in EMULATED_FIELD_TYPES:
        raise not_implemented(f'"{ctx}.type" {kind} is not supported by the leaf-mongo emulator')
    if kind == "document":
        return _normalize_mapping(spec, ctx, custom, root=False)
    reject_unknown_fields(spec, FIELD_KEYS[kind], ctx)
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
    if "mappings" not in definition:  # mongot parses the required `mappings` first (Atlas says the same)
        raise failed_to_parse("Attribute mappings missing.")
    reject_unknown_fields(
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
