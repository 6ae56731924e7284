"""The student: backbone + mean pooling + a bias-free Dense into the teacher's space; its least-squares init,
evaluation, and the saved model with its card."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from leaf_mongo.distill.config import EVAL_BATCH, RIDGE, DistillReport
from leaf_mongo.models.loading import ALIGNMENT_FILE, load_model

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer


def build_student(student: str, teacher_dim: int, device: str | None = None) -> SentenceTransformer:
    """The student's Transformer + mean Pooling + Dense(hidden -> teacher_dim, no bias, identity)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling

    base = load_model(student, device)  # shared (cached) model: we train a copy of its Transformer
    transformer = _copy_module(base[0])
    hidden = int(cast(Any, transformer).get_embedding_dimension())
    pooling = Pooling(hidden, pooling_mode="mean")
    dense = Dense(hidden, teacher_dim, bias=False, activation_function=torch.nn.Identity())
    return SentenceTransformer(modules=[transformer, pooling, dense], device=device)


def _copy_module(module: torch.nn.Module) -> torch.nn.Module:
    """A trainable copy: the loaded model is shared (``load_model`` caches it) and must stay untouched."""
    import copy

    return copy.deepcopy(module)


def features_of(model: SentenceTransformer, texts: Sequence[str]) -> dict[str, Any]:
    features = model.preprocess(list(texts))
    return {k: v.to(model.device) if hasattr(v, "to") else v for k, v in features.items()}


def forward(model: SentenceTransformer, texts: Sequence[str], upto: int | None = None) -> torch.Tensor:
    features = features_of(model, texts)
    for module in list(model)[:upto]:
        features = module(features)
    result: torch.Tensor = features["sentence_embedding"]
    return result


def encode_eval(model: SentenceTransformer, texts: Sequence[str], upto: int | None = None) -> np.ndarray:
    """Outputs (or pooled states, ``upto=2``) in eval mode, without gradients."""
    import torch

    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), EVAL_BATCH):
            out.append(forward(model, texts[i : i + EVAL_BATCH], upto).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def fit_projection(model: SentenceTransformer, texts: Sequence[str], targets: np.ndarray) -> float:
    """Least-squares ``Dense`` weights mapping pooled states to teacher vectors; returns the fit's mean loss."""
    import torch

    pooled = encode_eval(model, texts, upto=2).astype(np.float64)
    gram = pooled.T @ pooled
    # A small ridge term (relative to the mean eigenvalue): plain least squares puts huge weights on
    # near-degenerate directions of the pooled states, and the first dropout-noised steps then explode.
    ridge = RIDGE * np.trace(gram) / len(gram)
    weights = np.linalg.solve(gram + ridge * np.eye(len(gram)), pooled.T @ targets.astype(np.float64))
    dense: Any = model[2]
    with torch.no_grad():
        dense.linear.weight.copy_(torch.from_numpy(weights.T.astype(np.float32)))
    return float(((pooled @ weights - targets) ** 2).sum(axis=1).mean())


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) == 0:
        return None
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean((a * b).sum(axis=1) / np.maximum(na, 1e-12)))


def alignment(model: SentenceTransformer, held: dict[str, tuple[list[str], np.ndarray]]) -> dict[str, float | None]:
    return {kind: mean_cosine(encode_eval(model, t), y) if t else None for kind, (t, y) in held.items()}


def save_student(model: SentenceTransformer, out: Path, prompt: str) -> None:
    """A plain sentence-transformers folder: Transformer, Pooling, Dense, Normalize, with the query prompt.

    Normalize is appended for serving only (training regressed the raw output onto the teacher's unit
    vectors): the saved model then behaves like a normalized teacher for cosine and dot product alike.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize

    modules = [*list(model)[:3], Normalize()]
    saved = SentenceTransformer(
        modules=modules, prompts={"query": prompt, "document": ""}, similarity_fn_name="cosine", device="cpu"
    )
    saved.save(str(out))


def write_card(out: Path, report: DistillReport) -> None:
    """``leaf_mongo_alignment.json`` (what ``aligned_teacher`` reads) and a short README card."""
    body = report.to_json()
    (out / ALIGNMENT_FILE).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")

    def fmt(v: float | None) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

    before, after = report.alignment.get("before", {}), report.alignment.get("after", {})
    first = report.loss_curve[0]["loss"] if report.loss_curve else None
    last = report.loss_curve[-1]["loss"] if report.loss_curve else None
    t = report.texts
    card = f"""---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
tags: [leaf, distillation, leaf-mongo]
---
# LEAF query model aligned to `{report.teacher}`

Distilled with `leaf-mongo distill` (LEAF: the student reproduces the teacher's output vectors; no labels).
Encode queries with this model and compare them with documents embedded by the teacher.

- teacher: `{report.teacher}` ({report.dimensions}-d); student backbone: `{report.student}` + mean pooling +
  Dense (no bias) to {report.dimensions}-d + Normalize
- query prompt: `{report.query_prompt!r}` (configured as `prompts["query"]`; use `encode_query`)
- data: {t.get("train_documents", 0)} document chunks, {t.get("train_titles", 0)} titles and
  {t.get("train_queries", 0)} queries for training (queries x{report.config.get("query_repeat")} per epoch;
  held out: {t.get("heldout_documents", 0)} chunks, {t.get("heldout_titles", 0)} titles,
  {t.get("heldout_queries", 0)} queries); sources: {", ".join(report.config.get("sources", [])) or "n/a"}
- training: {report.steps} steps (batch {report.config.get("batch_size")}, {report.config.get("epochs")} epochs),
  {report.seconds / 60:.1f} min, AdamW, lr {report.config.get("lr")} -> {report.config.get("final_lr")} linear;
  loss (squared L2, batch mean) {fmt(first)} -> {fmt(last)}

| held-out mean cosine to teacher | least-squares init | after training |
|---|---|---|
| documents | {fmt(before.get("documents"))} | {fmt(after.get("documents"))} |
| queries | {fmt(before.get("queries"))} | {fmt(after.get("queries"))} |
| titles | {fmt(before.get("titles"))} | {fmt(after.get("titles"))} |

Use: `LEAF_MONGO_LEAF_MODEL={report.out}` with `LEAF_MONGO_TEACHER_MODEL={report.teacher}`.
Details: `{ALIGNMENT_FILE}`.
"""
    (out / "README.md").write_text(card, encoding="utf-8")
