"""``leaf-mongo eval`` end to end on a tiny synthetic BEIR folder, against the emulator fixtures.

The teacher is the offline all-MiniLM-L6-v2; the "leaf" is a tiny random 32-d model, so asymmetric mode
(32-d queries against 384-d documents) must be reported as skipped, not crash. Chunks are made small so
some documents span several chunks and the chunk → document mapping is exercised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from leaf_mongo.evaluation import (
    collection_name,
    index_bytes,
    load_beir,
    resolve_dimensions,
    run_eval,
    subsample,
)
from leaf_mongo.settings import load_settings
from leaf_mongo.spec import VectorSpec

from .tiny_models import make_tiny_model

DOCS = {
    "photo": ("Photosynthesis", "Green plants turn sunlight, water and carbon dioxide into sugar and oxygen."),
    "eiffel": ("Eiffel Tower", "A wrought-iron lattice tower in Paris, France, finished in 1889 for a world fair."),
    "python": ("Python", "A programming language known for readable syntax and a large standard library. " * 6),
    "volcano": ("Volcanoes", "Volcanoes erupt when molten magma rises through cracks in the crust of the Earth."),
    "jupiter": ("Jupiter", "The largest planet in the solar system, a gas giant with a great red spot."),
    "vaccine": ("Vaccines", "Vaccines train the immune system to recognize and fight specific viruses."),
    "guitar": ("Guitar", "A classical guitar has six nylon strings that are plucked with the fingers."),
    "cookies": ("Cookies", "Chocolate chip cookies are baked from butter, sugar, flour, eggs and chocolate."),
}
TEST_QUERIES = {
    "q1": ("how do plants make food from light", {"photo": 2, "volcano": 0}),
    "q2": ("famous iron landmark in France", {"eiffel": 1}),
    "q3": ("which coding language is easy to read", {"python": 1, "guitar": 0}),
    "q4": ("biggest planet orbiting the sun", {"jupiter": 1}),
    "q5": ("a query judged only non-relevant", {"cookies": 0}),  # no relevant doc: excluded
}
TRAIN_QUERIES = {"t1": "a train query that must never be read by eval"}


def write_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    with (root / "corpus.jsonl").open("w") as fh:
        for doc_id, (title, text) in DOCS.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w") as fh:
        for qid, (text, _) in TEST_QUERIES.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
        for qid, text in TRAIN_QUERIES.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{r}" for q, (_, judged) in TEST_QUERIES.items() for d, r in judged.items()]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nt1\tphoto\t1\n")
    return root


@pytest.fixture(scope="module")
def beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("beir") / "tinyset")


@pytest.fixture(scope="module")
def tiny_leaf(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "leaf32", dimensions=32))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("embcache"))


def _settings(mongo_uri: str, teacher: str, leaf: str, cache: str) -> Any:
    return load_settings(
        uri=mongo_uri,
        teacher_model=teacher,
        leaf_model=leaf,
        query_prompt="",
        embedding_cache=cache,
        chunk_size=24,
        chunk_overlap=4,
        index_wait_seconds=120,
    )


def test_load_beir_reads_only_test_queries(beir: Path) -> None:
    data = load_beir(beir)
    assert data.name == "tinyset"
    assert set(data.queries) == set(TEST_QUERIES)  # the train query's text is never loaded
    assert data.qrels["q1"] == {"photo": 2, "volcano": 0}
    assert data.corpus_path.name == "corpus.jsonl"


def test_subsample_keeps_judged_docs(beir: Path, tmp_path: Path) -> None:
    data = subsample(load_beir(beir), max_queries=2, sample_docs=4, seed=3, work_dir=tmp_path)
    assert len(data.queries) == 2 and set(data.qrels) == set(data.queries)
    kept = [json.loads(line)["_id"] for line in data.corpus_path.read_text().splitlines()]
    judged = {d for q in data.qrels.values() for d in q}
    assert judged <= set(kept) and len(kept) == max(4, len(judged))
    assert data.sampled and data.tag.startswith("tinyset-s")
    again = subsample(load_beir(beir), max_queries=2, sample_docs=4, seed=3, work_dir=tmp_path)
    assert again.corpus_path == data.corpus_path and set(again.queries) == set(data.queries)


def test_dimension_tokens_and_names() -> None:
    assert [resolve_dimensions(t, 768) for t in ("full", "half", "256", 128)] == [768, 384, 256, 128]
    spec = VectorSpec(teacher_model="/m/all-MiniLM-L6-v2", leaf_model="x", full_dimensions=384, dimensions=192)
    data = load_beir.__globals__["BeirDataset"]("SciFact", Path("."), Path("c.jsonl"), {}, {})
    name = collection_name(data, spec, load_settings())
    assert name.startswith("eval_scifact_all-minilm-l6-v2-") and name.endswith("_192_float32_none")
    assert index_bytes(spec) == 768
    assert index_bytes(spec.model_copy(update={"quantization": "binary"})) == 24


def test_eval_grid_end_to_end(
    beir: Path, mongo_uri: str, db_name: str, minilm_path: str, tiny_leaf: str, cache_dir: str
) -> None:
    report = run_eval(
        beir,
        settings=_settings(mongo_uri, minilm_path, tiny_leaf, cache_dir),
        modes=["asymmetric", "teacher"],
        dimensions=["full", "half"],
        dtypes=["float32", "int8", "binary"],
        quantizations=["none", "scalar"],
        int8_range="calibrate",
        database=db_name,
    )
    rows = {(r.mode, r.dimensions, r.dtype, r.quantization): r for r in report.results}
    # asymmetric: a 32-d leaf cannot query 384-d teacher vectors, at every grid point
    asym = [r for r in report.results if r.mode == "asymmetric"]
    assert asym and all(r.status == "skipped" for r in asym)
    assert "cannot be compared" in (rows[("asymmetric", 384, "float32", "none")].reason or "")
    # illegal combinations carry the spec's reason
    for dims in (384, 192):
        assert "LEAF_MONGO_QUANTIZATION" in (rows[("teacher", dims, "int8", "scalar")].reason or "")
        assert rows[("teacher", dims, "binary", "scalar")].status == "skipped"
    ok = [r for r in report.results if r.status == "ok"]
    assert {(r.dimensions, r.dtype, r.quantization) for r in ok} == {
        (d, t, q)
        for d in (384, 192)
        for t, q in (("float32", "none"), ("float32", "scalar"), ("int8", "none"), ("binary", "none"))
    }
    best = rows[("teacher", 384, "float32", "none")]
    assert best.queries == 4  # q5 has no relevant document
    assert best.per_query["q1"]["mrr@10"] == 1.0 and best.per_query["q2"]["mrr@10"] == 1.0
    assert best.metrics["ndcg@10"] > 0.9 and best.metrics["recall@100"] == 1.0
    assert best.corpus_docs == len(DOCS) and best.corpus_chunks is not None and best.corpus_chunks > len(DOCS)
    int8 = rows[("teacher", 384, "int8", "none")]
    assert int8.int8_range is not None and int8.int8_range[0] < 0 < int8.int8_range[1]
    assert int8.int8_range != (-0.3, 0.3)  # calibrated, not the profile default
    assert rows[("teacher", 192, "binary", "none")].bytes_per_vector == 7 + 24  # BSON value: 7 + payload
    assert rows[("teacher", 384, "float32", "scalar")].note is not None  # emulator does not quantize
    # A second run reuses the collection: ingest finds the corpus file unchanged and writes nothing.
    again = run_eval(
        beir,
        settings=_settings(mongo_uri, minilm_path, tiny_leaf, cache_dir),
        modes=["teacher"],
        database=db_name,
    )
    (row,) = again.results
    assert row.collection == best.collection and row.chunks_written == 0
    assert row.metrics == best.metrics


def test_cli_json_and_plot(
    beir: Path, mongo_uri: str, db_name: str, minilm_path: str, tiny_leaf: str, cache_dir: str, tmp_path: Path
) -> None:
    from leaf_mongo.cli import app

    env = {
        "HF_HUB_OFFLINE": "1",
        "LEAF_MONGO_EMBEDDING_CACHE": cache_dir,
        "LEAF_MONGO_CHUNK_SIZE": "24",
        "LEAF_MONGO_CHUNK_OVERLAP": "4",
    }
    args = [
        "eval", str(beir), "--uri", mongo_uri, "--database", db_name, "--teacher-model", minilm_path,
        "--leaf-model", tiny_leaf, "--query-prompt", "", "--modes", "asymmetric,leaf,teacher",
        "--dimensions", "full,999", "--json", "--plot", str(tmp_path / "quality.png"),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by = {(r["mode"], r["dimensions"]): r for r in rows}
    required = {
        "mode", "dimensions", "dtype", "quantization", "ndcg@10", "recall@10", "recall@100", "mrr@10",
        "queries", "latency_ms_p50", "latency_ms_p99", "bytes_per_vector",
    }  # fmt: skip
    assert all(required <= set(r) for r in rows)
    teacher = by[("teacher", 384)]
    assert teacher["status"] == "ok" and teacher["queries"] == 4 and teacher["ndcg@10"] > 0.9
    assert teacher["bytes_per_vector"] == 7 + 1536 and teacher["latency_ms_p99"] >= teacher["latency_ms_p50"] > 0
    assert by[("leaf", 32)]["status"] == "ok"  # the tiny model on both sides
    assert by[("asymmetric", 384)]["status"] == "skipped"
    too_big = by[("teacher", 999)]
    assert too_big["status"] == "skipped" and "exceeds" in too_big["reason"]
    assert (tmp_path / "quality.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_mode_is_one_line(beir: Path) -> None:
    from leaf_mongo.cli import app

    result = CliRunner().invoke(app, ["eval", str(beir), "--modes", "sideways", "--emulator"])
    assert result.exit_code == 2
    assert "sideways" in result.output and "Traceback" not in result.output


def test_eval_fulltext_and_hybrid_modes_with_a_weights_grid(
    beir: Path, mongo_uri: str, db_name: str, minilm_path: str, cache_dir: str
) -> None:
    report = run_eval(
        beir,
        settings=_settings(mongo_uri, minilm_path, minilm_path, cache_dir),
        modes=["teacher", "fulltext", "hybrid", "hybrid_teacher"],
        dimensions=["full", "half"],
        weights=[(1.0, 1.0), (2.0, 1.0)],
        database=db_name,
    )
    by_mode: dict[str, list[Any]] = {}
    for r in report.results:
        by_mode.setdefault(r.mode, []).append(r)
    assert len(by_mode["fulltext"]) == 1  # full text does not depend on the vector grid
    assert {(r.dimensions, r.weights) for r in by_mode["hybrid"]} == {
        (d, w) for d in (384, 192) for w in ((1.0, 1.0), (2.0, 1.0))
    }
    for r in report.results:
        assert r.status == "ok", (r.mode, r.reason)
        assert r.metrics["ndcg@10"] > 0.5 and r.queries == 4
    text = by_mode["fulltext"][0]
    assert text.query_model == "BM25 ($search)" and text.to_json()["weights"] is None
    assert by_mode["hybrid"][0].to_json()["weights"] == [1.0, 1.0]
