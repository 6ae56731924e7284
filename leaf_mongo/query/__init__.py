"""The query side: a pure plan (options, stage building, filters, result conversion) and the LangChain
retriever and embeddings that run it against a collection.

``LeafRetriever`` and ``LeafEmbeddings`` load on first access: they import LangChain.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {"LeafRetriever": "leaf_mongo.query.retriever", "LeafEmbeddings": "leaf_mongo.query.embeddings"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'leaf_mongo.query' has no attribute {name!r}")


__all__ = ["LeafEmbeddings", "LeafRetriever"]
