"""The training loop: resumable (checkpoints), a batch order that is a pure function of (seed, step)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

_Emit = Callable[[Event, dict[str, Any]], None]
_Kinds = dict[str, tuple[list[str], str, int]]
"""kind -> (texts, teacher prompt, times per epoch)."""


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


def distill(config: DistillConfig, on_event: _Emit | None = None) -> DistillReport:
    """Run (or resume) a distillation; writes the model, alignment file and card to ``config.out``."""
    emit = on_event or (lambda _e, _d: None)
    wall0 = time.perf_counter()
    if not config.texts and not config.queries:
        raise DistillError("nothing to train on: give --texts and/or --queries")
    data = _training_set(config, emit)
    ckpt_path = config.out / CHECKPOINT_DIR / CHECKPOINT_FILE
    trainer = _Trainer(config, data, _student(config, data, ckpt_path, emit), ckpt_path, emit)
    trainer.run()
    emit("stage", {"message": "alignment after training on held-out texts"})
    report = _report(config, data, trainer, alignment(trainer.model, data.held))
    save_student(trainer.model, config.out, data.prompt)
    report.wall_seconds = round(time.perf_counter() - wall0, 1)
    write_card(config.out, report)
    if not config.keep_checkpoint:
        ckpt_path.unlink(missing_ok=True)
    return report


@dataclass
class _TrainingSet:
    """The student's texts (with the prompt the teacher saw) and teacher targets, training and held out."""

    teacher_dim: int
    prompt: str
    """The teacher's query prompt: the student is trained and saved with it."""
    texts: list[str]
    targets: np.ndarray
    held: dict[str, tuple[list[str], np.ndarray]]
    counts: dict[str, int]
    teacher_seconds: float
    fingerprint: str
    """Identifies the data and settings a checkpoint belongs to: resuming another run's checkpoint is refused."""


@dataclass
class _Progress:
    """What a checkpoint holds besides the weights, the optimizer and the RNG state."""

    step: int = 0
    elapsed: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    window: list[float] = field(default_factory=list)
    """Losses since the last history point."""
    before: dict[str, float | None] = field(default_factory=dict)
    resumed_from: int | None = None


_Student = tuple["SentenceTransformer", "torch.optim.Optimizer", _Progress]


def _cache_dir(config: DistillConfig) -> Path:
    return Path(config.cache or DEFAULT_CACHE).expanduser()


def _training_set(config: DistillConfig, emit: _Emit) -> _TrainingSet:
    """Texts, their teacher vectors (cached, resumable) and the hold-out split."""
    teacher_dim, prompt, kinds, skipped = _texts(config, emit)
    t0 = time.perf_counter()
    targets = _teacher_targets(config, kinds, emit)
    teacher_seconds = time.perf_counter() - t0

    # Held-out texts per kind; the student sees exactly what the teacher saw (prompt included).
    held: dict[str, tuple[list[str], np.ndarray]] = {}
    train_texts: list[str] = []
    parts: list[np.ndarray] = []
    counts: dict[str, int] = {"skipped_files": skipped}
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
    settings = [config.teacher, config.student, prompt, str(config.seed), str(config.batch_size)]
    fingerprint = fingerprint_of([*settings, str(config.query_repeat), repr(config.holdout_fraction), *train_texts])
    return _TrainingSet(teacher_dim, prompt, train_texts, train_targets, held, counts, teacher_seconds, fingerprint)


def _texts(config: DistillConfig, emit: _Emit) -> tuple[int, str, _Kinds, int]:
    """The teacher's dimension and query prompt, the texts of each kind, and how many files were skipped.

    Documents are loaded and chunked like ingest, queries as given. Prompts are resolved as ingest and the
    retriever resolve them: the teacher's configured prompt per task, else none.
    """
    emit("stage", {"message": f"loading teacher {config.teacher}"})
    teacher = load_model(config.teacher, config.device, task="document")  # a Router's document route
    teacher_dim = embedding_dimension(teacher)
    if not teacher_dim:
        raise DistillError(f"teacher {config.teacher!r} does not report its embedding dimension")
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
    if config.cached_only:
        hits = open_cache(_cache_dir(config)).get_many(config.teacher, doc_prompt, docs)
        emit("stage", {"message": f"--cached-only: {sum(h is not None for h in hits)} of {len(docs)} chunks cached"})
        docs = [d for d, h in zip(docs, hits, strict=True) if h is not None]
    # Titles are short document text: cheap, query-like. The student (a query model) sees queries with the
    # query prompt and document text bare.
    kinds: _Kinds = {
        "documents": (docs, doc_prompt, 1),
        "titles": (titles if config.titles else [], doc_prompt, 1),
        "queries": (queries, prompt, config.query_repeat),
    }
    if not docs and not queries:
        raise DistillError("no text found in --texts / --queries")
    return int(teacher_dim), prompt, kinds, len(skipped)


def _teacher_targets(config: DistillConfig, kinds: _Kinds, emit: _Emit) -> dict[str, np.ndarray]:
    """Teacher vectors per kind through the embedding cache; the documents under the same keys as ingest."""
    cache_dir = _cache_dir(config)
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
    return targets


def _student(config: DistillConfig, data: _TrainingSet, ckpt_path: Path, emit: _Emit) -> _Student:
    """The student and its optimizer, resumed from the checkpoint or initialized by a least-squares fit."""
    import torch

    emit("stage", {"message": f"building student from {config.student}"})
    model = build_student(config.student, data.teacher_dim, config.device)
    torch.manual_seed(config.seed)  # after loading: a first (uncached) model load consumes random numbers
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.resume and ckpt_path.is_file():
        return model, optimizer, _resume(ckpt_path, data.fingerprint, model, optimizer, emit)
    n_fit = min(config.fit_samples, len(data.texts))
    pick = np.sort(np.random.default_rng([config.seed, 3]).choice(len(data.texts), n_fit, replace=False))
    emit("stage", {"message": f"least-squares fit of the projection on {n_fit} texts"})
    fit_loss = fit_projection(model, [data.texts[i] for i in pick], data.targets[pick])
    emit("stage", {"message": "alignment of the least-squares init on held-out texts"})
    return model, optimizer, _Progress(before={**alignment(model, data.held), "train_fit_loss": fit_loss})


def _resume(
    ckpt_path: Path, fingerprint: str, model: SentenceTransformer, optimizer: torch.optim.Optimizer, emit: _Emit
) -> _Progress:
    """Load the checkpoint into the student and optimizer, restore the RNG, and return the saved progress."""
    import torch

    state = _load_checkpoint(ckpt_path)
    if state.get("fingerprint") != fingerprint:
        raise DistillError(
            f"{ckpt_path} was written by a run with other texts or settings (teacher, student, prompt, seed, "
            "batch size, hold-out, query repeat); pass --no-resume to start over"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    step, elapsed = int(state["step"]), float(state["elapsed"])
    progress = _Progress(step, elapsed, list(state["history"]), list(state["window"]), dict(state["before"]), step)
    torch.set_rng_state(state["torch_rng"])
    emit("stage", {"message": f"resuming from step {step} ({elapsed / 60:.1f} min trained)"})
    return progress


class _Trainer:
    """The training loop over the student: a step or time budget, checkpoints every N steps or minutes."""

    def __init__(
        self, config: DistillConfig, data: _TrainingSet, student: _Student, ckpt_path: Path, emit: _Emit
    ) -> None:
        self.config, self.data, self.ckpt_path, self.emit = config, data, ckpt_path, emit
        self.model, self.optimizer, self.progress = student
        self.order = BatchOrder([len(t) for t in data.texts], config.batch_size, config.seed)
        self.budget = None if config.time_budget_minutes is None else config.time_budget_minutes * 60.0
        self.last_ckpt_step, self.last_ckpt_time = self.progress.step, time.perf_counter()

    def run(self) -> None:
        """Train until the steps or the time budget are spent; the last step always ends in a checkpoint."""
        config, p = self.config, self.progress
        ema: float | None = p.history[-1]["loss"] if p.history else None
        self.model.train()
        self.emit("stage", {"message": "training"})
        lr = _lr_at(config, p.step, p.elapsed)  # the rate of the last step, also when a finished run is resumed
        while (p.step < config.steps) if config.steps is not None else (p.elapsed < float(self.budget or 0)):
            s0 = time.perf_counter()
            lr = _lr_at(config, p.step, p.elapsed)
            value = self._step(lr)
            p.step += 1
            p.elapsed += time.perf_counter() - s0
            ema = value if ema is None else 0.98 * ema + 0.02 * value
            p.window.append(value)
            if p.step % 10 == 0:
                p.history.append({"step": p.step, "seconds": round(p.elapsed, 2), "loss": float(np.mean(p.window)),
                                  "lr": lr})  # fmt: skip
                p.window = []
            if self._checkpoint_due():
                self.checkpoint()
            self.emit("step", {"step": p.step, "steps": config.steps, "elapsed": p.elapsed, "budget": self.budget,
                               "loss": value, "ema": ema, "lr": lr})  # fmt: skip
        if p.window:
            p.history.append({"step": p.step, "seconds": round(p.elapsed, 2), "loss": float(np.mean(p.window)),
                              "lr": lr})  # fmt: skip
            p.window = []  # flushed: the final checkpoint must not carry it again into a resumed run's history
        if p.step != self.last_ckpt_step or not self.ckpt_path.is_file():
            self.checkpoint()

    def _step(self, lr: float) -> float:
        """One optimizer step on batch ``progress.step`` at learning rate ``lr``; returns its loss."""
        import torch

        for g in self.optimizer.param_groups:
            g["lr"] = lr
        idx = self.order.batch(self.progress.step)
        with torch.autocast(self.model.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
            out = forward(self.model, [self.data.texts[i] for i in idx]).float()
        target = torch.from_numpy(self.data.targets[idx]).to(out.device)
        loss = ((out - target) ** 2).sum(dim=1).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def _checkpoint_due(self) -> bool:
        if self.config.checkpoint_every:
            return self.progress.step - self.last_ckpt_step >= self.config.checkpoint_every
        return time.perf_counter() - self.last_ckpt_time >= self.config.checkpoint_minutes * 60.0

    def checkpoint(self) -> None:
        """Write everything a resumed run needs to continue exactly as this one would (atomically)."""
        import torch

        config, p = self.config, self.progress
        _save_checkpoint(
            self.ckpt_path,
            {
                "fingerprint": self.data.fingerprint,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": {
                    "kind": "linear",
                    "lr": config.lr,
                    "final_lr": config.final_lr,
                    "steps": config.steps,
                    "budget_s": self.budget,
                },
                "step": p.step,
                "elapsed": p.elapsed,
                "seed": config.seed,
                "steps_per_epoch": self.order.steps_per_epoch,
                "history": p.history,
                "window": p.window,
                "before": p.before,
                "torch_rng": torch.get_rng_state(),
            },
        )
        self.last_ckpt_step, self.last_ckpt_time = p.step, time.perf_counter()
        self.emit("checkpoint", {"step": p.step, "path": str(self.ckpt_path)})


_REPORTED_CONFIG = (
    "batch_size", "lr", "final_lr", "weight_decay", "steps", "time_budget_minutes", "chunk_size", "chunk_overlap",
    "holdout_fraction", "query_repeat", "titles", "cached_only", "bf16", "fit_samples", "seed",
)  # fmt: skip


def _report(
    config: DistillConfig, data: _TrainingSet, trainer: _Trainer, after: dict[str, float | None]
) -> DistillReport:
    """The run's report; ``wall_seconds`` is set by the caller once the model is saved."""
    progress = trainer.progress
    return DistillReport(
        teacher=config.teacher,
        student=config.student,
        out=str(config.out),
        dimensions=data.teacher_dim,
        query_prompt=data.prompt,
        steps=progress.step,
        seconds=round(progress.elapsed, 1),
        teacher_seconds=round(data.teacher_seconds, 1),
        texts=data.counts,
        alignment={"before": progress.before, "after": after},
        loss_curve=progress.history,
        resumed_from=progress.resumed_from,
        config={
            **{name: getattr(config, name) for name in _REPORTED_CONFIG},
            "epochs": round(progress.step / trainer.order.steps_per_epoch, 2),
            "sources": [str(p) for p in config.texts] + [str(p) for p in config.queries],
        },
    )
