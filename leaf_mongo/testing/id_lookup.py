"""``_id`` lookups in O(1): mongomock answers every filter, ``{_id: value}`` included, by scanning the
whole collection, so each idempotent upsert of an ingest cost O(collection size) and a large ingest spent
most of its time inside the emulator. A real server uses the ``_id`` index; so does this.

:class:`IdIndexedCollection` is mongomock's collection with one change: a filter that is only an equality
(``value``, ``{$eq: value}``) or ``{$in: [...]}`` on ``_id`` reads the matching documents straight from the
store by key. Every other filter, and any ``_id`` value whose equality is not plain hashing (null, arrays,
documents, booleans, regexes), goes through mongomock unchanged. Hits are re-checked with mongomock's
matcher, so the answer is the one a scan would give; ``$in`` returns them in ``_id`` order, as an ``_id``
index scan does.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from typing import Any

import mongomock
from bson.regex import Regex
from mongomock import helpers as mm_helpers
from mongomock.filtering import filter_applies

__all__ = ["IdIndexedCollection", "duplicate_key", "id_values"]

_UNHASHED = (dict, list, tuple, bool, re.Pattern, Regex)


def id_values(spec: Any) -> list[Any] | None:
    """The ``_id`` values a filter selects by equality only, or None when it is any other filter."""
    if not isinstance(spec, dict) or len(spec) != 1 or "_id" not in spec:
        return None
    value = spec["_id"]
    if isinstance(value, dict):
        if set(value) == {"$eq"}:
            values = [value["$eq"]]
        elif set(value) == {"$in"} and isinstance(value["$in"], list):
            values = list(value["$in"])
        else:
            return None
    else:
        values = [value]
    if any(v is None or isinstance(v, _UNHASHED) for v in values):
        return None
    return values


class IdIndexedCollection(mongomock.Collection):  # type: ignore[misc]
    """mongomock's collection, with ``_id`` equality filters answered from the store by key, and duplicate-key
    errors that name the index, its key pattern and the duplicated value, as mongod's do."""

    def _apply_update_pipeline(self, existing_document: dict[str, Any], pipeline: Any, session: Any) -> None:
        """An update pipeline whose result lacks ``_id`` keeps the document's (mongod re-adds it; mongomock lost it)."""
        doc_id = existing_document.get("_id")
        super()._apply_update_pipeline(existing_document, pipeline, session)  # type: ignore[misc]
        if "_id" not in existing_document:
            existing_document["_id"] = doc_id

    def _ensure_uniques(self, new_data: dict[str, Any]) -> None:
        """mongomock's unique-index check (``new_data`` is already stored), raising mongod's E11000 error."""
        store: Any = self._store
        indexes: dict[str, dict[str, Any]] = store.indexes
        for name, index in indexes.items():
            if not index.get("unique"):
                continue
            key_value: dict[str, Any] = {}
            for key, _ in index["key"]:
                try:
                    key_value[key] = mm_helpers.get_value_by_dot(new_data, key)
                except KeyError:
                    key_value[key] = None
            if index.get("sparse") and set(map(repr, key_value.values())) == {"None"}:
                continue
            query: dict[str, Any] = dict(key_value)
            if index.get("partialFilterExpression") is not None:
                query = {"$and": [index["partialFilterExpression"], key_value]}
            if len(list(itertools.islice(self._iter_documents(query), 2))) > 1:
                raise duplicate_key(self.full_name, name, dict(index["key"]), key_value)

    def _iter_documents(self, filter: Any) -> Iterator[dict[str, Any]]:
        values = id_values(filter)
        if values is None:
            return super()._iter_documents(filter)  # type: ignore[misc,no-any-return]
        store = self._store
        store._remove_expired_documents()  # TTL indexes, as the scan would
        docs = store._documents
        hits: list[dict[str, Any]] = []
        seen: set[Any] = set()
        for value in values:
            try:
                if value in seen:
                    continue
                seen.add(value)
                doc = docs.get(value)
            except TypeError:  # unhashable after all: let mongomock decide
                return super()._iter_documents(filter)  # type: ignore[misc,no-any-return]
            if doc is not None and filter_applies({"_id": value}, doc):
                hits.append(doc)
        if len(hits) > 1:
            with contextlib.suppress(TypeError):  # mixed _id types: keep the query's order
                hits.sort(key=lambda d: d["_id"])
        return iter(hits)


def duplicate_key(ns: str, index: str, pattern: dict[str, Any], value: dict[str, Any]) -> mongomock.DuplicateKeyError:
    """mongod's E11000 error: its message, and ``keyPattern``/``keyValue`` (in the write error or the reply)."""
    shown = ", ".join(f"{k}: {_shell(v)}" for k, v in value.items())
    return mongomock.DuplicateKeyError(
        f"E11000 duplicate key error collection: {ns} index: {index} dup key: {{ {shown} }}",
        11000,
        {"keyPattern": pattern, "keyValue": value},
    )


def _shell(value: Any) -> str:
    """A value as mongod prints it in an E11000 message (strings quoted, the rest as Python shows them)."""
    return f'"{value}"' if isinstance(value, str) else repr(value)
