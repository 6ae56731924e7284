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

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

_lock = threading.Lock()
ALIGNMENT_FILE = "leaf_mongo_alignment.json"  # written by `leaf-mongo distill`: {"teacher": ..., ...}


def _looks_like_path(name: str) -> bool:
    """HF ids are ``org/name``; anything else with path syntax is meant as a folder."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def load_model(name_or_path: str, device: str | None = None) -> SentenceTransformer:
    """Load (once per process) a sentence-transformers model; fail with one clear message."""
    with _lock:
        return _load(name_or_path, device)


@lru_cache(maxsize=8)
def _load(name_or_path: str, device: str | None) -> SentenceTransformer:
    path = Path(name_or_path).expanduser()
    if _looks_like_path(name_or_path) and not path.is_dir():
        raise ModelLoadError(f"model folder {name_or_path!r} does not exist")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - dependency is required
        raise ModelLoadError(f"sentence-transformers is not installed ({exc})") from None
    source = str(path) if path.is_dir() else name_or_path
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
        raise ModelLoadError(f"could not load model {name_or_path!r}: {first}{hint}") from None


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


def model_dimension(name_or_path: str, device: str | None = None) -> int:
    """Output dimension of a model (loads it)."""
    dim = embedding_dimension(load_model(name_or_path, device))
    if not dim:
        raise ModelLoadError(f"model {name_or_path!r} does not report its embedding dimension")
    return int(dim)


def aligned_teacher(name_or_path: str) -> str | None:
    """The teacher a leaf model was distilled against, if it says so (published pair or distill card)."""
    from leaf_mongo.profiles import published_teacher_of

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
