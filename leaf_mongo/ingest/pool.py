"""Several teacher processes on one machine, through sentence-transformers' multi-process pool.

``--devices cuda:0,cuda:1`` starts one process per device, ``--workers N`` N CPU processes (each with its
share of the cores, so they do not fight over threads). Ingest then hands the pool one batch per process
at a time; every process encodes exactly the batch a single process would have, so vectors match a
one-process run and the write protocol (and its crash safety) is the same.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

from leaf_mongo.errors import SettingsError
from leaf_mongo.models.encoders import VectorEncoder
from leaf_mongo.settings import LeafMongoSettings

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

# The pool's workers block on their queue forever if this process is SIGKILLed (nothing tells them), so a tiny
# watcher process kills them once this one is gone: a killed ingest leaves no model-holding orphans behind.
_REAPER = """
import os, signal, sys, time
parent, pids = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
while alive(parent) and os.getppid() == parent:
    time.sleep(0.5)
for pid in pids:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
"""


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

    side = encoder.documents
    if side.backend != "torch":
        raise SettingsError(
            "LEAF_MONGO_WORKERS", f"encoder processes need the torch teacher backend, not {side.backend}"
        )
    model = side.st_model
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
    pids = [str(p.pid) for p in pool["processes"]]
    reaper = subprocess.Popen([sys.executable, "-c", _REAPER, str(os.getpid()), *pids], start_new_session=True)
    side.pool = pool
    try:
        yield
    finally:
        side.pool = None
        model.stop_multi_process_pool(pool)
        reaper.kill()
        reaper.wait()
