"""``run_eval``: validate the request, open the server (or an emulator), run the grid."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from leaf_mongo.connection import check_server, make_client
from leaf_mongo.errors import SettingsError
from leaf_mongo.evaluation.beir import BeirDataset, load_beir, subsample
from leaf_mongo.evaluation.grid import Grid
from leaf_mongo.evaluation.modes import (
    DEFAULT_CACHE,
    DEFAULT_DATABASE,
    DEFAULT_DEPTH,
    DTYPES,
    MODES,
    QUANTIZATIONS,
    Event,
)
from leaf_mongo.evaluation.report import EvalReport
from leaf_mongo.settings import LeafMongoSettings, load_settings


def _server_kind(client: MongoClient[Any]) -> str:
    try:
        info = client.admin.command("buildInfo")
    except Exception:  # pragma: no cover - buildInfo is always allowed
        return "unknown"
    if info.get("gitVersion") == "leaf-mongo-emulator":
        return "leaf-mongo emulator (exact brute-force search; index quantization not simulated)"
    return f"MongoDB {info.get('version', '?')}"


def run_eval(
    dataset: str | Path | BeirDataset,
    *,
    settings: LeafMongoSettings | None = None,
    modes: Sequence[str] = MODES,
    dimensions: Sequence[int | str] = ("full",),
    dtypes: Sequence[str] = ("float32",),
    quantizations: Sequence[str] = ("none",),
    k: int = 10,
    depth: int = DEFAULT_DEPTH,
    max_queries: int | None = None,
    sample_docs: int | None = None,
    seed: int = 0,
    int8_range: str | tuple[float, float] | None = None,
    exact: bool = False,
    use_cache: bool = True,
    database: str = DEFAULT_DATABASE,
    client: MongoClient[Any] | None = None,
    emulator: bool = False,
    on_event: Event | None = None,
    weights: Sequence[tuple[float, float]] = ((1.0, 1.0),),
) -> EvalReport:
    """Evaluate every mode on every legal (dimensions, dtype, quantization) point; see the module docstring.

    ``settings`` supplies the server, the models (``teacher_model``, ``leaf_model``, ``query_prompt``),
    chunking and the embedding cache folder (default :data:`DEFAULT_CACHE`; ``use_cache=False`` turns it
    off). ``dimensions`` takes integers, ``"full"`` and ``"half"`` (of each document model).
    ``int8_range``: ``None`` for the settings' (or profile's) range, ``(lo, hi)``, or ``"calibrate"``
    (:func:`calibrate_int8`). ``emulator=True`` runs against an in-process :class:`MongoEmulator`.
    ``weights``: (vector, full-text) rank-fusion weight pairs, a grid dimension of the hybrid modes;
    ``fulltext`` does not depend on the vector grid and runs once per document model.
    """
    start = time.perf_counter()
    emit: Event = on_event or (lambda _e, _d: None)
    _check_request(modes, dtypes, quantizations, k, depth, int8_range)
    base = _with_cache(settings or load_settings(), use_cache)

    data = dataset if isinstance(dataset, BeirDataset) else load_beir(dataset)
    if max_queries is not None or sample_docs is not None:
        data = subsample(data, max_queries=max_queries, sample_docs=sample_docs, seed=seed)
    emit("dataset", {"name": data.name, "queries": len(data.queries), "corpus": str(data.corpus_path)})

    with contextlib.ExitStack() as stack:
        if client is None:
            client = _connect(stack, base, emulator)
        check_server(client)
        server = _server_kind(client)
        grid = list(
            itertools.product(
                list(dict.fromkeys(dimensions)), list(dict.fromkeys(dtypes)), list(dict.fromkeys(quantizations))
            )
        )
        runner = Grid(
            data,
            base,
            client,
            k=k,
            depth=depth,
            int8_range=int8_range,
            exact=exact,
            database=database,
            emulated="emulator" in server,
            emit=emit,
            weights=[(float(v), float(t)) for v, t in dict.fromkeys(weights)],
        )
        results = runner.run(list(dict.fromkeys(modes)), grid)
    return EvalReport(data.name, data.split, server, results, time.perf_counter() - start)


def _check_request(
    modes: Sequence[str],
    dtypes: Sequence[str],
    quantizations: Sequence[str],
    k: int,
    depth: int,
    int8_range: str | tuple[float, float] | None,
) -> None:
    """Refuse a bad request before anything is loaded, ingested or connected to."""
    bad_modes = [m for m in modes if m not in MODES]
    if bad_modes:
        raise SettingsError("modes", f"{bad_modes[0]!r} is not a mode; allowed: {', '.join(MODES)}")
    for name, values, allowed in (("dtype", dtypes, DTYPES), ("quantization", quantizations, QUANTIZATIONS)):
        for v in values:
            if v not in allowed:
                raise SettingsError(name, f"{v!r} is not allowed; allowed: {', '.join(allowed)}")
    if not 1 <= k <= depth:
        raise SettingsError("k", f"{k} is out of range; allowed: 1..{depth} (the retrieval depth)")
    if isinstance(int8_range, str) and int8_range != "calibrate":
        raise SettingsError("int8_range", f"{int8_range!r}: allowed: calibrate, or a (min, max) pair")


def _with_cache(settings: LeafMongoSettings, use_cache: bool) -> LeafMongoSettings:
    """The settings with the embedding cache on by default (:data:`DEFAULT_CACHE`): each run re-encodes a corpus."""
    cache_dir = (settings.embedding_cache or DEFAULT_CACHE) if use_cache else None
    return settings.model_copy(update={"embedding_cache": str(Path(cache_dir).expanduser()) if cache_dir else None})


def _connect(stack: contextlib.ExitStack, settings: LeafMongoSettings, emulator: bool) -> MongoClient[Any]:
    """A client on the configured server (or the local store), or on an in-process emulator; closed with
    ``stack``."""
    if not emulator:
        return stack.enter_context(make_client(settings))
    from leaf_mongo.testing import MongoEmulator  # the emulator's dependencies load only when asked for

    uri = stack.enter_context(MongoEmulator(port=0, index_build_delay=0.0)).uri
    return stack.enter_context(MongoClient(uri, serverSelectionTimeoutMS=settings.server_timeout_ms))
