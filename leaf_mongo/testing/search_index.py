"""Search indexes and their mongot-like lifecycle.

Definitions are validated by type (:mod:`~leaf_mongo.testing.vector_definition`,
:mod:`~leaf_mongo.testing.search_definition`; :func:`normalize` picks one). Status is computed lazily
from timestamps (no timer threads):
PENDING for the first third of the build delay, BUILDING until it elapses, READY
after, so client code that polls ``$listSearchIndexes`` is genuinely exercised.
A test can hold a build in BUILDING or mark it FAILED (:mod:`~leaf_mongo.testing.index_control`).
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId

from leaf_mongo.testing.autoembed_definition import AutoEmbedSpec, autoembed_fields
from leaf_mongo.testing.errors import failed_to_parse
from leaf_mongo.testing.search_definition import normalize_search_definition
from leaf_mongo.testing.vector_definition import normalize_vector_definition
from leaf_mongo.testing.vector_store import VectorField


def normalize(index_type: str, definition: Any) -> dict[str, Any]:
    """The validated, normalized definition of an index of ``index_type``."""
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
    # A test's hold (index_control): "BUILDING" (the build never finishes) or "FAILED" (with mongot's message).
    held: str | None = None
    held_message: str | None = None

    def _progress(self) -> float:
        if self.build_delay <= 0:
            return 1.0
        return (time.monotonic() - self.build_started) / self.build_delay

    def refresh(self) -> None:
        """Swap in the new definition once its (re)build has finished (never while a test holds it)."""
        if self.held is None and self._progress() >= 1.0:
            self.active_normalized = self.normalized

    @property
    def status(self) -> str:
        self.refresh()
        if self.held is not None:
            return self.held
        p = self._progress()
        if p >= 1.0:
            return "READY"
        if self.active_normalized is None and p < 1 / 3:
            return "PENDING"
        return "BUILDING"

    @property
    def queryable(self) -> bool:
        self.refresh()
        return self.active_normalized is not None and self.held != "FAILED"  # mongot: FAILED serves no queries

    @property
    def internal_state(self) -> str:
        """mongot's internal state name, used in "cannot query" errors."""
        status = self.status
        return {"PENDING": "NOT_STARTED", "BUILDING": "INITIAL_SYNC", "FAILED": "FAILED"}.get(status, "STEADY")

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
        out = {
            f["path"]: VectorField(f["path"], f["numDimensions"], f["similarity"], f["quantization"])
            for f in spec.get("fields", [])
            if f["type"] == "vector"
        }
        for f in autoembed_fields(spec):
            auto = AutoEmbedSpec.of(f)
            # The derived index (AutoEmbeddingIndexDefinitionUtils): a vector field; only binary is Lucene-quantized.
            quant = "binary" if f["quantization"] == "binary" else "none"
            out[f["path"]] = VectorField(f["path"], f["numDimensions"], f["similarity"], quant, auto.store_key, auto)
        return out

    def autoembed_specs(self) -> set[AutoEmbedSpec]:
        """autoEmbed fields of latest and active definitions (both must be kept up to date)."""
        self.refresh()
        fields = autoembed_fields(self.normalized) + autoembed_fields(self.active_normalized)
        return {AutoEmbedSpec.of(f) for f in fields}

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
            "statusDetail": self._status_detail(status),
        }

    def _status_detail(self, status: str) -> list[dict[str, Any]]:
        """mongot's per-host detail; given only for a FAILED index, whose ``mainIndex.message`` says why
        (ListSearchIndexesResponseDefinition.HostIndexStatusDetail). Otherwise empty (emulator limitation)."""
        if status != "FAILED":
            return []
        main: dict[str, Any] = {
            "status": "FAILED",
            "queryable": False,
            "definitionVersion": {"version": self.version, "createdAt": self.created_at},
            "definition": copy.deepcopy(self.definition),
        }
        if self.held_message:
            main["message"] = self.held_message
        return [{"hostname": "localhost", "status": "FAILED", "queryable": False, "mainIndex": main}]
