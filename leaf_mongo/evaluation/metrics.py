"""Retrieval quality metrics, computed the way trec_eval (and so pytrec_eval and BEIR) computes them.

Implemented once here so every number the package reports (``leaf-mongo eval``, the benchmarks, the
notebooks) comes from the same definitions:

- **nDCG@k**: linear gain (the judged relevance value itself), discount ``log2(rank + 1)`` for ranks from 1,
  ideal DCG from the query's judgments sorted by relevance (trec_eval ``ndcg_cut``, BEIR). Negative
  judgments give no gain.
- **Recall@k**: judged-relevant documents (relevance > 0) in the top k, over all judged-relevant documents.
- **MRR@k**: reciprocal rank of the first judged-relevant document in the top k, else 0.

Conventions, chosen to match trec_eval so results are comparable with published figures:

- **Ties** in scores are broken by document id in *descending* byte order (trec_eval sorts by score, then
  ``strcmp(docno2, docno1)``). Packed-bit Hamming scores tie often, so the rule matters: it makes a run's
  metrics a function of its scores, never of the order a server happened to return equal scores in.
- **Missing judgments** count as non-relevant (gain 0).
- **Queries without a judged-relevant document** are excluded (their nDCG and recall are undefined); a
  judged query missing from the run, or with an empty result, counts as 0 on every metric (trec_eval ``-c``).
- Documents in the run appearing more than once are impossible here (a run maps doc id → score).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

Qrels = Mapping[str, Mapping[str, int]]
"""query id → document id → graded relevance (0 = judged non-relevant)."""
Run = Mapping[str, Mapping[str, float]]
"""query id → document id → score (higher is better)."""

DEFAULT_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
_NAME = re.compile(r"^(ndcg|recall|mrr)@([1-9][0-9]*)$")


def ranking(scores: Mapping[str, float]) -> list[str]:
    """Document ids best first: score descending, ties by document id descending (as trec_eval)."""
    by_id = sorted(scores, reverse=True)  # Python str order = code point order = UTF-8 byte order
    return sorted(by_id, key=lambda d: -scores[d])  # stable: equal scores keep the id order


def _gain(rel: int | float) -> float:
    return float(rel) if rel > 0 else 0.0


def ndcg_at_k(ranked: Sequence[str], judgments: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranked list (``judgments`` must contain a relevant document)."""
    dcg = sum(_gain(judgments.get(d, 0)) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((_gain(r) for r in judgments.values() if r > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], judgments: Mapping[str, int], k: int) -> float:
    relevant = {d for d, r in judgments.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[str], judgments: Mapping[str, int], k: int) -> float:
    for i, d in enumerate(ranked[:k]):
        if judgments.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


_FUNCS = {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k}


def parse_metric(name: str) -> tuple[str, int]:
    """``"ndcg@10"`` → ``("ndcg", 10)``; anything else is a ValueError naming what is allowed."""
    m = _NAME.match(name.strip().lower())
    if not m:
        raise ValueError(f"unknown metric {name!r}; allowed: ndcg@K, recall@K, mrr@K (K a positive integer)")
    return m.group(1), int(m.group(2))


def evaluated_queries(qrels: Qrels) -> list[str]:
    """Query ids that count: those with at least one judged-relevant document, sorted."""
    return sorted(q for q, judged in qrels.items() if any(r > 0 for r in judged.values()))


def per_query(qrels: Qrels, run: Run, metrics: Iterable[str] = DEFAULT_METRICS) -> dict[str, dict[str, float]]:
    """Every metric for every evaluated query (see the module docstring for the conventions)."""
    parsed = [(name, *parse_metric(name)) for name in metrics]
    out: dict[str, dict[str, float]] = {}
    for q in evaluated_queries(qrels):
        ranked = ranking(run.get(q, {}))
        out[q] = {name: _FUNCS[kind](ranked, qrels[q], k) for name, kind, k in parsed}
    return out


def evaluate(qrels: Qrels, run: Run, metrics: Iterable[str] = DEFAULT_METRICS) -> dict[str, float]:
    """Mean of each metric over the evaluated queries, plus ``queries`` (how many were evaluated)."""
    names = list(metrics)
    rows = per_query(qrels, run, names)
    n = len(rows)
    means: dict[str, float] = {name: (sum(r[name] for r in rows.values()) / n if n else 0.0) for name in names}
    means["queries"] = float(n)
    return means
