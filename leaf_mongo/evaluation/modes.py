"""What an evaluation can run: modes, grid values and defaults shared by the dataset, grid and report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

from leaf_mongo.settings import Dtype, Quantization

Mode = Literal["asymmetric", "leaf", "teacher", "fulltext", "hybrid", "hybrid_teacher"]
MODES: tuple[Mode, ...] = ("asymmetric", "leaf", "teacher", "fulltext", "hybrid", "hybrid_teacher")
HYBRID_MODES = ("hybrid", "hybrid_teacher")  # $rankFusion of full text and asymmetric / teacher query vectors
DTYPES: tuple[str, ...] = get_args(Dtype)
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)
DEFAULT_CACHE = "~/.cache/leaf-mongo/embeddings"
DEFAULT_DATABASE = "leaf_mongo_eval"
DEFAULT_DEPTH = 100  # documents retrieved per query (Recall@100)
WARMUP_QUERY = "warm-up query (not from the dataset)"
MAX_K = 10_000  # $vectorSearch limit
STANDARD_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")

Event = Callable[[str, dict[str, Any]], None]
