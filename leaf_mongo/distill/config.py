"""What a distillation run depends on (:class:`DistillConfig`) and what it produced (:class:`DistillReport`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from leaf_mongo.errors import LeafMongoError

DEFAULT_STUDENT = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_CACHE = "~/.cache/leaf-mongo/embeddings"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state.pt"
GROUP_BATCHES = 50  # batches per length-sorted group: short queries batch together, saving padding
TEACHER_BLOCK = 256  # texts per cached teacher call: a killed pass keeps all finished blocks
EVAL_BATCH = 64
RIDGE = 1e-3

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
