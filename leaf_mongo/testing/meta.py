"""The hidden fields that carry ``{$meta: ...}`` values from a source stage to the stages after it.

``$vectorSearch``, ``$search``, ``$rankFusion`` and ``$scoreFusion`` store each document's score (and
score details) in fields no real document uses; later stages read them because
:mod:`leaf_mongo.testing.aggregation` rewrites ``{$meta: <name>}`` to ``"$<hidden field>"`` through
``META_FIELDS``, and :func:`strip_hidden` removes them before documents leave the emulator. Every search
stage also sets ``SCORE_FIELD``, which ``{$meta: "score"}`` reads whichever scored stage produced the
document.
"""

from __future__ import annotations

from typing import Any

VECTOR_SCORE_FIELD = "__leaf_emulator_vector_search_score"
SEARCH_SCORE_FIELD = "__leaf_emulator_search_score"
SEARCH_DETAILS_FIELD = "__leaf_emulator_search_score_details"
SCORE_FIELD = "__leaf_emulator_score"
SCORE_DETAILS_FIELD = "__leaf_emulator_score_details"
# {$meta: <name>} -> hidden field the source stage stores the value in.
META_FIELDS = {
    "vectorSearchScore": VECTOR_SCORE_FIELD,
    "searchScore": SEARCH_SCORE_FIELD,
    "searchScoreDetails": SEARCH_DETAILS_FIELD,
    "score": SCORE_FIELD,
    "scoreDetails": SCORE_DETAILS_FIELD,
}
HIDDEN_FIELDS = tuple(META_FIELDS.values())


def strip_hidden(docs: list[Any]) -> list[Any]:
    """Remove the hidden meta fields before documents leave the emulator."""
    for doc in docs:
        if isinstance(doc, dict):
            for hidden in HIDDEN_FIELDS:
                doc.pop(hidden, None)
    return docs
