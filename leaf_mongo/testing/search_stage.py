"""The ``$search`` stage: its argument checked as mongot checks it, the operator evaluated, documents out.

The stage takes exactly one operator beside its options (``index``, default ``"default"``;
``scoreDetails``; options mongot has but the emulator does not implement are refused rather than
ignored). A query on a missing index returns no documents, as mongot answers it. The documents come back
best first, with ``{$meta: "searchScore"}`` (and ``"score"``) and, on request, ``"searchScoreDetails"``
in the hidden fields of :mod:`leaf_mongo.testing.meta`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from leaf_mongo.testing.docs import copy_doc
from leaf_mongo.testing.errors import failed_to_parse, not_implemented, unknown_error
from leaf_mongo.testing.fulltext import FullTextIndex
from leaf_mongo.testing.meta import SCORE_FIELD, SEARCH_DETAILS_FIELD, SEARCH_SCORE_FIELD
from leaf_mongo.testing.search_context import Context
from leaf_mongo.testing.search_operators import OPERATORS, evaluate

SEARCH_KEYS = frozenset(
    {"index", "scoreDetails", "concurrent", "returnStoredSource", "count", "tracking", "highlight", "sort"}
)
# Operators tantivy ranks by itself: at the top of the tree they can stop at the $limit that follows the stage.
TOP_K_OPERATORS = ("text", "phrase")

Hit = tuple[Any, float, "dict[str, Any] | None"]  # (store key, score, score details)


def run_search(
    arg: Any,
    index_for: Callable[[str], FullTextIndex | None],
    documents: Mapping[Any, dict[str, Any]],
    limit: int | None = None,
    copy_docs: bool = True,
) -> list[dict[str, Any]]:
    """The documents of a ``$search`` stage whose argument is ``arg``, best first, with their score (and
    details) in hidden fields. ``index_for`` finds a search index by name; ``documents`` are the stored ones."""
    if not isinstance(arg, Mapping):
        raise failed_to_parse("$search must take a nested object")
    operators = [k for k in arg if k not in SEARCH_KEYS]
    if len(operators) != 1:
        raise unknown_error(
            '"$search" must contain exactly one operator'
            + (f", got {', '.join(operators)}" if operators else "")
            + f" (operators: {', '.join(sorted(OPERATORS))})"
        )
    for key in ("highlight", "sort", "tracking"):
        if key in arg:
            raise not_implemented(f'"$search.{key}" is not supported by the leaf-mongo emulator')
    if arg.get("returnStoredSource"):
        raise not_implemented('"$search.returnStoredSource" is not supported by the leaf-mongo emulator')
    name = arg.get("index", "default")
    if not isinstance(name, str):
        raise unknown_error('"$search.index" must be a string')
    details = arg.get("scoreDetails", False)
    if not isinstance(details, bool):
        raise unknown_error('"$search.scoreDetails" must be a boolean')
    op = operators[0]
    index = index_for(name)
    if index is None:
        return []  # mongot answers a query on a missing index with no results
    hits = ranked_hits(index, {op: arg[op]}, details, limit)
    if limit:
        hits = hits[:limit]
    out = []
    for key, score, explained in hits:
        stored = documents.get(key)
        if stored is None:
            continue
        doc = copy_doc(stored) if copy_docs else dict(stored)
        doc[SEARCH_SCORE_FIELD] = score
        doc[SCORE_FIELD] = score
        if details:
            doc[SEARCH_DETAILS_FIELD] = explained
        out.append(doc)
    return out


def ranked_hits(
    index: FullTextIndex, operator: Mapping[str, Any], score_details: bool, limit: int | None = None
) -> list[Hit]:
    """Every document ``operator`` matches in ``index``, best first.

    ``limit`` (the ``$limit`` right after ``$search``) lets a top-level ``text``/``phrase`` collect only
    its best hits from tantivy; compound queries need every match of their clauses.
    """
    top = None
    if next(iter(operator)) in TOP_K_OPERATORS:
        top = limit
    matches = evaluate(Context(index, index.searcher(), score_details, top), operator)
    ranked = sorted(matches.items(), key=lambda kv: -kv[1][0])
    return [(index.key_for(i), score, explained) for i, (score, explained) in ranked if index.is_indexed(i)]
