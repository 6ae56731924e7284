"""``leaf-mongo eval``: retrieval quality and query latency of each mode, dimension and dtype on a BEIR set.

The point is to measure what users will get, so nothing here has its own search path: the corpus goes
through the normal :func:`leaf_mongo.ingest.ingest` (a BEIR ``corpus.jsonl[.gz]`` is a supported format,
so chunking, the teacher, the stored dtype and the index are the production ones), and every test query goes
through :class:`leaf_mongo.query.retriever.LeafRetriever`. Chunks map back to BEIR documents by ``record_id``; a
document scores its best chunk. Metrics come from :mod:`leaf_mongo.evaluation.metrics` (trec_eval conventions).

Modes:

- ``asymmetric``: teacher documents, leaf queries (the package's point);
- ``leaf``: the leaf model on both sides (a collection whose document model is the leaf model);
- ``teacher``: teacher documents, teacher queries (the ceiling the leaf model is measured against).

A mode whose models cannot be compared (a 384-d leaf against a 768-d teacher), and a grid point MongoDB
does not accept (int8 vectors with index quantization, ...), is reported as skipped with the reason.

Test hygiene: only query ids of the chosen qrels split are read from ``queries.jsonl``, and their texts
are used for querying and nothing else; the int8 calibration (``int8_range="calibrate"``) is fitted on
corpus document embeddings only.

Cost: collections are named from their configuration and reused (ingest of an unchanged corpus file is a
no-op), and raw teacher outputs are kept in the embedding cache (default ``~/.cache/leaf-mongo/embeddings``,
shared with ``LEAF_MONGO_EMBEDDING_CACHE``), so a grid of dimensions and dtypes costs one teacher pass.
"""

from leaf_mongo.evaluation.beir import (
    BeirDataset,
    find_corpus,
    iter_corpus,
    load_beir,
    read_qrels,
    read_queries,
    subsample,
)
from leaf_mongo.evaluation.calibration import calibrate_int8
from leaf_mongo.evaluation.grid import collection_name, index_bytes, model_label, resolve_dimensions
from leaf_mongo.evaluation.modes import (
    DEFAULT_CACHE,
    DEFAULT_DATABASE,
    DEFAULT_DEPTH,
    DTYPES,
    HYBRID_MODES,
    MAX_K,
    MODES,
    QUANTIZATIONS,
    STANDARD_METRICS,
    WARMUP_QUERY,
    Event,
    Mode,
)
from leaf_mongo.evaluation.report import EvalReport, EvalResult, metric_names, plot_results
from leaf_mongo.evaluation.run import run_eval

__all__ = [
    "DEFAULT_CACHE",
    "DEFAULT_DATABASE",
    "DEFAULT_DEPTH",
    "DTYPES",
    "HYBRID_MODES",
    "MAX_K",
    "MODES",
    "QUANTIZATIONS",
    "STANDARD_METRICS",
    "WARMUP_QUERY",
    "BeirDataset",
    "EvalReport",
    "EvalResult",
    "Event",
    "Mode",
    "calibrate_int8",
    "collection_name",
    "find_corpus",
    "index_bytes",
    "iter_corpus",
    "load_beir",
    "metric_names",
    "model_label",
    "plot_results",
    "read_qrels",
    "read_queries",
    "resolve_dimensions",
    "run_eval",
    "subsample",
]
