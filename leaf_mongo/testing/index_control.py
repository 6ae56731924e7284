"""Test-only control of a search index's build: hold it in ``BUILDING``, or mark it ``FAILED`` as mongot does.

mongot reports an index it cannot build as ``status: "FAILED"``, not queryable, with the reason in
``statusDetail[].mainIndex.message`` (``IndexStatus.failed(message)``: e.g. ``"Exceeded max limit: ..."`` when
the index outgrows its limits, ``"replication failed (action=close): ..."`` when its change stream cannot be
applied), and a build can stay ``BUILDING`` for as long as initial sync takes. Neither can be provoked on demand
through the wire protocol, so a test that needs them reaches into an in-process emulator with these two
functions. Such tests are emulator-only (they skip against ``LEAF_MONGO_TEST_URI``).
"""

from __future__ import annotations

import time
from typing import Literal

from leaf_mongo.testing.emulator import MongoEmulator
from leaf_mongo.testing.search_index import SearchIndex


def _index(emulator: MongoEmulator, namespace: str, name: str) -> SearchIndex:
    db, _, coll = namespace.partition(".")
    index = emulator.backend._search_indexes.get((db, coll), {}).get(name)
    if index is None:
        raise KeyError(f"no search index {name!r} on {namespace}")
    return index


def hold_search_index(
    emulator: MongoEmulator,
    namespace: str,
    name: str,
    status: Literal["BUILDING", "FAILED"],
    message: str | None = None,
) -> None:
    """Hold index ``name`` of ``namespace`` (``db.coll``) in ``status`` until :func:`release_search_index`.

    ``BUILDING``: the (re)build never finishes (a new index stays unqueryable; an updated one keeps serving its
    previous definition). ``FAILED``: not queryable, listed with ``message`` as mongot's ``mainIndex.message``.
    """
    if status not in ("BUILDING", "FAILED"):
        raise ValueError(f"status must be BUILDING or FAILED, not {status!r}")
    with emulator.backend._lock:
        index = _index(emulator, namespace, name)
        index.held, index.held_message = status, message


def release_search_index(emulator: MongoEmulator, namespace: str, name: str) -> None:
    """Let the build run again from now (it takes the emulator's ``index_build_delay`` to become READY)."""
    with emulator.backend._lock:
        index = _index(emulator, namespace, name)
        index.held, index.held_message = None, None
        index.build_started = time.monotonic()
