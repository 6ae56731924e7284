"""The Ray path on a local Ray instance started here (2 CPUs, tiny model): the same ids, texts and vectors as
the local path, and a re-run writes nothing. Skipped when Ray is not installed (``pip install 'leaf-mongo[ray]'``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pymongo import MongoClient

from leaf_mongo.ingest import ingest
from leaf_mongo.spec.vectors import from_binary
from tests.test_ingest_stream import records, settings_for, write_jsonl
from tests.tiny_models import make_tiny_model

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_path_matches_local(tmp_path: Path, local_ray: None, mongo_uri: str, db_name: str,
                                mongo_client: MongoClient) -> None:  # fmt: skip
    tiny = str(make_tiny_model(tmp_path / "tiny", dimensions=16, seed=6))
    root = tmp_path / "docs"
    write_jsonl(root / "corpus.jsonl.gz", records(150, seed=4))
    (root / "note.md").write_text("# Note\n\nA small markdown file next to the corpus, about rivers and stones.\n")
    settings = settings_for(mongo_uri, db_name, tiny)
    local = ingest([root], settings, collection="local")
    t0 = time.perf_counter()
    remote = ingest([root], settings, collection="ray", ray="local")
    seconds = time.perf_counter() - t0
    assert remote.chunks_written == remote.chunks_encoded == local.chunks_written > 150
    assert sorted(remote.files_ingested) == sorted(local.files_ingested) == ["corpus.jsonl.gz", "note.md"]
    assert remote.records_read == local.records_read
    a = {d["_id"]: d for d in mongo_client[db_name]["local"].find()}
    b = {d["_id"]: d for d in mongo_client[db_name]["ray"].find()}
    assert set(a) == set(b)
    for key, d in a.items():
        assert {k: v for k, v in d.items() if k != "embedding"} == {k: v for k, v in b[key].items() if k != "embedding"}
        np.testing.assert_allclose(from_binary(d["embedding"]), from_binary(b[key]["embedding"]), atol=1e-6)
    manifest = mongo_client[db_name]["leaf_mongo_files"]
    assert manifest.count_documents({"collection": "ray"}) == 2
    again = ingest([root], settings, collection="ray", ray="local")
    assert again.chunks_written == again.chunks_encoded == 0 and len(again.files_unchanged) == 2
    print(f"ray ingest: {remote.chunks_written} chunks in {seconds:.1f} s")
