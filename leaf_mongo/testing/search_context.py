"""What every ``$search`` operator shares: the evaluation context, the shape of its result, score details.

An operator evaluates to :data:`Matches`, {tantivy doc id: (score, score details or None)}; the
operator modules (:mod:`~leaf_mongo.testing.text_operators`, :mod:`~leaf_mongo.testing.predicate_operators`)
and the combinators in :mod:`~leaf_mongo.testing.search_operators` all build and read that shape, and
the details nodes follow mongot's ``searchScoreDetails`` (``{value, description, details}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import tantivy

from leaf_mongo.testing.errors import unknown_error
from leaf_mongo.testing.fulltext import FullTextIndex

Matches = dict[int, tuple[float, "dict[str, Any] | None"]]


@dataclass(frozen=True)
class Context:
    """One ``$search`` evaluation: the index and a searcher over it, and what the caller asked for."""

    ix: FullTextIndex
    searcher: tantivy.Searcher
    explain: bool  # build score details (``scoreDetails: true``)
    top: int | None  # only the best ``top`` hits are needed (a top-level scored operator under $limit)


def details(value: float, description: str, children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One node of ``searchScoreDetails``."""
    return {"value": value, "description": description, "details": children or []}


def check_keys(spec: Mapping[str, Any], allowed: set[str], op: str) -> None:
    """mongot's error for a field an operator does not take."""
    for key in spec:
        if key not in allowed:
            raise unknown_error(f'"{op}.{key}" is not a valid field')
