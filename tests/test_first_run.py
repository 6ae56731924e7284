"""A newcomer's first ten minutes: each defect a new user hit on a fresh machine, as a test.

Server tests run on the emulator, or unchanged on a real server via ``LEAF_MONGO_TEST_URI``.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from rich.console import Console
from rich.progress import Progress, TextColumn
from typer.testing import CliRunner

from leaf_mongo import InputError, ModelLoadError, load_spec, spec_from_settings
from leaf_mongo.cli.app import app
from leaf_mongo.cli.ingest import _ProgressView
from leaf_mongo.ingest import ingest
from leaf_mongo.spec.store import save_spec
from tests.test_ingest import make_settings

ROOT = Path(__file__).resolve().parent.parent


def _names(client: MongoClient[Any], db: str) -> set[str]:
    return set(client[db].list_collection_names())


def _cli(args: list[str], mongo_uri: str, db_name: str, **env: str) -> Any:
    return CliRunner().invoke(app, args, env={"LEAF_MONGO_URI": mongo_uri, "LEAF_MONGO_DATABASE": db_name, **env})


def test_missing_path_exits_2_and_json_says_why(
    tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str, mongo_client: MongoClient[Any]
) -> None:
    missing = str(tmp_path / "no-such-dir")
    result = _cli(["ingest", missing, "--teacher-model", minilm_path, "--json"], mongo_uri, db_name)
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 2 and "no such file or folder" in doc["error"] and "no-such-dir" in doc["error"]
    assert _names(mongo_client, db_name) == set()


def test_empty_folder_says_so_and_creates_nothing(
    tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str, mongo_client: MongoClient[Any]
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="nothing to ingest"):
        ingest([tmp_path / "empty"], make_settings(mongo_uri, db_name, minilm_path))
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "picture.png").write_bytes(b"\x89PNG\r\n")
    result = _cli(["ingest", str(tmp_path / "only"), "--teacher-model", minilm_path], mongo_uri, db_name)
    assert result.exit_code == 2 and "every file was skipped" in result.output and "picture.png" in result.output
    assert _names(mongo_client, db_name) == set()  # no collection, no spec, no index


def test_unloadable_leaf_is_refused_before_anything_is_written(
    tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str, mongo_client: MongoClient[Any]
) -> None:
    (tmp_path / "a.md").write_text("# Alpha\n\nAlpha text.\n")
    bad_leaf = str(tmp_path / "no-such-model")
    with pytest.raises(ModelLoadError, match="does not exist"):
        ingest([tmp_path], make_settings(mongo_uri, db_name, minilm_path, leaf_model=bad_leaf))
    assert _names(mongo_client, db_name) == set()


def test_a_spec_with_no_chunks_behind_it_never_blocks_a_run(
    tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str, mongo_client: MongoClient[Any]
) -> None:
    """What a first run that died after saving its spec (older versions) left behind: a spec and 0 chunks."""
    (tmp_path / "a.md").write_text("# Alpha\n\nAlpha text.\n")
    settings = make_settings(mongo_uri, db_name, minilm_path)
    other = spec_from_settings(settings).model_copy(update={"dimensions": 128, "dtype": "int8"})
    coll = mongo_client[db_name]["docs"]
    save_spec(coll, other, settings.index_name)
    assert coll.count_documents({}) == 0
    report = ingest([tmp_path], settings)
    assert report.files_ingested == ["a.md"] and report.chunks_written >= 1
    stored = load_spec(coll)
    assert stored is not None and stored.dimensions == 384 and stored.dtype == "float32"


def test_ingest_reports_the_spec_number_of_bytes_per_vector(
    tmp_path: Path, mongo_uri: str, db_name: str, minilm_path: str
) -> None:
    (tmp_path / "a.md").write_text("# Alpha\n\nAlpha text.\n")
    settings = make_settings(mongo_uri, db_name, minilm_path)
    report = ingest([tmp_path], settings)
    spec_out = _cli(["spec", "--teacher-model", minilm_path, "--leaf-model", minilm_path], mongo_uri, db_name)
    assert spec_out.exit_code == 0, spec_out.output
    assert report.bytes_per_vector == json.loads(spec_out.stdout)["bytes_per_vector"] == 7 + 4 * 384


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_hub_fails_in_seconds_with_one_line(tmp_path: Path) -> None:
    """A hub id that is not cached, on a machine that cannot reach the hub: one line, not minutes of retries."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", HF_HOME=str(tmp_path / "hf"), COLUMNS="200")
    args = ["--teacher-model", "some-org/some-model", "--leaf-model", "some-org/some-leaf"]
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "leaf_mongo", "spec", *args], env=env, capture_output=True, text=True, timeout=120
    )
    elapsed = time.monotonic() - t0
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "hub is unreachable" in lines[0] and "some-org/some-model" in lines[0], out.stderr
    assert elapsed < 60, elapsed  # was minutes; the probe gives up after 3 s


def test_progress_view_labels_bytes_and_records() -> None:
    """Before the scan a labelled spinner; the read bar counts bytes as bytes; Markdown is not "records"."""
    buf = io.StringIO()
    console = Console(file=buf, width=160, force_terminal=False)
    with Progress(TextColumn("{task.description}"), TextColumn("{task.fields[amount]}"), console=console) as p:
        view = _ProgressView(p)
        assert [t.description for t in p.tasks] == ["preparing: server, spec, models"]
        view("scan", {"files": 1, "skipped": 0, "unchanged": 0, "bytes": 7941})
        view("file_start", {"path": "README.md"})
        view("records_read", {"path": "README.md", "n": 1, "done": 7941, "records": False})
        view("chunks_encoded", {"n": 12})
        view("file_done", {"path": "README.md", "chunks": 12})
        read = next(t for t in p.tasks if t.id == view.read)
        assert "records" not in read.description and "12 chunks encoded" in read.description
        assert read.fields["amount"] == "7.9 kB/7.9 kB"
        assert next(t for t in p.tasks if t.id == view.files).fields["amount"] == "1/1"
        view("records_read", {"path": "c.jsonl", "n": 256, "done": 10, "records": True})
        assert "256 records" in next(t for t in p.tasks if t.id == view.read).description


def test_help_lists_every_profile() -> None:
    for command in ("ingest", "spec"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert "ir-asym" in result.stdout and "mt-asym" in result.stdout, result.stdout


def test_notebooks_extra_brings_what_the_notebooks_run() -> None:
    """notebooks/README's install line is enough for every cell (notebook 2's fast backend needs onnxruntime)."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def closure(name: str) -> set[str]:
        out: set[str] = set()
        for req in extras[name]:
            m = re.match(r"leaf-mongo\[([^\]]+)\]", req)
            if m:
                for sub in m.group(1).split(","):
                    out |= closure(sub.strip())
            else:
                out.add(re.split(r"[<>=\[ ;]", req, maxsplit=1)[0].lower())
        return out

    needed = closure("notebooks")
    assert {"onnxruntime", "tokenizers", "onnx", "mongomock", "mockupdb", "tantivy", "matplotlib"} <= needed
    readme = (ROOT / "notebooks" / "README.md").read_text()
    assert 'pip install -e ".[notebooks]"' in readme


def _readme_queries() -> list[tuple[str, str, list[str] | None]]:
    """(query, search mode, pre-filter sources) of every retriever call in the README's Python examples."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    calls = []
    for block in blocks:
        mode = "hybrid" if 'search_mode="hybrid"' in block else "vector"
        for m in re.finditer(r"\.a?invoke\(\"([^\"]+)\"(.*?)\)\s*(?:#.*)?$", block, flags=re.M):
            sources = re.search(r'"source": \{"\$in": \[([^\]]*)\]', m.group(2))
            listed = re.findall(r'"([^"]+)"', sources.group(1)) if sources else None
            calls.append((m.group(1), mode, listed))
    return calls


def test_readme_examples_find_what_the_main_job_ingested(
    mongo_uri: str, db_name: str, minilm_path: str, mongo_client: MongoClient[Any]
) -> None:
    """The README's examples query ./docs (what its main-job command ingests): each returns hits, and every
    source a pre-filter names exists (a filter on a missing source returns nothing, silently)."""
    from leaf_mongo import LeafRetriever

    settings = make_settings(mongo_uri, db_name, minilm_path, collection="chunks")
    ingest([ROOT / "docs"], settings)
    sources = set(mongo_client[db_name]["chunks"].distinct("source"))
    calls = _readme_queries()
    assert len(calls) >= 4, calls
    for query, mode, listed in calls:
        if query.startswith("how are chunks"):  # the LCEL example needs a chat model; its retriever step runs here
            mode = "vector"
        retriever = LeafRetriever.from_settings(settings, k=5, search_mode=mode)
        try:
            pre = {"source": {"$in": listed}} if listed else None
            assert not listed or set(listed) <= sources, (listed, sources)
            docs = retriever.invoke(query, pre_filter=pre)
        finally:
            retriever.close()
        assert docs, (query, mode, listed)


def test_queries_default_to_onnx_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default query backend is the fastest one giving the same vectors: onnx when ONNX Runtime is installed."""
    from leaf_mongo import LeafRetriever, load_settings
    from leaf_mongo.models import backends
    from leaf_mongo.models.encoders import SideEncoder

    monkeypatch.delenv("LEAF_MONGO_LEAF_BACKEND", raising=False)
    assert load_settings().leaf_backend == "auto" and LeafRetriever().leaf_backend == "auto"
    assert SideEncoder("m", "query", "auto").backend == "onnx"  # the test extra installs onnxruntime
    assert SideEncoder("m", "query", "torch").backend == "torch"  # an explicit setting wins
    monkeypatch.setattr(backends, "AUTO_NEEDS", (*backends.AUTO_NEEDS, "no_such_runtime_package"))
    assert backends.resolve_backend("auto") == "torch"


def test_full_text_defaults_to_english_and_a_setting_wins(monkeypatch: pytest.MonkeyPatch, minilm_path: str) -> None:
    """lucene.english measured better on SciFact's train split (README, Search modes); an explicit value wins."""
    from leaf_mongo import fulltext_index_definition, load_settings

    monkeypatch.delenv("LEAF_MONGO_FULLTEXT_ANALYZER", raising=False)
    spec = spec_from_settings(load_settings(teacher_model=minilm_path, leaf_model=minilm_path, query_prompt=""))
    assert fulltext_index_definition(spec)["mappings"]["fields"]["text"]["analyzer"] == "lucene.english"
    monkeypatch.setenv("LEAF_MONGO_FULLTEXT_ANALYZER", "lucene.standard")
    assert load_settings().fulltext_analyzer == "lucene.standard"


def test_notebooks_look_for_scifact_inside_the_repository_and_say_where_it_comes_from() -> None:
    """Notebooks 02 and 03 default to notebooks/data/scifact (git-ignored), and tell a user to get BEIR's zip."""
    for name in ("02_asymmetric_retrieval.ipynb", "03_mrl_quantization.ipynb"):
        nb = json.loads((ROOT / "notebooks" / name).read_text())
        source = "".join("".join(c["source"]) for c in nb["cells"])
        default = re.search(r'LEAF_MONGO_SCIFACT_DIR", "([^"]+)"', source)
        assert default and default.group(1) == "data/scifact", name
        assert "scifact.zip" in source, name
    assert "notebooks/data/" in (ROOT / ".gitignore").read_text()
