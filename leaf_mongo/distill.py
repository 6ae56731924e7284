"""LEAF distillation: train a small query model to reproduce a teacher's embeddings (``leaf-mongo distill``).

The student only has to land where the teacher would put a text, so the training signal is the teacher's own
output vectors -- no labels. Following the LEAF paper (reference/leaf-models.md §1.2-1.4):

- student = the student's Transformer + mean pooling + a linear ``Dense(d_student -> d_teacher)``; the
  student's own head (Normalize, Dense) is dropped, and a ``Normalize`` is appended only in the saved model;
- the Dense is initialized by a least-squares fit of pooled student embeddings to teacher embeddings, so
  training starts from the best linear map of the untouched backbone (the "projection-only" baseline);
- loss = squared L2 between student output and teacher output, mean over the batch; AdamW, batch 32, learning
  rate decaying linearly from 1e-4 to 1e-5 over the run (by elapsed fraction for a time budget).

The Dense has no bias, like the published mdbr-leaf models' ``2_Dense`` (a single weight tensor): tools that
apply the projection by hand to ONNX token states (reference §2) then work unchanged, and mean-pooled MiniLM
states already carry a large shared component that the fit uses as an offset.

Documents go through the same loaders and chunker as ingest (chunked with the *teacher's* tokenizer), and
teacher vectors go through the same embedding cache with the same key (teacher name as given, prompt ``""``
for documents), so a corpus that was ingested with ``embedding_cache`` set costs no teacher pass here, and a
killed teacher pass resumes. Queries are encoded by the teacher with its query prompt (the student is
trained on, and saved with, the same prompt).

Training checkpoints (model, optimizer, step, elapsed time, RNG state, the data fingerprint) are written
atomically to ``<out>/checkpoint/state.pt``; the batch order is a pure function of (seed, step), so a run
resumed from a checkpoint continues exactly as the uninterrupted one would.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from leaf_mongo.chunking import Chunker
from leaf_mongo.embedding_cache import open_cache
from leaf_mongo.errors import LeafMongoError
from leaf_mongo.loaders import LoadError, SkippedFile, SourceFile, discover, load
from leaf_mongo.models import ALIGNMENT_FILE, embedding_dimension, load_model

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

DEFAULT_STUDENT = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_CACHE = "~/.cache/leaf-mongo/embeddings"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state.pt"
_GROUP_BATCHES = 50  # batches per length-sorted group: short queries batch together, saving padding
_TEACHER_BLOCK = 256  # texts per cached teacher call: a killed pass keeps all finished blocks
_EVAL_BATCH = 64
_RIDGE = 1e-3

Event = Literal["stage", "teacher", "step", "checkpoint"]


class DistillError(LeafMongoError):
    """Bad distill inputs (no texts, a checkpoint from another run ...)."""


class StopTraining(Exception):
    """Raised by an ``on_event`` callback to stop at once (tests use it to emulate a kill)."""


@dataclass
class DistillConfig:
    """Everything a run depends on; the CLI flags map one to one."""

    teacher: str
    out: Path
    student: str = DEFAULT_STUDENT
    texts: Sequence[Path] = ()
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    queries: Sequence[Path] = ()
    query_ids: Sequence[Path] = ()
    query_prompt: str | None = None
    """Teacher (and saved student) query prompt; ``None``: the teacher's configured ``query`` prompt, else ""."""
    steps: int | None = None
    time_budget_minutes: float | None = None
    batch_size: int = 32
    lr: float = 1e-4
    final_lr: float = 1e-5
    weight_decay: float = 0.01
    chunk_size: int = 256
    chunk_overlap: int = 32
    max_file_mb: float = 10.0
    holdout_fraction: float = 0.02
    query_repeat: int = 1
    """Each training query appears this many times per epoch (queries are short and cheap to train on)."""
    cached_only: bool = False
    """Train only on document chunks whose teacher vectors are already cached (e.g. by an ingest), skipping
    the teacher pass over the rest; titles and queries are always encoded (they are short)."""
    titles: bool = False
    """Also train on record titles (BEIR titles, first headings): short, query-like document text."""
    bf16: bool = False
    """bfloat16 autocast for the training forward pass (weights and optimizer stay float32)."""
    fit_samples: int = 4096
    """Training texts used for the least-squares initialization of the projection."""
    cache: Path | None = None
    seed: int = 0
    checkpoint_every: int | None = None
    """Checkpoint every N steps; ``None``: every ``checkpoint_minutes``."""
    checkpoint_minutes: float = 5.0
    resume: bool = True
    keep_checkpoint: bool = True
    device: str | None = None

    def __post_init__(self) -> None:
        self.out = Path(self.out).expanduser()
        if (self.steps is None) == (self.time_budget_minutes is None):
            raise DistillError("give exactly one of --steps and --time-budget")
        if self.steps is not None and self.steps < 1:
            raise DistillError("--steps must be at least 1")
        if self.time_budget_minutes is not None and self.time_budget_minutes <= 0:
            raise DistillError("--time-budget must be positive")
        if self.batch_size < 1 or self.query_repeat < 1 or self.fit_samples < 1:
            raise DistillError("--batch-size, --query-repeat and --fit-samples must be at least 1")
        if not 0 <= self.holdout_fraction < 0.5:
            raise DistillError("--holdout-fraction must be in [0, 0.5)")
        if self.query_ids and not self.queries:
            raise DistillError("--query-ids needs --queries")


@dataclass
class DistillReport:
    """What a run produced; ``to_json()`` is the ``--json`` output and the alignment file's body."""

    teacher: str
    student: str
    out: str
    dimensions: int
    query_prompt: str
    steps: int = 0
    seconds: float = 0.0
    """Training-loop seconds (all sessions of a resumed run), excluding teacher pass, fit and evaluation."""
    wall_seconds: float = 0.0
    teacher_seconds: float = 0.0
    texts: dict[str, int] = field(default_factory=dict)
    alignment: dict[str, dict[str, float | None]] = field(default_factory=dict)
    loss_curve: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- texts ------------------------------------------------------------------------------------


def collect_documents(
    paths: Sequence[Path],
    chunker: Any,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_file_bytes: int = 10 * 1024 * 1024,
) -> tuple[list[str], list[str], list[dict[str, str]]]:
    """Chunk texts and record titles of every supported file under ``paths`` (each deduplicated, in order),
    and what was skipped."""
    for p in paths:
        if not Path(p).exists():
            raise DistillError(f"path {str(p)!r} does not exist")
    found = discover([Path(p) for p in paths], include=include, exclude=exclude, max_file_bytes=max_file_bytes)
    texts: dict[str, None] = {}
    titles: dict[str, None] = {}
    skipped: list[dict[str, str]] = []
    for f in found:
        if isinstance(f, SkippedFile):
            skipped.append({"path": f.path, "reason": f.reason})
            continue
        assert isinstance(f, SourceFile)
        try:
            records = load(f)
            chunks = chunker.chunk(records, f.format)
        except LoadError as exc:
            skipped.append({"path": str(f.root / f.relpath), "reason": exc.reason})
            continue
        texts.update(dict.fromkeys(c.text for c in chunks if c.text.strip()))
        titles.update(dict.fromkeys(r.title.strip() for r in records if r.title and r.title.strip()))
    return list(texts), list(titles), skipped


def read_query_ids(paths: Sequence[Path]) -> set[str]:
    """Query ids from qrels TSVs (first column; a ``query-id`` header is skipped) or plain id lists."""
    ids: set[str] = set()
    for p in paths:
        for line in Path(p).read_text(encoding="utf-8").splitlines():
            first = line.split("\t")[0].strip()
            if first and first not in {"query-id", "query_id", "qid"}:
                ids.add(first)
    return ids


def read_queries(paths: Sequence[Path], ids: set[str] | None = None) -> list[str]:
    """Query texts (deduplicated, in order) from BEIR ``queries.jsonl[.gz]`` (``_id``, ``text``) or text files.

    A ``.txt`` file is a query log, one query a line (no ids, so ``ids`` cannot filter it).
    """
    texts: dict[str, None] = {}
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise DistillError(f"queries file {str(p)!r} does not exist")
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        lines = raw.decode("utf-8").splitlines()
        if ".jsonl" not in path.name and ".json" not in path.name:
            if ids is not None:
                raise DistillError(f"{path}: --query-ids needs a queries .jsonl with _id fields")
            texts.update(dict.fromkeys(s.strip() for s in lines if s.strip()))
            continue
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DistillError(f"{path} line {number}: not valid JSON ({exc.msg})") from None
            text = obj.get("text", obj.get("query")) if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise DistillError(f'{path} line {number}: no "text" string')
            qid = obj.get("_id", obj.get("id"))
            if ids is not None and str(qid) not in ids:
                continue
            if text.strip():
                texts[text.strip()] = None
    return list(texts)


def holdout_split(n: int, fraction: float, seed: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices. At least ``min(50, n // 10)`` texts are held out (when ``fraction > 0``) so
    the alignment figure for a few hundred queries is not a mean over a handful."""
    if n == 0 or fraction <= 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    k = max(round(n * fraction), min(50, n // 10), 1 if n >= 2 else 0)
    perm = np.random.default_rng([seed, salt]).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def _fingerprint(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\x00")
    return h.hexdigest()


# -- teacher ----------------------------------------------------------------------------------


def teacher_embeddings(
    teacher_name: str,
    texts: Sequence[str],
    prompt: str,
    cache_dir: Path,
    device: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Raw teacher outputs through the embedding cache (same key and call as ingest), block by block."""
    cache = open_cache(cache_dir)

    def compute(batch: list[str]) -> np.ndarray:
        model = load_model(teacher_name, device)
        return np.asarray(
            model.encode(batch, prompt=prompt or None, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
        )

    parts = []
    for start in range(0, len(texts), _TEACHER_BLOCK):
        parts.append(cache.encode(teacher_name, prompt, list(texts[start : start + _TEACHER_BLOCK]), compute))
        if on_progress:
            on_progress(min(start + _TEACHER_BLOCK, len(texts)), len(texts))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)


# -- student ----------------------------------------------------------------------------------


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


def _features(model: SentenceTransformer, texts: Sequence[str]) -> dict[str, Any]:
    features = model.preprocess(list(texts))
    return {k: v.to(model.device) if hasattr(v, "to") else v for k, v in features.items()}


def _forward(model: SentenceTransformer, texts: Sequence[str], upto: int | None = None) -> torch.Tensor:
    features = _features(model, texts)
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
        for i in range(0, len(texts), _EVAL_BATCH):
            out.append(_forward(model, texts[i : i + _EVAL_BATCH], upto).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def fit_projection(model: SentenceTransformer, texts: Sequence[str], targets: np.ndarray) -> float:
    """Least-squares ``Dense`` weights mapping pooled states to teacher vectors; returns the fit's mean loss."""
    import torch

    pooled = encode_eval(model, texts, upto=2).astype(np.float64)
    gram = pooled.T @ pooled
    # A small ridge term (relative to the mean eigenvalue): plain least squares puts huge weights on
    # near-degenerate directions of the pooled states, and the first dropout-noised steps then explode.
    ridge = _RIDGE * np.trace(gram) / len(gram)
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


def _alignment(model: SentenceTransformer, held: dict[str, tuple[list[str], np.ndarray]]) -> dict[str, float | None]:
    return {kind: mean_cosine(encode_eval(model, t), y) if t else None for kind, (t, y) in held.items()}


# -- training ---------------------------------------------------------------------------------


class BatchOrder:
    """Which texts form step ``s``: a pure function of (seed, s), so a resumed run replays the same order.

    Each epoch is a seeded permutation, cut into groups of ``_GROUP_BATCHES`` batches that are sorted by
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
        group = self.batch_size * _GROUP_BATCHES
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
    teacher = load_model(config.teacher, config.device)
    teacher_dim = embedding_dimension(teacher)
    if not teacher_dim:
        raise DistillError(f"teacher {config.teacher!r} does not report its embedding dimension")
    prompt: str = config.query_prompt if config.query_prompt is not None else (teacher.prompts or {}).get("query") or ""
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
        hits = open_cache(cache_dir).get_many(config.teacher, "", docs)
        emit("stage", {"message": f"--cached-only: {sum(h is not None for h in hits)} of {len(docs)} chunks cached"})
        docs = [d for d, h in zip(docs, hits, strict=True) if h is not None]
    # kind -> (texts, teacher prompt, times per epoch); titles are short document text: cheap, query-like
    kinds: dict[str, tuple[list[str], str, int]] = {
        "documents": (docs, "", 1),
        "titles": (titles if config.titles else [], "", 1),
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
        targets[kind] = teacher_embeddings(config.teacher, texts, kind_prompt, cache_dir, config.device, progress(done))
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
        held[kind] = ([kind_prompt + texts[i] for i in ho], targets[kind][ho])
        train_texts += [kind_prompt + texts[i] for i in tr] * repeat
        parts += [targets[kind][tr]] * repeat
        counts.update({kind: len(texts), f"train_{kind}": len(tr), f"heldout_{kind}": len(ho)})
    if not train_texts:
        raise DistillError("no training texts left after the hold-out split")
    train_targets = np.concatenate(parts).astype(np.float32)

    fingerprint = _fingerprint(
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
        before = {**_alignment(model, held), "train_fit_loss": fit_loss}

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
            out = _forward(model, [train_texts[i] for i in idx]).float()
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
    after = _alignment(model, held)
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
