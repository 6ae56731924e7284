"""`leaf-mongo distill` on tiny random models: loss, projection shape, resume, saved model, CLI."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from leaf_mongo.distill import (
    CHECKPOINT_DIR,
    CHECKPOINT_FILE,
    DistillConfig,
    DistillError,
    StopTraining,
    distill,
    read_queries,
    read_query_ids,
)
from leaf_mongo.models.cache import open_cache
from leaf_mongo.models.loading import ALIGNMENT_FILE, aligned_teacher
from tests.tiny_models import make_tiny_model

TEACHER_DIM = 24


def _words(rng: random.Random, n: int) -> str:
    letters = rng.sample(string.ascii_lowercase, 4)  # a "topic": texts differ in what they are made of
    return " ".join("".join(rng.choices(letters, k=rng.randint(2, 6))) for _ in range(n))


def _centered_teacher(path: Path, texts: list[str]) -> Path:
    """A tiny random model whose outputs differ between texts.

    Mean-pooled states of a random BERT share one large component, so its raw outputs all have cosine ~0.99
    with each other; a Dense whose bias removes that component makes a teacher worth aligning to.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    make_tiny_model(path, dimensions=TEACHER_DIM, hidden=16, seed=1)
    model = SentenceTransformer(str(path), device="cpu")
    torch.manual_seed(1)
    weight = torch.randn(TEACHER_DIM, 16) / 4
    mean = SentenceTransformer(modules=[model[0], model[1]], device="cpu").encode(texts, convert_to_tensor=True)
    dense = Dense(16, TEACHER_DIM, bias=True, activation_function=torch.nn.Tanh(), init_weight=weight,
                  init_bias=-(weight @ mean.mean(0)))  # fmt: skip
    teacher = SentenceTransformer(modules=[model[0], model[1], dense, Normalize()], device="cpu")
    teacher.save(str(path))
    return path


def _without_dropout(path: Path) -> Path:
    """Dropout noise dwarfs a tiny model's loss changes; without it the loss curve shows the optimization."""
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("distill")
    rng = random.Random(0)
    data = root / "data"
    data.mkdir()
    with (data / "corpus.jsonl").open("w") as fh:
        for i in range(60):
            fh.write(json.dumps({"_id": f"d{i}", "title": _words(rng, 2), "text": _words(rng, rng.randint(5, 25))}))
            fh.write("\n")
    queries = root / "queries.jsonl"
    with queries.open("w") as fh:
        for i in range(40):
            fh.write(json.dumps({"_id": f"q{i}", "text": _words(rng, rng.randint(2, 6))}) + "\n")
    sample = [_words(rng, rng.randint(2, 25)) for _ in range(200)]
    train = root / "train.tsv"
    train.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(30)))
    return {
        "root": root,
        "corpus": data,
        "queries": queries,
        "train": train,
        "teacher": _centered_teacher(root / "teacher", sample),
        "student": make_tiny_model(root / "student", dimensions=8, hidden=12, seed=2),
        "student_nodrop": _without_dropout(make_tiny_model(root / "student_nodrop", dimensions=8, hidden=12, seed=2)),
        "cache": root / "cache",
    }


def _config(env: dict[str, Path], out: Path, **kw: Any) -> DistillConfig:
    base: dict[str, Any] = {
        "teacher": str(env["teacher"]),
        "student": str(env["student"]),
        "out": out,
        "texts": [env["corpus"]],
        "queries": [env["queries"]],
        "query_ids": [env["train"]],
        "query_prompt": "query: ",
        "steps": 10,
        "batch_size": 8,
        "lr": 1e-3,
        "final_lr": 1e-4,
        "holdout_fraction": 0.1,
        "cache": env["cache"],
        "seed": 3,
        "device": "cpu",
    }
    base.update(kw)
    return DistillConfig(**base)


@pytest.fixture(scope="module")
def trained(env: dict[str, Path]) -> tuple[Path, Any]:
    out = env["root"] / "model"
    return out, distill(_config(env, out, student=str(env["student_nodrop"]), steps=60, lr=3e-4, final_lr=3e-5))


def test_loss_decreases_and_projection_has_teacher_dimension(trained: tuple[Path, Any]) -> None:
    out, report = trained
    losses = [p["loss"] for p in report.loss_curve]
    assert report.steps == 60 and len(losses) >= 5
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    assert report.dimensions == TEACHER_DIM
    weight = json.loads((out / "2_Dense" / "config.json").read_text())
    assert weight["in_features"] == 12 and weight["out_features"] == TEACHER_DIM and weight["bias"] is False
    after, before = report.alignment["after"], report.alignment["before"]
    assert after["documents"] > before["documents"] and after["queries"] > before["queries"]
    assert report.texts["train_queries"] + report.texts["heldout_queries"] == 30  # train ids only


def test_teacher_vectors_come_from_the_shared_cache(env: dict[str, Path], trained: tuple[Path, Any]) -> None:
    """Documents under ingest's key (teacher as given, the applied document prompt ""); queries under the query
    route's key with the query prompt; both equal to what sentence-transformers' task API computes."""
    from sentence_transformers import SentenceTransformer

    from leaf_mongo.distill import collect_documents
    from leaf_mongo.ingest.chunking import Chunker
    from leaf_mongo.models.loading import load_model

    chunker = Chunker.for_model(load_model(str(env["teacher"])), 256, 32)
    docs, titles, _ = collect_documents([env["corpus"]], chunker)
    cache = open_cache(env["cache"])
    stored = cache.get_many(str(env["teacher"]), "", docs)
    assert all(v is not None for v in stored)
    assert len(titles) == 60 and not any(cache.get_many(str(env["teacher"]), "", titles))  # --titles was off
    queries = read_queries([env["queries"]], read_query_ids([env["train"]]))
    stored_q = cache.get_many(f"{env['teacher']}#query-route", "query: ", queries)
    assert all(v is not None for v in stored_q)
    reference = SentenceTransformer(str(env["teacher"]), device="cpu")
    assert np.allclose(np.stack(stored), reference.encode_document(docs), atol=1e-5)  # type: ignore[arg-type]
    assert np.allclose(np.stack(stored_q), reference.encode_query(queries, prompt="query: "), atol=1e-5)  # type: ignore[arg-type]


def test_router_teacher_takes_each_task_route(env: dict[str, Path], tmp_path: Path) -> None:
    """A Router teacher (an -asym layout): documents through its document route, queries through its query route
    with its configured query prompt, as the model card's encode_document / encode_query compute them."""
    from sentence_transformers import SentenceTransformer

    from tests.tiny_models import QUERY_PROMPT, make_arctic_style, make_asym_style, make_leaf_ir_style

    teacher = make_arctic_style(tmp_path / "arctic", hidden=16)
    leaf = make_leaf_ir_style(tmp_path / "leaf", dimensions=16, hidden=12)
    asym = make_asym_style(tmp_path / "asym", leaf, teacher)
    cache = tmp_path / "cache"
    report = distill(_config(env, tmp_path / "out", teacher=str(asym), query_prompt=None, steps=2, cache=cache))
    assert report.query_prompt == QUERY_PROMPT and report.dimensions == 16
    reference = SentenceTransformer(str(asym), device="cpu")
    queries = read_queries([env["queries"]], read_query_ids([env["train"]]))
    stored_q = open_cache(cache).get_many(f"{asym}#query-route", QUERY_PROMPT, queries)
    assert all(v is not None for v in stored_q)
    assert np.allclose(np.stack(stored_q), reference.encode_query(queries), atol=1e-5)  # type: ignore[arg-type]
    from leaf_mongo.distill import collect_documents
    from leaf_mongo.ingest.chunking import Chunker
    from leaf_mongo.models.loading import load_model

    chunker = Chunker.for_model(load_model(str(asym), task="document"), 256, 32)  # the document route's tokenizer
    docs, _, _ = collect_documents([env["corpus"]], chunker)
    stored = open_cache(cache).get_many(str(asym), "", docs)
    assert report.texts["documents"] == len(docs) and all(v is not None for v in stored)
    assert np.allclose(np.stack(stored), reference.encode_document(docs), atol=1e-5)  # type: ignore[arg-type]
    assert not np.allclose(np.stack(stored), reference.encode_query(docs, prompt=""), atol=1e-3)  # type: ignore[arg-type]


def test_saved_model_loads_and_encodes_with_prompt(env: dict[str, Path], trained: tuple[Path, Any]) -> None:
    from sentence_transformers import SentenceTransformer

    out, report = trained
    model = SentenceTransformer(str(out), device="cpu")
    assert model.prompts["query"] == "query: "
    q = model.encode_query(["abc def"])
    assert q.shape == (1, TEACHER_DIM)
    assert np.allclose(q, model.encode(["query: abc def"]), atol=1e-5)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-4)
    assert aligned_teacher(str(out)) == str(env["teacher"])
    card = json.loads((out / ALIGNMENT_FILE).read_text())
    assert card["teacher"] == str(env["teacher"]) and card["dimensions"] == TEACHER_DIM
    assert set(card["alignment"]) == {"before", "after"} and card["steps"] == 60
    assert "queries" in (out / "README.md").read_text()


def _weights(path: Path) -> dict[str, Any]:
    import torch

    state: dict[str, Any] = torch.load(path / CHECKPOINT_DIR / CHECKPOINT_FILE, weights_only=False)["model"]
    return state


def test_resume_matches_uninterrupted_run(env: dict[str, Path]) -> None:
    import torch

    full = env["root"] / "full"
    distill(_config(env, full, steps=10, checkpoint_every=3))

    killed = env["root"] / "killed"

    def kill_at_7(event: str, data: dict[str, Any]) -> None:
        if event == "step" and data["step"] == 7:
            raise StopTraining

    with pytest.raises(StopTraining):
        distill(_config(env, killed, steps=10, checkpoint_every=3), on_event=kill_at_7)
    assert torch.load(killed / CHECKPOINT_DIR / CHECKPOINT_FILE, weights_only=False)["step"] == 6
    report = distill(_config(env, killed, steps=10, checkpoint_every=3))
    assert report.resumed_from == 6 and report.steps == 10

    a, b = _weights(full), _weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_rerun_of_a_finished_distillation_is_a_no_op(env: dict[str, Path]) -> None:
    """The default keeps the checkpoint: running the same command again resumes at the last step, trains nothing,
    and reports the same loss curve (its last point once)."""
    import torch

    out = env["root"] / "again"
    first = distill(_config(env, out, steps=7))
    weights = _weights(out)
    second = distill(_config(env, out, steps=7))
    assert second.resumed_from == 7 and second.steps == 7
    assert second.loss_curve == first.loss_curve and [p["step"] for p in first.loss_curve] == [7]
    for k, v in _weights(out).items():
        assert torch.equal(v, weights[k]), k


def test_checkpoint_from_other_data_is_refused(env: dict[str, Path]) -> None:
    out = env["root"] / "other"
    distill(_config(env, out, steps=2))
    with pytest.raises(DistillError, match="--no-resume"):
        distill(_config(env, out, steps=3, seed=4))
    assert distill(_config(env, out, steps=2, seed=4, resume=False)).resumed_from is None


def test_query_ids_keep_only_listed_queries(env: dict[str, Path]) -> None:
    ids = read_query_ids([env["train"]])
    assert ids == {f"q{i}" for i in range(30)}
    assert len(read_queries([env["queries"]], ids)) <= 30
    assert len(read_queries([env["queries"]])) <= 40


def test_config_needs_steps_or_budget(env: dict[str, Path]) -> None:
    with pytest.raises(DistillError):
        _config(env, env["root"] / "x", steps=None)
    with pytest.raises(DistillError):
        _config(env, env["root"] / "x", steps=5, time_budget_minutes=1.0)


def test_cached_only_skips_uncached_chunks(env: dict[str, Path], trained: tuple[Path, Any], tmp_path: Path) -> None:
    """Chunks the teacher never saw are dropped, not encoded; the module's cache holds the corpus already."""
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"_id": "new", "title": "zz", "text": "yyy xxx www"}) + "\n")
    report = distill(_config(env, tmp_path / "m", steps=2, texts=[env["corpus"], extra], cached_only=True))
    assert report.texts["documents"] == 60
    from leaf_mongo.distill import collect_documents
    from leaf_mongo.ingest.chunking import Chunker
    from leaf_mongo.models.loading import load_model

    new_chunks, _, _ = collect_documents([extra], Chunker.for_model(load_model(str(env["teacher"])), 256, 32))
    assert new_chunks and open_cache(env["cache"]).get_many(str(env["teacher"]), "", new_chunks) == [None]


def test_time_budget_run(env: dict[str, Path]) -> None:
    report = distill(_config(env, env["root"] / "budget", steps=None, time_budget_minutes=0.02))
    assert report.steps >= 1 and report.seconds >= 1.0


def test_cli_smoke(env: dict[str, Path]) -> None:
    from typer.testing import CliRunner

    from leaf_mongo.cli import app

    out = env["root"] / "cli"
    args = [
        "distill", "--teacher", str(env["teacher"]), "--student", str(env["student"]), "--out", str(out),
        "--texts", str(env["corpus"]), "--queries", str(env["queries"]), "--query-ids", str(env["train"]),
        "--steps", "3", "--batch-size", "8", "--cache", str(env["cache"]), "--device", "cpu", "--json",
        "--titles", "--bf16",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["steps"] == 3 and report["dimensions"] == TEACHER_DIM and report["query_prompt"] == ""
    assert report["texts"]["titles"] == 60 and report["config"]["bf16"] is True
    assert set(report["alignment"]["after"]) == {"documents", "titles", "queries"}
    assert aligned_teacher(str(out)) == str(env["teacher"])
    bad = CliRunner().invoke(app, ["distill", "--teacher", str(env["teacher"]), "--out", str(out)])
    assert bad.exit_code != 0
