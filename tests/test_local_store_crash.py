"""SIGKILL in the middle of an ingest of a 20k-record JSONL into the local store, of the store's server or of the
client; start again, re-run: the collection equals a clean run's (ids, texts, vectors), nothing lost or doubled.

The ingest is ``leaf_mongo.ingest.ingest`` in a child process (as in test_ingest_crash.py) with a tiny
random-weight model, against a real local store server (its own process, its own SQLite file).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymongo import MongoClient

from leaf_mongo.local import ensure_server, stop
from leaf_mongo.local.files import read_state
from leaf_mongo.spec.vectors import from_binary
from tests.test_ingest_crash import DRIVER, WORDS

RECORDS = 20_000
ROOT = Path(__file__).resolve().parent.parent


def _records(path: Path, n: int = RECORDS) -> None:
    """Short records: one chunk each, so 20k records stay quick to encode with the tiny model."""
    rng = np.random.default_rng(5)
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"_id": f"r{i}", "text": " ".join(rng.choice(WORDS, size=int(rng.integers(2, 5))))}))
            fh.write("\n")


def _ingest(root: Path, env: dict[str, str], kill: Callable[[subprocess.Popen[str]], None] | None = None,
            at: int = 0) -> dict[str, Any]:  # fmt: skip
    """Run the ingest; with ``kill``, call it after ``at`` encoded batches, then let the client end (or be dead)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    last: dict[str, Any] = {}
    batches = 0
    for line in proc.stdout:
        last = json.loads(line)
        batches += last["event"] == "chunks_encoded"
        if kill is not None and batches == at:
            kill(proc)
            break
    try:
        proc.wait(timeout=300)
    finally:
        proc.kill()
    if kill is None:
        assert proc.returncode == 0 and last.get("event") == "finished", proc.stderr.read() if proc.stderr else ""
    return last


def _docs(client: MongoClient, db: str) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in client[db]["docs"].find()}


def _same(got: dict[str, dict[str, Any]], ref: dict[str, dict[str, Any]]) -> None:
    assert set(got) == set(ref)
    for key, r in ref.items():
        g = got[key]
        assert {k: v for k, v in g.items() if k != "embedding"} == {k: v for k, v in r.items() if k != "embedding"}
        np.testing.assert_allclose(from_binary(g["embedding"]), from_binary(r["embedding"]), atol=1e-5)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One store, one corpus, one clean reference run (database ``ref``) shared by both kill tests."""
    from tests.tiny_models import make_tiny_model

    base = tmp_path_factory.mktemp("local_crash")
    folder = base / "store"
    tiny = str(make_tiny_model(base / "tiny", dimensions=16, seed=4))
    root = base / "corpus"
    root.mkdir()
    _records(root / "big.jsonl")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEAF_MONGO_COLLECTION": "docs",
           "LEAF_MONGO_TEACHER_MODEL": tiny, "LEAF_MONGO_LEAF_MODEL": tiny, "LEAF_MONGO_QUERY_PROMPT": "",
           "LEAF_MONGO_CHUNK_SIZE": "48", "LEAF_MONGO_CHUNK_OVERLAP": "4", "LEAF_MONGO_BATCH_SIZE": "256",
           "LEAF_MONGO_WRITE_BATCH_SIZE": "200", "LEAF_MONGO_WINDOW_SIZE": "1024", "OMP_NUM_THREADS": "1",
           "LEAF_MONGO_SERVER_TIMEOUT_MS": "3000"}  # fmt: skip
    uri = ensure_server(folder)
    _ingest(root, {**env, "LEAF_MONGO_URI": uri, "LEAF_MONGO_DATABASE": "ref"})
    client = MongoClient(uri)
    reference = _docs(client, "ref")
    client.close()
    assert len(reference) == RECORDS
    yield folder, root, env, reference
    stop(folder)


def _converges(folder: Path, root: Path, env: dict[str, str], reference: dict[str, dict[str, Any]], db: str,
               kill: Callable[[subprocess.Popen[str]], None], new_server: bool) -> None:  # fmt: skip
    run_env = {**env, "LEAF_MONGO_URI": ensure_server(folder), "LEAF_MONGO_DATABASE": db}
    pid = read_state(folder).pid  # type: ignore[union-attr]
    _ingest(root, run_env, kill, at=8)
    uri = ensure_server(folder)  # the same server, or a new one after a crash (state recovered)
    assert (read_state(folder).pid != pid) is new_server  # type: ignore[union-attr]
    client = MongoClient(uri)
    partial = client[db]["docs"].count_documents({})
    assert 0 < partial < RECORDS  # the kill landed mid-ingest, after acknowledged writes (which survived it)
    last = _ingest(root, {**run_env, "LEAF_MONGO_URI": uri})
    assert last["chunks_encoded"] <= RECORDS - partial + 1024 + 256  # a re-run encodes what is missing, no more
    _same(_docs(client, db), reference)
    assert client[db]["leaf_mongo_progress"].count_documents({}) == 0
    again = _ingest(root, {**run_env, "LEAF_MONGO_URI": uri})
    assert again["chunks_written"] == again["chunks_encoded"] == 0
    client.close()


def test_sigkill_of_the_server_mid_ingest(setup: Any) -> None:
    folder, root, env, reference = setup

    def kill_server(client: subprocess.Popen[str]) -> None:
        state = read_state(folder)
        assert state is not None
        os.kill(state.pid, signal.SIGKILL)
        time.sleep(0.5)
        client.send_signal(signal.SIGKILL)  # the client would fail (or resume on a restarted server): end it

    _converges(folder, root, env, reference, "after_server_kill", kill_server, new_server=True)


def test_sigkill_of_the_client_mid_ingest(setup: Any) -> None:
    folder, root, env, reference = setup
    _converges(folder, root, env, reference, "after_client_kill", lambda p: p.send_signal(signal.SIGKILL), False)
