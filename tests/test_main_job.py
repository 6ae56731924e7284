"""The README's main job on a fresh machine: no Docker, no ``LEAF_MONGO_URI``, so the local store serves.

Runs the README's command line's last step as a user would (separate processes, the installed CLI), with the
model ids pointed at a local folder since the hub is unreachable here. Then a search in a new process finds
``./docs``, and ``leaf-mongo local status --json`` gives a URI that pymongo connects to.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent


def _readme_main_job() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"\*\*Run the main job\*\*.*?```bash\n(.*?)```", readme, flags=re.S)
    assert block, "README has no main-job block"
    return block.group(1).strip()


@pytest.fixture
def fresh_env(tmp_path: Path, minilm_path: str) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAF_MONGO_")}
    env.update(
        LEAF_MONGO_LOCAL_PATH=str(tmp_path / "store"),
        LEAF_MONGO_TEACHER_MODEL=minilm_path,  # the hub is unreachable here: a local folder stands in
        LEAF_MONGO_LEAF_MODEL=minilm_path,
        LEAF_MONGO_QUERY_PROMPT="",
        LEAF_MONGO_LEAF_BACKEND="torch",
        HF_HUB_OFFLINE="1",
        COLUMNS="200",
        # no docker on PATH: only the interpreter's folder and the system's
        PATH=os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
    )
    yield env
    subprocess.run([sys.executable, "-m", "leaf_mongo", "local", "stop"], env=env, capture_output=True, timeout=60)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaf_mongo", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_main_job_runs_on_a_fresh_machine_with_the_local_store(fresh_env: dict[str, str]) -> None:
    assert shutil.which("docker", path=fresh_env["PATH"]) is None
    command = _readme_main_job()
    assert "docker" not in command and command.endswith("leaf-mongo ingest ./docs"), command
    assert "LEAF_MONGO_URI" not in command

    ingested = _cli(["ingest", "./docs", "--json"], fresh_env)
    assert ingested.returncode == 0, ingested.stderr
    report = json.loads(ingested.stdout)
    assert report["files_ingested"] >= 3 and report["chunks_written"] > 0
    assert "using the local store in" in ingested.stderr and "LEAF_MONGO_URI" in ingested.stderr
    assert ingested.stderr.count("using the local store") == 1  # said once

    found = _cli(["search", "which dtype should I store my vectors as?", "--json", "-k", "3"], fresh_env)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 3 and all(h["metadata"]["source"].endswith(".md") for h in hits)
    assert hits[0]["metadata"]["source"] == "faq.md", hits  # the FAQ answers this question

    status = _cli(["local", "status", "--json"], fresh_env)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["running"] and info["path"] == fresh_env["LEAF_MONGO_LOCAL_PATH"]
    with MongoClient(info["uri"], serverSelectionTimeoutMS=5000) as client:
        assert client["leaf_mongo"]["chunks"].count_documents({}) == report["chunks_written"]
