"""Lazy, cached loading of sentence-transformers models from a Hugging Face id or a local folder.

Models are loaded on first use (a CLI ``--help`` or a settings error must not pay for torch) and shared by
every encoder in the process.
"""

from __future__ import annotations

import json
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from leaf_mongo.errors import ModelLoadError
from leaf_mongo.models import layout
from leaf_mongo.models.hub import looks_like_path, require_available
from leaf_mongo.models.layout import Task
from leaf_mongo.spec.profiles import published_teacher_of

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

_lock = threading.Lock()
ALIGNMENT_FILE = "leaf_mongo_alignment.json"  # written by `leaf-mongo distill`: {"teacher": ..., ...}


def load_model(name_or_path: str, device: str | None = None, task: Task | None = None) -> SentenceTransformer:
    """Load (once per process) a sentence-transformers model; fail with one clear message.

    With ``task``, a Router model (a LEAF ``-asym`` packaging) is loaded as that route alone: the query side
    never holds the teacher tower, and the document side's ``tokenizer`` / ``max_seq_length`` are the teacher's.
    Plain models load whole whatever ``task`` is, so both sides of a plain pair share one instance.
    """
    with _lock:
        return _load(name_or_path, device, task if task and is_router(name_or_path) else None)


def is_router(name_or_path: str) -> bool:
    """Whether the model is a query/document Router (read from its JSON files, not loaded)."""
    folder = _folder(name_or_path)
    return folder is not None and layout.is_query_document_router(folder)


@lru_cache(maxsize=32)
def _folder(name_or_path: str) -> Path | None:
    return layout.local_folder(name_or_path)


@lru_cache(maxsize=8)
def _load(name_or_path: str, device: str | None, task: Task | None) -> SentenceTransformer:
    path = Path(name_or_path).expanduser()
    if looks_like_path(name_or_path) and not path.is_dir():
        raise ModelLoadError(f"model folder {name_or_path!r} does not exist")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - dependency is required
        raise ModelLoadError(f"sentence-transformers is not installed ({exc})") from exc
    source = str(path) if path.is_dir() else name_or_path
    require_available(name_or_path)
    if task is not None:
        folder = _folder(name_or_path)
        assert folder is not None
        source = str(layout.route_view(folder, task))
    _quiet_transformers()
    try:
        return SentenceTransformer(source, device=device)
    except Exception as exc:  # hub unreachable, missing files, broken weights
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = (
            " (HF_HUB_OFFLINE=1 is set: only cached or local models load)"
            if offline
            else " (is the Hugging Face hub reachable? a local folder path also works)"
        )
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"could not load model {name_or_path!r}: {first}{hint}") from exc


def embedding_dimension(model: SentenceTransformer) -> int | None:
    """Output dimension across sentence-transformers versions (the method was renamed in 6.x)."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = getter()
    return int(dim) if dim else None


def _quiet_transformers() -> None:
    """Weight-loading progress bars would interleave with our own rich progress output."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def model_dimension(name_or_path: str, device: str | None = None, task: Task = "document") -> int:
    """Output dimension of a model's ``task`` route (loads that route only; a plain model loads whole)."""
    dim = embedding_dimension(load_model(name_or_path, device, task=task))
    if not dim:
        raise ModelLoadError(f"model {name_or_path!r} does not report its embedding dimension")
    return int(dim)


def aligned_teacher(name_or_path: str) -> str | None:
    """The teacher a leaf model was distilled against, if it says so (published pair or distill card)."""

    published = published_teacher_of(name_or_path)
    if published:
        return published
    card = Path(name_or_path).expanduser() / ALIGNMENT_FILE
    if card.is_file():
        try:
            teacher = json.loads(card.read_text(encoding="utf-8")).get("teacher")
        except (OSError, ValueError):
            return None
        return str(teacher) if teacher else None
    return None


def applied_prompt(model: SentenceTransformer, task: Task) -> str:
    """The prompt ``model.encode_query`` / ``model.encode_document`` applies when given none (the card's call).

    Mirrors the library's own choice: the ``query`` prompt, or the first of ``document`` / ``passage`` /
    ``corpus``, else the model's ``default_prompt_name``. leaf-mongo then passes it explicitly, so it is applied
    exactly once and can be recorded in the spec and in embedding-cache keys.
    """
    prompts = dict(getattr(model, "prompts", None) or {})
    names = ("query",) if task == "query" else layout.DOCUMENT_PROMPT_NAMES
    name = next((n for n in names if n in prompts), None)
    if name is not None:
        return prompts[name] or ""
    default = getattr(model, "default_prompt_name", None)
    return (prompts.get(default) or "") if default else ""
