"""The training loop: resumable (checkpoints), a batch order that is a pure function of (seed, step)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leaf_mongo.distill.config import (
    CHECKPOINT_DIR,
    CHECKPOINT_FILE,
    DEFAULT_CACHE,
    GROUP_BATCHES,
    DistillConfig,
    DistillError,
    DistillReport,
    Event,
)
from leaf_mongo.distill.data import (
    collect_documents,
    fingerprint_of,
    holdout_split,
    read_queries,
    read_query_ids,
    teacher_embeddings,
)
from leaf_mongo.distill.student import alignment, build_student, fit_projection, forward, save_student, write_card
from leaf_mongo.ingest.chunking import Chunker
from leaf_mongo.models.cache import open_cache
from leaf_mongo.models.layout import Task
from leaf_mongo.models.loading import embedding_dimension, load_model
from leaf_mongo.models.prompts import resolve_prompt


class BatchOrder:
    """Which texts form step ``s``: a pure function of (seed, s), so a resumed run replays the same order.

    Each epoch is a seeded permutation, cut into groups of ``GROUP_BATCHES`` batches that are sorted by
    length before batching (queries end up with queries, so a batch pads to its own length), and the batches
    of the epoch are then shuffled.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self._epoch: tuple[int, list[np.ndarray]] | None = None
        self.steps_per_epoch = len(self._batches(0))

    def _batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, 7919, epoch])
        perm = rng.permutation(len(self.lengths))
        group = self.batch_size * GROUP_BATCHES
        batches: list[np.ndarray] = []
        for g in range(0, len(perm), group):
            part = perm[g : g + group]
            part = part[np.argsort(-self.lengths[part], kind="stable")]
            batches.extend(part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size))
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def batch(self, step: int) -> np.ndarray:
        epoch, k = divmod(step, self.steps_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, self._batches(epoch))
        return self._epoch[1][k]


def _lr_at(config: DistillConfig, step: int, elapsed: float) -> float:
    """Linear decay from ``lr`` to ``final_lr`` over the steps, or over the time budget by elapsed fraction."""
    if config.steps is not None:
        frac = step / max(config.steps - 1, 1)
    else:
        frac = elapsed / (float(config.time_budget_minutes or 0) * 60.0)
    frac = min(max(frac, 0.0), 1.0)
    return config.lr + (config.final_lr - config.lr) * frac


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return state


def distill(config: DistillConfig, on_event: Callable[[Event, dict[str, Any]], None] | None = None) -> DistillReport:
    """Run (or resume) a distillation; writes the model, alignment file and card to ``config.out``."""
    import torch

    emit = on_event or (lambda _e, _d: None)
    wall0 = time.perf_counter()
    if not config.texts and not config.queries:
        raise DistillError("nothing to train on: give --texts and/or --queries")

    # Texts: documents like ingest, queries as given.
    emit("stage", {"message": f"loading teacher {config.teacher}"})
    teacher = load_model(config.teacher, config.device, task="document")  # a Router's document route
    teacher_dim = embedding_dimension(teacher)
    if not teacher_dim:
        raise DistillError(f"teacher {config.teacher!r} does not report its embedding dimension")
    # Prompts as ingest and the retriever resolve them: the teacher's configured prompt per task, else none.
    prompt = resolve_prompt(config.query_prompt, config.teacher, "query", "", config.device)
    doc_prompt = resolve_prompt(None, config.teacher, "document", "", config.device)
    docs, titles, skipped = collect_documents(
        list(config.texts),
        Chunker.for_model(teacher, config.chunk_size, config.chunk_overlap),
        include=config.include,
        exclude=config.exclude,
        max_file_bytes=int(config.max_file_mb * 1024 * 1024),
    )
    ids = read_query_ids(config.query_ids) if config.query_ids else None
    queries = read_queries(list(config.queries), ids)
    cache_dir = Path(config.cache or DEFAULT_CACHE).expanduser()
    if config.cached_only:
        hits = open_cache(cache_dir).get_many(config.teacher, doc_prompt, docs)
        emit("stage", {"message": f"--cached-only: {sum(h is not None for h in hits)} of {len(docs)} chunks cached"})
        docs = [d for d, h in zip(docs, hits, strict=True) if h is not None]
    # kind -> (texts, teacher prompt, times per epoch); titles are short document text: cheap, query-like
    # The student (a query model) sees queries with the query prompt and document text bare.
    kinds: dict[str, tuple[list[str], str, int]] = {
        "documents": (docs, doc_prompt, 1),
        "titles": (titles if config.titles else [], doc_prompt, 1),
        "queries": (queries, prompt, config.query_repeat),
    }
    if not docs and not queries:
        raise DistillError("no text found in --texts / --queries")

    # Teacher vectors (cached, resumable); same keys as ingest for the documents.
    t0 = time.perf_counter()
    total = sum(len(t) for t, _, _ in kinds.values())
    sizes = ", ".join(f"{len(t)} {k}" for k, (t, _, _) in kinds.items() if t)
    emit("stage", {"message": f"teacher vectors for {sizes} (cache {cache_dir})"})
    targets: dict[str, np.ndarray] = {}
    done = 0

    def progress(offset: int) -> Callable[[int, int], None]:
        return lambda d, _n: emit("teacher", {"done": offset + d, "total": total})

    for kind, (texts, kind_prompt, _) in kinds.items():
        task: Task = "query" if kind == "queries" else "document"
        targets[kind] = teacher_embeddings(
            config.teacher, texts, kind_prompt, cache_dir, config.device, progress(done), task=task
        )
        done += len(texts)
    teacher_seconds = time.perf_counter() - t0

    # Held-out texts per kind; the student sees exactly what the teacher saw (prompt included).
    held: dict[str, tuple[list[str], np.ndarray]] = {}
    train_texts: list[str] = []
    parts: list[np.ndarray] = []
    counts: dict[str, int] = {"skipped_files": len(skipped)}
    for salt, (kind, (texts, kind_prompt, repeat)) in enumerate(kinds.items(), start=1):
        if not texts:
            continue
        tr, ho = holdout_split(len(texts), config.holdout_fraction, config.seed, salt)
        prefix = kind_prompt if kind == "queries" else ""
        held[kind] = ([prefix + texts[i] for i in ho], targets[kind][ho])
        train_texts += [prefix + texts[i] for i in tr] * repeat
        parts += [targets[kind][tr]] * repeat
        counts.update({kind: len(texts), f"train_{kind}": len(tr), f"heldout_{kind}": len(ho)})
    if not train_texts:
        raise DistillError("no training texts left after the hold-out split")
    train_targets = np.concatenate(parts).astype(np.float32)

    fingerprint = fingerprint_of(
        [
            config.teacher,
            config.student,
            prompt,
            str(config.seed),
            str(config.batch_size),
            str(config.query_repeat),
            repr(config.holdout_fraction),
            *train_texts,
        ]
    )

    # Student: resume or least-squares init.
    ckpt_path = config.out / CHECKPOINT_DIR / CHECKPOINT_FILE
    emit("stage", {"message": f"building student from {config.student}"})
    model = build_student(config.student, int(teacher_dim), config.device)
    torch.manual_seed(config.seed)  # after loading: a first (uncached) model load consumes random numbers
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step, elapsed, resumed_from = 0, 0.0, None
    history: list[dict[str, float]] = []
    window: list[float] = []  # losses since the last history point
    before: dict[str, float | None] = {}
    if config.resume and ckpt_path.is_file():
        state = _load_checkpoint(ckpt_path)
        if state.get("fingerprint") != fingerprint:
            raise DistillError(
                f"{ckpt_path} was written by a run with other texts or settings (teacher, student, prompt, seed, "
                "batch size, hold-out, query repeat); pass --no-resume to start over"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        history, window, before = list(state["history"]), list(state["window"]), dict(state["before"])
        torch.set_rng_state(state["torch_rng"])
        resumed_from = step
        emit("stage", {"message": f"resuming from step {step} ({elapsed / 60:.1f} min trained)"})
    else:
        n_fit = min(config.fit_samples, len(train_texts))
        pick = np.sort(np.random.default_rng([config.seed, 3]).choice(len(train_texts), n_fit, replace=False))
        emit("stage", {"message": f"least-squares fit of the projection on {n_fit} texts"})
        fit_loss = fit_projection(model, [train_texts[i] for i in pick], train_targets[pick])
        emit("stage", {"message": "alignment of the least-squares init on held-out texts"})
        before = {**alignment(model, held), "train_fit_loss": fit_loss}

    # Train.
    order = BatchOrder([len(t) for t in train_texts], config.batch_size, config.seed)
    budget = None if config.time_budget_minutes is None else config.time_budget_minutes * 60.0
    ckpt_every_s = config.checkpoint_minutes * 60.0
    last_ckpt_step, last_ckpt_time = step, time.perf_counter()
    ema: float | None = history[-1]["loss"] if history else None

    def checkpoint() -> None:
        nonlocal last_ckpt_step, last_ckpt_time
        _save_checkpoint(
            ckpt_path,
            {
                "fingerprint": fingerprint,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": {
                    "kind": "linear",
                    "lr": config.lr,
                    "final_lr": config.final_lr,
                    "steps": config.steps,
                    "budget_s": budget,
                },
                "step": step,
                "elapsed": elapsed,
                "seed": config.seed,
                "steps_per_epoch": order.steps_per_epoch,
                "history": history,
                "window": window,
                "before": before,
                "torch_rng": torch.get_rng_state(),
            },
        )
        last_ckpt_step, last_ckpt_time = step, time.perf_counter()
        emit("checkpoint", {"step": step, "path": str(ckpt_path)})

    model.train()
    emit("stage", {"message": "training"})
    while (step < config.steps) if config.steps is not None else (elapsed < float(budget or 0)):
        s0 = time.perf_counter()
        lr = _lr_at(config, step, elapsed)
        for g in optimizer.param_groups:
            g["lr"] = lr
        idx = order.batch(step)
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=config.bf16):
            out = forward(model, [train_texts[i] for i in idx]).float()
        target = torch.from_numpy(train_targets[idx]).to(out.device)
        loss = ((out - target) ** 2).sum(dim=1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        step += 1
        elapsed += time.perf_counter() - s0
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        window.append(value)
        if step % 10 == 0:
            history.append({"step": step, "seconds": round(elapsed, 2), "loss": float(np.mean(window)), "lr": lr})
            window = []
        due = (
            step - last_ckpt_step >= config.checkpoint_every
            if config.checkpoint_every
            else time.perf_counter() - last_ckpt_time >= ckpt_every_s
        )
        if due:
            checkpoint()
        emit("step", {"step": step, "steps": config.steps, "elapsed": elapsed, "budget": budget, "loss": value,
                      "ema": ema, "lr": lr})  # fmt: skip
    if window:
        history.append({"step": step, "seconds": round(elapsed, 2), "loss": float(np.mean(window)), "lr": lr})
    if step != last_ckpt_step or not ckpt_path.is_file():
        checkpoint()

    emit("stage", {"message": "alignment after training on held-out texts"})
    after = alignment(model, held)
    report = DistillReport(
        teacher=config.teacher,
        student=config.student,
        out=str(config.out),
        dimensions=int(teacher_dim),
        query_prompt=prompt,
        steps=step,
        seconds=round(elapsed, 1),
        teacher_seconds=round(teacher_seconds, 1),
        texts=counts,
        alignment={"before": before, "after": after},
        loss_curve=history,
        resumed_from=resumed_from,
        config={
            "batch_size": config.batch_size,
            "lr": config.lr,
            "final_lr": config.final_lr,
            "weight_decay": config.weight_decay,
            "steps": config.steps,
            "time_budget_minutes": config.time_budget_minutes,
            "chunk_size": config.chunk_size,
            "chunk_overlap": config.chunk_overlap,
            "holdout_fraction": config.holdout_fraction,
            "query_repeat": config.query_repeat,
            "titles": config.titles,
            "cached_only": config.cached_only,
            "bf16": config.bf16,
            "fit_samples": config.fit_samples,
            "seed": config.seed,
            "epochs": round(step / order.steps_per_epoch, 2),
            "sources": [str(p) for p in config.texts] + [str(p) for p in config.queries],
        },
    )
    save_student(model, config.out, prompt)
    report.wall_seconds = round(time.perf_counter() - wall0, 1)
    write_card(config.out, report)
    if not config.keep_checkpoint:
        ckpt_path.unlink(missing_ok=True)
    return report
