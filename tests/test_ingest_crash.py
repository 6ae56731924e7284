"""Crash safety: SIGKILL the ingest process at several points, re-run, and get exactly one clean run's result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymongo import MongoClient

from leaf_mongo.spec.vectors import from_binary

DRIVER = """
import json, sys
from leaf_mongo.ingest import ingest
from leaf_mongo.settings import load_settings

def on_event(event, data):
    print(json.dumps({"event": event, **data}), flush=True)

report = ingest([sys.argv[1]], load_settings(), on_event=on_event)
print(json.dumps({"event": "finished", **report.to_json()}), flush=True)
"""

# (event, occurrence) after which the run is killed: before any write, mid-encoding, after some files were
# finalized, while writes are in flight, and while waiting for the index.
KILL_POINTS = [("scan", 1), ("chunks_encoded", 1), ("file_done", 2), ("chunks_encoded", 3), ("file_done", 4),
               ("index_status", 1)]  # fmt: skip

WORDS = [
    *"river mountain database vector index protein cell galaxy market poem".split(),
    *"engine quantum bread forest cloud harbor violin theorem glacier lantern".split(),
]


def _corpus(root: Path, files: int = 24) -> None:
    rng = np.random.default_rng(7)
    root.mkdir()
    for i in range(files):
        paras = [" ".join(rng.choice(WORDS, size=60)) + "." for _ in range(5)]
        (root / f"f{i:02d}.md").write_text(f"# Document {i}\n\n" + "\n\n".join(paras) + "\n")


def _run(root: Path, env: dict[str, str], kill_at: tuple[str, int] | None) -> tuple[bool, list[dict[str, Any]]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    events: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        ev = json.loads(line)
        events.append(ev)
        seen[ev["event"]] = seen.get(ev["event"], 0) + 1
        if kill_at and (ev["event"], seen[ev["event"]]) == kill_at:
            proc.send_signal(signal.SIGKILL)
            break
    rc = proc.wait(timeout=300)
    killed = rc == -signal.SIGKILL
    if not killed:
        assert rc == 0, proc.stderr.read() if proc.stderr else rc
    return killed, events


def _docs(client: MongoClient, db: str) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in client[db]["docs"].find()}


@pytest.mark.slow
def test_sigkill_at_any_point_converges(tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str,
                                        mongo_client: MongoClient) -> None:  # fmt: skip
    root = tmp_path / "corpus"
    _corpus(root)
    base = {**os.environ, "LEAF_MONGO_URI": mongo_uri, "LEAF_MONGO_COLLECTION": "docs",
            "LEAF_MONGO_TEACHER_MODEL": minilm_path, "LEAF_MONGO_LEAF_MODEL": minilm_path,
            "LEAF_MONGO_QUERY_PROMPT": "", "LEAF_MONGO_CHUNK_SIZE": "64", "LEAF_MONGO_CHUNK_OVERLAP": "8",
            "LEAF_MONGO_BATCH_SIZE": "8", "LEAF_MONGO_WRITE_BATCH_SIZE": "5",
            # Small windows, so files are finalized one after another while later ones are still encoding.
            "LEAF_MONGO_WINDOW_SIZE": "16"}  # fmt: skip

    ref_db = f"{db_name}_ref"
    try:
        killed_ok, _ = _run(root, {**base, "LEAF_MONGO_DATABASE": ref_db}, None)
        assert not killed_ok
        reference = _docs(mongo_client, ref_db)
    finally:
        mongo_client.drop_database(ref_db)

    env = {**base, "LEAF_MONGO_DATABASE": db_name}
    kills = []
    for point in KILL_POINTS:
        killed, events = _run(root, env, point)
        if killed:
            kills.append(point)
        # Never a duplicate: one document per (source, chunk), whatever the state.
        sources = [(d["source"], d["chunk"]) for d in _docs(mongo_client, db_name).values()]
        assert len(sources) == len(set(sources))
    assert len(kills) >= 5, f"only {kills} killed the process"
    _run(root, env, None)
    final = _docs(mongo_client, db_name)

    assert set(final) == set(reference)
    for key, ref in reference.items():
        got = final[key]
        assert {k: v for k, v in got.items() if k != "embedding"} == {k: v for k, v in ref.items() if k != "embedding"}
        # Batches differ between interrupted and clean runs, so float results may differ in the last bits.
        np.testing.assert_allclose(from_binary(got["embedding"]), from_binary(ref["embedding"]), atol=1e-5)
    again, events = _run(root, env, None)
    assert json.loads(json.dumps(events[-1]))["chunks_written"] == 0


def _records_file(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        for i in range(n):
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(4, 60)))) + "."
            fh.write(json.dumps({"_id": f"r{i}", "title": f"T{i % 5}", "text": text}) + "\n")


def test_sigkill_mid_record_file_resumes(tmp_path: Path, mongo_uri: str, db_name: str,
                                         mongo_client: MongoClient) -> None:  # fmt: skip
    """Killed halfway through one large .jsonl, a re-run encodes only what is not stored yet and ends equal to
    a clean run; a file changed after the kill converges exactly to its new content."""
    from tests.tiny_models import make_tiny_model

    tiny = str(make_tiny_model(tmp_path / "tiny", dimensions=16, seed=4))
    root = tmp_path / "corpus"
    root.mkdir()
    corpus = root / "big.jsonl"
    _records_file(corpus, 500, seed=1)
    window, batch = 48, 8
    base = {**os.environ, "LEAF_MONGO_URI": mongo_uri, "LEAF_MONGO_COLLECTION": "docs",
            "LEAF_MONGO_TEACHER_MODEL": tiny, "LEAF_MONGO_LEAF_MODEL": tiny, "LEAF_MONGO_QUERY_PROMPT": "",
            "LEAF_MONGO_CHUNK_SIZE": "24", "LEAF_MONGO_CHUNK_OVERLAP": "4", "LEAF_MONGO_BATCH_SIZE": str(batch),
            "LEAF_MONGO_WRITE_BATCH_SIZE": "5", "LEAF_MONGO_WINDOW_SIZE": str(window),
            "OMP_NUM_THREADS": "1"}  # fmt: skip

    def reference() -> tuple[dict[str, dict[str, Any]], int]:
        ref_db = f"{db_name}_ref"
        try:
            _, events = _run(root, {**base, "LEAF_MONGO_DATABASE": ref_db}, None)
            return _docs(mongo_client, ref_db), sum(e["event"] == "chunks_encoded" for e in events)
        finally:
            mongo_client.drop_database(ref_db)

    def same(final: dict[str, dict[str, Any]], ref: dict[str, dict[str, Any]]) -> None:
        assert set(final) == set(ref)
        for key, r in ref.items():
            got = final[key]
            plain = {k: v for k, v in r.items() if k != "embedding"}
            assert {k: v for k, v in got.items() if k != "embedding"} == plain
            np.testing.assert_allclose(from_binary(got["embedding"]), from_binary(r["embedding"]), atol=1e-5)

    ref, batches = reference()
    total = len(ref)
    env = {**base, "LEAF_MONGO_DATABASE": db_name}
    killed, _ = _run(root, env, ("chunks_encoded", batches // 2))
    assert killed
    durable = len(_docs(mongo_client, db_name))
    assert 0 < durable < total
    assert mongo_client[db_name]["leaf_mongo_progress"].count_documents({}) == 1
    _, events = _run(root, env, None)
    rerun = events[-1]
    # Everything missing is encoded, and at most a window plus a batch of what was stored is encoded again.
    assert total - durable <= rerun["chunks_encoded"] <= total - durable + window + batch, (rerun, durable)
    same(_docs(mongo_client, db_name), ref)
    assert mongo_client[db_name]["leaf_mongo_progress"].count_documents({}) == 0
    _, events = _run(root, env, None)
    assert events[-1]["chunks_written"] == events[-1]["chunks_encoded"] == 0

    # Kill again mid-file, then change the file: the re-run converges to exactly the new version.
    _records_file(corpus, 400, seed=2)
    new_ref, batches = reference()
    _records_file(corpus, 500, seed=3)
    killed, _ = _run(root, env, ("chunks_encoded", batches // 2))
    assert killed
    _records_file(corpus, 400, seed=2)
    _run(root, env, None)
    same(_docs(mongo_client, db_name), new_ref)
