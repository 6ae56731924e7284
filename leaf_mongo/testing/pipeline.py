"""Aggregation stages the emulator runs itself, and the rewrites that let mongomock run the rest.

``SOURCE_STAGES`` is the one table mapping a first-stage name (the search
family: ``$vectorSearch``, ``$listSearchIndexes``, ``$search``...) to the
function producing its documents; everything after it goes to mongomock, after
:func:`rewrite_stage` has mapped stages it lacks onto ones it has and resolved
``{$meta: ...}`` to the hidden fields the source stages set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from leaf_mongo.testing.commands.search_indexes import list_search_indexes
from leaf_mongo.testing.errors import CommandError
from leaf_mongo.testing.state import BackendState, MockCollection
from leaf_mongo.testing.vector_search import SCORE_FIELD, vector_search

SourceStage = Callable[[BackendState, str, MockCollection, Any], list[dict[str, Any]]]


def _full_text(name: str) -> SourceStage:
    def refuse(state: BackendState, db: str, coll: MockCollection, spec: Any) -> list[dict[str, Any]]:
        raise CommandError(f"{name} (full-text search) is not supported by the leaf-mongo emulator", 238)

    return refuse


SOURCE_STAGES: dict[str, SourceStage] = {
    "$vectorSearch": vector_search,
    "$listSearchIndexes": list_search_indexes,
    "$search": _full_text("$search"),
    "$searchMeta": _full_text("$searchMeta"),
}
# Server message for these stages outside position 0: "<name> is only valid as the first stage in a pipeline".
FIRST_STAGE_ONLY = frozenset(SOURCE_STAGES)

__all__ = ["FIRST_STAGE_ONLY", "SCORE_FIELD", "SOURCE_STAGES", "rewrite_stage"]


def _rewrite_meta(value: Any) -> Any:
    """Replace ``{$meta: "vectorSearchScore"}`` by a reference to the hidden score field."""
    if isinstance(value, dict):
        if len(value) == 1 and value.get("$meta") == "vectorSearchScore":
            return "$" + SCORE_FIELD
        return {k: _rewrite_meta(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite_meta(v) for v in value]
    return value


def _is_meta(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "$meta" in value


def rewrite_stage(stage: dict[str, Any]) -> list[dict[str, Any]]:
    """Map stages mongomock lacks onto ones it has, and resolve ``$meta``."""
    name, arg = next(iter(stage.items()))
    if name == "$unset":
        fields = [arg] if isinstance(arg, str) else list(arg)
        return [{"$project": dict.fromkeys(fields, 0)}]
    if name == "$replaceWith":
        return [{"$replaceRoot": {"newRoot": _rewrite_meta(arg)}}]
    if name == "$project" and isinstance(arg, dict):
        metas = {k: v for k, v in arg.items() if _is_meta(v)}
        others = {k: v for k, v in arg.items() if k not in metas}
        if metas and others and all(v in (0, False) for v in others.values()):
            # $meta is allowed inside an exclusion projection on the server; mongomock
            # does not allow computed fields there, so split it in two stages.
            return [{"$addFields": _rewrite_meta(metas)}, {"$project": others}]
    return [{name: _rewrite_meta(arg)}]
