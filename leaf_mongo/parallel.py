"""Several teacher processes on one machine, through sentence-transformers' multi-process pool.

``--devices cuda:0,cuda:1`` starts one process per device, ``--workers N`` N CPU processes (each with its
share of the cores, so they do not fight over threads). Ingest then hands the pool one batch per process
at a time; every process encodes exactly the batch a single process would have, so vectors match a
one-process run and the write protocol (and its crash safety) is the same.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leaf_mongo.encoders import VectorEncoder
    from leaf_mongo.settings import LeafMongoSettings

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pool_devices(settings: LeafMongoSettings) -> list[str]:
    """The pool's devices, or [] for encoding in this process."""
    if settings.devices:
        return list(settings.devices)
    if settings.workers and settings.workers > 1:
        return ["cpu"] * settings.workers
    return []


@contextlib.contextmanager
def encoder_pool(encoder: VectorEncoder, devices: list[str]) -> Iterator[None]:
    """Start the pool for ``encoder``'s teacher, stop it when done (also on errors)."""
    model = encoder.teacher
    cpu = sum(d == "cpu" for d in devices)
    saved = {v: os.environ.get(v) for v in _THREAD_VARS}
    if cpu:  # spawned workers read these when torch starts
        for v in _THREAD_VARS:
            os.environ[v] = str(max((os.cpu_count() or 1) // cpu, 1))
    try:
        pool = model.start_multi_process_pool(target_devices=devices)
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
    encoder.pool = pool
    try:
        yield
    finally:
        encoder.pool = None
        model.stop_multi_process_pool(pool)
