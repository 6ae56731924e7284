"""Which prompt each side applies: an explicit setting, else the model's own configured prompt, else the profile's.

A model's prompts live in its ``config_sentence_transformers.json``; the value applied is the one
sentence-transformers' ``encode_query`` / ``encode_document`` would pick (read from the loaded model), so a
Router packaging or a leaf with its own prompt gets exactly what its model card's snippet computes.
"""

from __future__ import annotations

from functools import lru_cache

from leaf_mongo.models import layout
from leaf_mongo.models.layout import Task
from leaf_mongo.models.loading import applied_prompt, load_model


@lru_cache(maxsize=64)
def configures_prompt(model: str, task: Task) -> bool:
    """Whether ``model`` configures a prompt for ``task`` (read from its JSON, without loading it)."""
    folder = layout.config_folder(model)
    return folder is not None and layout.has_configured_prompt(folder, task)


def resolve_prompt(explicit: str | None, model: str, task: Task, fallback: str, device: str | None = None) -> str:
    """Setting > the model's configured prompt (as sentence-transformers applies it) > ``fallback``."""
    if explicit is not None:
        return explicit
    if configures_prompt(model, task):
        return applied_prompt(load_model(model, device, task=task), task)
    return fallback
