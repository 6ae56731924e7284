"""``storedSource`` in index definitions and ``returnStoredSource`` in ``$vectorSearch``.

Follows mongot's ``index/definition/StoredSourceDefinition.java``: ``true`` (all
fields; refused for vector indexes, ``VectorIndexDefinition.java``), ``false``
(the default: nothing stored), ``{include: [...]}`` or ``{exclude: [...]}``
(exactly one, a non-empty list of non-blank paths without collisions such as
``a`` with ``a.b``); ``_id`` is always included. With ``returnStoredSource:
true`` a query returns the stored fields instead of the full documents and fails
with "storedSource is not configured for this index." when nothing is stored
(``server/command/search/VectorSearchCommand.java``).
"""

from __future__ import annotations

import copy
from typing import Any

from leaf_mongo.testing.errors import failed_to_parse

Trie = dict[str, Any]  # path part -> sub-trie, or True for a stored/excluded leaf


def parse_stored_source(value: Any, index_type: str) -> Any:
    """Validate a ``storedSource`` value; return its normalized form."""
    if isinstance(value, bool):
        if value and index_type == "vectorSearch":
            raise failed_to_parse(
                "storedSource: true is not supported for vector indexes. Accepted values are include, exclude, "
                "or false."
            )
        return value
    if not isinstance(value, dict):
        raise failed_to_parse('"storedSource" must be a boolean or document')
    unknown = sorted(set(value) - {"include", "exclude"})
    if unknown:
        raise failed_to_parse(f'"storedSource" unrecognized field "{unknown[0]}"')
    present = [k for k in ("include", "exclude") if k in value]
    if not present:
        raise failed_to_parse('"storedSource" one of ["include", "exclude"] must be present')
    if len(present) > 1:
        raise failed_to_parse('"storedSource" only one of ["include", "exclude"] may be present')
    mode = present[0]
    paths = value[mode]
    if not isinstance(paths, list) or not paths:
        raise failed_to_parse(f'"storedSource.{mode}" must be a non-empty array')
    for i, path in enumerate(paths):
        if not isinstance(path, str) or not path.strip():
            raise failed_to_parse(f'"storedSource.{mode}[{i}]" must be a non-blank string')
    leaves = set(paths)
    ancestors = {".".join(p.split(".")[:n]) for p in paths for n in range(1, p.count(".") + 1)}
    if leaves & ancestors:
        raise failed_to_parse('"storedSource" path collision is not allowed')
    return {mode: sorted(leaves)}


def stores_anything(stored: Any) -> bool:
    return stored is True or isinstance(stored, dict)


def stored_document(doc: dict[str, Any], stored: Any) -> dict[str, Any]:
    """The part of ``doc`` the index stores (what ``returnStoredSource: true`` returns)."""
    if stored is True:
        return copy.deepcopy(doc)
    if "include" in stored:
        out = _include(doc, _trie(stored["include"]))
        if "_id" in doc:
            out = {"_id": copy.deepcopy(doc["_id"]), **{k: v for k, v in out.items() if k != "_id"}}
        return out
    return _exclude(doc, _trie(stored["exclude"]))


def _trie(paths: list[str]) -> Trie:
    root: Trie = {}
    for path in paths:
        node = root
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = True
    return root


def _include(value: Any, trie: Trie) -> Any:
    if isinstance(value, list):
        return [_include(v, trie) for v in value if isinstance(v, (dict, list))]
    out: dict[str, Any] = {}
    for key, sub in value.items():
        node = trie.get(key)
        if node is True:
            out[key] = copy.deepcopy(sub)
        elif node is not None and isinstance(sub, (dict, list)):
            out[key] = _include(sub, node)
    return out


def _exclude(value: Any, trie: Trie) -> Any:
    if isinstance(value, list):
        return [_exclude(v, trie) if isinstance(v, (dict, list)) else copy.deepcopy(v) for v in value]
    out: dict[str, Any] = {}
    for key, sub in value.items():
        node = trie.get(key)
        if node is True:
            continue
        out[key] = _exclude(sub, node) if node is not None and isinstance(sub, (dict, list)) else copy.deepcopy(sub)
    return out
