"""CI leg: the project's server and conformance tests against the local store (a real server process on a
SQLite data folder), besides the in-memory emulator the plain ``pytest`` run uses.

Starts a store in a temporary folder with ``leaf_mongo.local.ensure_server``, runs pytest with
``LEAF_MONGO_TEST_URI`` pointed at it (the pytest plugin then targets it as it would a real server), stops it.

    python scripts/local_store_suite.py [extra pytest arguments]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from leaf_mongo.local import ensure_server, stop  # noqa: E402

# Everything that talks to a server through the pytest plugin's fixtures and does not need the in-process
# emulator object (those tests skip themselves when LEAF_MONGO_TEST_URI is set).
SUITE = [
    "tests/conformance",
    "tests/test_conformance_search.py",
    "tests/test_emulator_drivers.py",
    "tests/test_emulator_waiting.py",
    "tests/test_emulator_scale.py",
    "tests/test_ingest.py",
    "tests/test_ingest_crash.py",
    "tests/test_ingest_fulltext.py",
    "tests/test_query_retriever.py",
    "tests/test_query_hybrid.py",
    "tests/test_query_embeddings.py",
    "tests/test_spec_index.py",
]
# These tell "the emulator refused it as a documented limitation" from "a real server refused it" by whether the
# fixture holds an in-process MongoEmulator; through a URI the local store (the same engine) looks like a real
# server that refuses, so they cannot pass here. They run in the plain pytest leg.
DESELECT = [
    "tests/conformance/test_mongot_parsing.py::test_nested_root_is_served_or_refused_as_a_limitation",
    "tests/conformance/test_pipelines.py::test_views_work_or_are_an_emulator_limitation",
    "tests/test_emulator_drivers.py::test_transactions_are_refused_as_an_emulator_limitation",
    "tests/conformance/test_crud_options.py::test_collation_works_or_is_refused",
    "tests/conformance/test_crud_options.py::test_hint_of_a_sparse_index_works_or_is_refused",
    "tests/conformance/test_crud_options.py::test_array_filters_work_or_are_refused",
]


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="leaf-mongo-local-suite-") as tmp:
        folder = Path(tmp) / "store"
        uri = ensure_server(folder)
        print(f"local store suite: {uri} on {folder}", flush=True)
        env = {**os.environ, "LEAF_MONGO_TEST_URI": uri, "PYTHONPATH": str(ROOT)}
        try:
            deselect = [arg for test in DESELECT for arg in ("--deselect", test)]
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITE, *deselect, *argv]
            return subprocess.call(cmd, cwd=ROOT, env=env)
        finally:
            stop(folder)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
