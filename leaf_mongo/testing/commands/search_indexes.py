"""Search-index commands (createSearchIndexes, updateSearchIndex, dropSearchIndex) and ``$listSearchIndexes``."""

from __future__ import annotations

import copy
from typing import Any

from leaf_mongo.testing.autoembed_definition import CATALOG, check_models, check_update
from leaf_mongo.testing.errors import (
    INDEX_ALREADY_EXISTS,
    INDEX_NOT_FOUND,
    NAMESPACE_NOT_FOUND,
    CommandError,
    bad_value,
    failed_to_parse,
)
from leaf_mongo.testing.search_index import SearchIndex, normalize
from leaf_mongo.testing.state import BackendState


def search_index_by(state: BackendState, db: str, coll: str, cmd: dict[str, Any]) -> SearchIndex:
    """The index a command names by ``name`` or ``id`` (IndexNotFound otherwise)."""
    indexes = state._search_indexes.get((db, coll), {})
    if "name" in cmd and "id" in cmd:
        # UpdateSearchIndexCommandDefinition.java: exactlyOneOf(id, name) (ParsedFieldGroup message).
        raise failed_to_parse('only one of ["id", "name"] may be present')
    if "name" in cmd:
        idx = indexes.get(cmd["name"])
        kind, value = "name", cmd["name"]
    elif "id" in cmd:
        idx = next((i for i in indexes.values() if i.id == str(cmd["id"])), None)
        kind, value = "id", cmd["id"]
    else:
        raise failed_to_parse("Expected one of index name or ID")
    if idx is None:
        raise CommandError(f"No index with {kind} {value} exists in namespace {db}.{coll}", INDEX_NOT_FOUND)
    return idx


class SearchIndexCommands(BackendState):
    def _registered_models(self) -> frozenset[str]:
        """mongot's EmbeddingModelCatalog: the Community models, or none without an embedding config."""
        return frozenset(CATALOG) if self.embedding is not None else frozenset()

    def _create_search_indexes(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name = cmd["createSearchIndexes"]
        specs = cmd.get("indexes")
        if not isinstance(specs, list) or not specs:
            raise failed_to_parse('"indexes" must be a non-empty array')
        parsed = []
        for spec in specs:
            index_name = spec.get("name", "default")
            index_type = spec.get("type", "search")
            definition = spec.get("definition")
            if definition is None:
                raise failed_to_parse('"definition" is required')
            normalized = normalize(index_type, definition)
            check_models(normalized, self._registered_models())
            parsed.append((index_name, index_type, definition, normalized))
        existing = self._search_indexes.get((db, name), {})
        for index_name, index_type, _, normalized in parsed:
            old = existing.get(index_name)
            if old is not None and (old.type != index_type or old.normalized != normalized):
                raise CommandError(
                    f"Index {index_name} already exists with a different definition. Drop it first if needed.",
                    INDEX_ALREADY_EXISTS,
                )
        if not self._exists(db, name):
            self._client[db].create_collection(name)
        indexes = self._search_indexes.setdefault((db, name), {})
        created = []
        for index_name, index_type, definition, normalized in parsed:
            if index_name not in indexes:
                indexes[index_name] = SearchIndex(
                    name=index_name,
                    type=index_type,
                    definition=copy.deepcopy(definition),
                    normalized=normalized,
                    build_delay=self.index_build_delay,
                )
            created.append({"id": indexes[index_name].id, "name": index_name})
        self._refresh_vector_stores((db, name))
        self._catalog_changed((db, name))
        return {"indexesCreated": created}

    def _update_search_index(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name = cmd["updateSearchIndex"]
        idx = search_index_by(self, db, name, cmd)
        definition = cmd.get("definition")
        if definition is None:
            raise failed_to_parse('"definition" is required')
        index_type = cmd.get("type", idx.type)
        if index_type != idx.type:
            raise bad_value(f"Cannot change the type of index {idx.name} from {idx.type} to {index_type}")
        normalized = normalize(idx.type, definition)
        check_models(normalized, self._registered_models())
        check_update(idx.name, idx.normalized, normalized)
        idx.update(definition, normalized)
        self._refresh_vector_stores((db, name))
        self._catalog_changed((db, name))
        return {}

    def _drop_search_index(self, db: str, cmd: dict[str, Any], conn: int) -> dict[str, Any]:
        name = cmd["dropSearchIndex"]
        if not self._exists(db, name):
            raise CommandError(f"Collection '{db}.{name}' does not exist.", NAMESPACE_NOT_FOUND)
        idx = search_index_by(self, db, name, cmd)
        del self._search_indexes[(db, name)][idx.name]
        self._refresh_vector_stores((db, name))
        self._catalog_changed((db, name))
        return {}
