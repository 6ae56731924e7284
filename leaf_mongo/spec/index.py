"""The ``vectorSearch`` and ``search`` indexes: definitions derived from the spec, ensuring/waiting on them.

Index status on MongoDB Community lags (mongot refreshes ``$listSearchIndexes`` every 30 s), and a FAILED
index would otherwise be waited on forever, so waiting is done against a deadline and fails clearly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pymongo.collection import Collection
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.operations import SearchIndexModel

from leaf_mongo.connection import server_error
from leaf_mongo.errors import SearchIndexError, SpecMismatchError
from leaf_mongo.spec.vector_spec import VectorSpec

EnsureAction = Literal["created", "updated", "unchanged"]
NAMESPACE_NOT_FOUND = 26


def vector_index_definition(spec: VectorSpec) -> dict[str, Any]:
    """The ``vectorSearch`` definition for ``spec``: one vector field plus its declared filter fields.

    With ``autoembed_model`` the field is ``autoEmbed`` on the text: mongot embeds each chunk itself.
    """
    filters = [{"type": "filter", "path": f} for f in spec.filter_fields]
    if spec.autoembed_model is not None:
        auto = {
            "type": "autoEmbed",
            "modality": "text",
            "path": spec.text_field,
            "model": spec.autoembed_model,
            "numDimensions": spec.dimensions,
            "quantization": spec.autoembed_quantization,
            "similarity": spec.similarity,
        }
        return {"fields": [auto, *filters]}
    vector: dict[str, Any] = {
        "type": "vector",
        "path": spec.embedding_field,
        "numDimensions": spec.dimensions,
        "similarity": spec.similarity,
        "quantization": spec.quantization,
    }
    hnsw = {
        k: v
        for k, v in (("maxEdges", spec.hnsw_max_edges), ("numEdgeCandidates", spec.hnsw_num_edge_candidates))
        if v is not None
    }
    if hnsw:
        vector["hnswOptions"] = hnsw
    return {"fields": [vector, *filters]}


FILTER_TYPES = ("token", "number", "boolean", "date", "objectId")  # a filter field may hold any of these


def fulltext_index_definition(spec: VectorSpec) -> dict[str, Any]:
    """The ``search`` definition for ``spec``: its full-text paths as ``string`` (one analyzer), and its
    filter fields under every type ``equals``/``in``/``range`` may compare (the hybrid pre-filter)."""
    fields: dict[str, Any] = {}
    for path in spec.fulltext_fields:
        fields[path] = [{"type": "string", "analyzer": spec.fulltext_analyzer}]
    for path in spec.filter_fields:
        fields.setdefault(path, []).extend({"type": t} for t in FILTER_TYPES)
    mapped = {p: (v[0] if len(v) == 1 else v) for p, v in fields.items()}
    return {"mappings": {"dynamic": False, "fields": mapped}}


def ensure_fulltext_index(collection: Collection[Any], name: str, spec: VectorSpec) -> EnsureAction:
    """Create the ``search`` index if missing, update it in place when its definition differs."""
    wanted = fulltext_index_definition(spec)
    return _ensure_search_index(
        collection,
        name,
        "search",
        wanted,
        lambda latest: (latest or {}).get("mappings") == wanted["mappings"],
        "LEAF_MONGO_FULLTEXT_INDEX_NAME",
    )


def _ensure_search_index(
    collection: Collection[Any],
    name: str,
    kind: str,
    wanted: dict[str, Any],
    matches: Callable[[dict[str, Any] | None], bool],
    setting: str,
) -> EnsureAction:
    """The lifecycle both index types share: create if missing, refuse another type, update in place."""
    existing = get_search_index(collection, name)
    try:
        if existing is None:
            collection.create_search_index(SearchIndexModel(definition=wanted, name=name, type=kind))
            return "created"
        if existing.get("type", kind) != kind:
            raise SearchIndexError(
                f"search index {name!r} on {collection.full_name} exists but is of type {existing.get('type')!r}, "
                f"not {kind}; choose another {setting}"
            )
        if matches(existing.get("latestDefinition")):
            return "unchanged"
        collection.update_search_index(name, wanted)
        return "updated"
    except PyMongoError as exc:  # a refusal, or a connection lost under the command: one line naming the step
        raise server_error(exc, f"creating search index {name!r} on {collection.full_name}") from exc


def definitions_match(wanted: dict[str, Any], existing: dict[str, Any] | None) -> bool:
    """True when every field we ask for is present with the same options.

    The server may add defaults to ``latestDefinition`` (e.g. ``hnswOptions``); only the keys we set count,
    but the set of fields must be the same.
    """
    if not existing:
        return False
    have = {(f.get("type"), f.get("path")): f for f in existing.get("fields", [])}
    want = {(f["type"], f["path"]): f for f in wanted["fields"]}
    if set(have) != set(want):
        return False
    for key, field in want.items():
        other = have[key]
        for k, v in field.items():
            default = {"quantization": "none"}.get(k)
            if other.get(k, default) != v:
                return False
    return True


def get_search_index(collection: Collection[Any], name: str) -> dict[str, Any] | None:
    """The ``$listSearchIndexes`` entry for ``name``, or None."""
    try:
        for entry in collection.list_search_indexes(name):
            if entry.get("name") == name:
                return dict(entry)
    except OperationFailure as exc:
        if exc.code == NAMESPACE_NOT_FOUND:  # no collection, so no index
            return None
        raise server_error(exc, f"listing search indexes of {collection.full_name}") from exc
    except PyMongoError as exc:  # the connection lost twice in a row (pymongo retries a read once)
        raise server_error(exc, f"listing search indexes of {collection.full_name}") from exc
    return None


def ensure_vector_index(collection: Collection[Any], name: str, spec: VectorSpec) -> EnsureAction:
    """Create the index if missing, update it if only its options differ; never drop data.

    mongot refuses any update touching an autoEmbed field (AutoEmbeddingIndexValidator): say so, and how to
    rebuild, rather than let the server's message surface from an update.
    """
    wanted = vector_index_definition(spec)
    latest = (get_search_index(collection, name) or {}).get("latestDefinition")
    auto = any(f.get("type") == "autoEmbed" for d in (wanted, latest or {}) for f in d.get("fields", []))
    if auto and latest is not None and not definitions_match(wanted, latest):
        raise SearchIndexError(
            f"search index {name!r} on {collection.full_name} has other autoEmbed fields than the spec asks for, "
            "and mongot cannot update autoEmbed fields: re-run ingest with --recreate (every chunk is re-embedded)"
        )
    return _ensure_search_index(
        collection,
        name,
        "vectorSearch",
        wanted,
        lambda latest: definitions_match(wanted, latest),
        "LEAF_MONGO_INDEX_NAME",
    )


def wait_for_vector_index(
    collection: Collection[Any],
    name: str,
    *,
    timeout: float,
    require_ready: bool = False,
    interval: float = 0.5,
    on_status: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Poll until the index is queryable (or READY after an update); fail on FAILED or at the deadline."""
    deadline = time.monotonic() + timeout
    status = "DOES_NOT_EXIST"
    while True:
        entry = get_search_index(collection, name)
        status = entry.get("status", "UNKNOWN") if entry else "DOES_NOT_EXIST"
        if on_status:
            on_status(status)
        if entry is not None:
            if status == "FAILED":
                raise SearchIndexError(
                    f"search index {name!r} on {collection.full_name} FAILED to build: {failure_reason(entry)}"
                )
            if status == "READY" or (entry.get("queryable") and not require_ready):
                return entry
        if time.monotonic() >= deadline:
            raise SearchIndexError(
                f"search index {name!r} on {collection.full_name} is still {status} after {timeout:.0f} s; "
                "MongoDB Community refreshes index status only every 30 s: raise LEAF_MONGO_INDEX_WAIT_SECONDS"
            )
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def failure_reason(entry: Mapping[str, Any]) -> str:
    """Why mongot marked an index FAILED: each host's ``mainIndex``/``stagedIndex`` ``message`` (its
    ``IndexStatus.failed(message)``, listed in ``statusDetail``), or a top-level ``message``."""
    reasons = [
        str(detail["message"])
        for host in entry.get("statusDetail") or []
        if isinstance(host, Mapping)
        for detail in (host.get("mainIndex"), host.get("stagedIndex"))
        if isinstance(detail, Mapping) and detail.get("message")
    ]
    if entry.get("message"):
        reasons.append(str(entry["message"]))
    return "; ".join(dict.fromkeys(reasons)) or "the server gave no reason; drop and re-create it (ingest --recreate)"


wait_for_search_index = wait_for_vector_index  # the lifecycle is the same for both index types


def check_vector_index(index: Mapping[str, Any] | None, name: str, spec: VectorSpec, where: str) -> None:
    """The named index must exist and index the spec's vector field at the spec's dimensions."""
    if index is None:
        raise SearchIndexError(
            f"collection {where} has no search index named {name!r} (the server would answer every query "
            "with nothing); check LEAF_MONGO_INDEX_NAME or run ingest to create it"
        )
    if index.get("type", "vectorSearch") != "vectorSearch":
        raise SearchIndexError(f"search index {name!r} on {where} is of type {index.get('type')!r}, not vectorSearch")
    definition = index.get("latestDefinition") or index.get("definition") or {}
    kind, path = ("autoEmbed", spec.text_field) if spec.autoembed_model else ("vector", spec.embedding_field)
    vector = next(
        (f for f in definition.get("fields", []) if f.get("type") == kind and f.get("path") == path),
        None,
    )
    if vector is None:
        raise SpecMismatchError(f"search index {name!r} on {where} does not index {path!r} as a {kind} field")
    if vector.get("numDimensions") not in (None, spec.dimensions):
        raise SpecMismatchError(
            f"search index {name!r} on {where} has numDimensions {vector.get('numDimensions')} but the stored "
            f"spec has {spec.dimensions}: re-run ingest to update the index"
        )


def check_fulltext_index(index: Mapping[str, Any] | None, name: str, spec: VectorSpec, where: str) -> None:
    """The spec has full-text paths and the named ``search`` index maps every one of them as string."""
    if not spec.fulltext_fields:
        raise SpecMismatchError(
            f"collection {where} was ingested without a full-text index (LEAF_MONGO_FULLTEXT=false / "
            "--no-fulltext): re-run ingest with full text on (the default) to add it; the vectors are kept"
        )
    if index is None:
        raise SearchIndexError(
            f"collection {where} has no search index named {name!r} for full text (the server would answer "
            "every query with nothing); check LEAF_MONGO_FULLTEXT_INDEX_NAME or re-run ingest to create it"
        )
    if index.get("type") != "search":
        raise SearchIndexError(f"search index {name!r} on {where} is of type {index.get('type')!r}, not search")
    definition = index.get("latestDefinition") or index.get("definition") or {}
    fields = (definition.get("mappings") or {}).get("fields") or {}
    dynamic = (definition.get("mappings") or {}).get("dynamic") is True

    def is_string(value: Any) -> bool:
        return any(
            isinstance(v, Mapping) and v.get("type") == "string"
            for v in (value if isinstance(value, list) else [value])
        )

    missing = [p for p in spec.fulltext_fields if not dynamic and not is_string(fields.get(p))]
    if missing:
        raise SpecMismatchError(
            f"search index {name!r} on {where} does not index {', '.join(missing)} as string: re-run ingest to "
            "update the index"
        )
