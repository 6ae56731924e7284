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
4. start ``python -m leaf_mongo.testing`` on a free port, run ``tests/integration_tests`` with
   ``MONGODB_URI`` pointing at it, print pass/skip/fail counts per file, and exit non-zero if
   any selected test failed or errored (or if nothing passed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

VERSION = "0.12.1"
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OVERLAY = HERE / "langchain_suite"


def run(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def fetch_sdist(work: Path) -> Path:
    dist = work / "dist"
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
         f"langchain-mongodb=={VERSION}", "-d", str(dist)],
        env=pip_env,
    )  # fmt: skip
    archive = next(dist.glob(f"langchain_mongodb-{VERSION}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    root = work / f"langchain_mongodb-{VERSION}"
    if not (root / "tests" / "integration_tests").is_dir():
        raise SystemExit(f"unexpected sdist layout: {root}/tests/integration_tests is missing")
    return root


def make_env(work: Path) -> Path:
    """A venv layered on this interpreter's packages, plus the suite's own test requirements."""
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "_leaf_mongo_parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run([str(python), "-m", "pip", "install", "-q", "-r", str(OVERLAY / "requirements.txt")], env=pip_env)
    return python


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaf_mongo.testing", "--port", "0", "--index-delay", "0.3"],
        stdout=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("leaf-mongo emulator listening on "):
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1]


def summarize(junit: Path) -> int:
    """Print counts per file; return the number of failed + errored tests."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: dict[str, set[str]] = defaultdict(set)
    failures: list[str] = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        dotted = case.get("classname") or case.get("name") or "?"
        file = next((p for p in dotted.split(".") if p.startswith("test_")), dotted) + ".py"
        outcome = "passed"
        for child in case:
            if child.tag == "skipped":
                outcome = "skipped"
                reasons[file].add((child.get("message") or "").removeprefix("Skipped: "))
            elif child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "errors"
                failures.append(f"{file}::{case.get('name')}: {(child.get('message') or '')[:300]}")
        counts[file][outcome] += 1
    total: Counter[str] = Counter()
    print(f"\n{'file':<38} {'passed':>6} {'skipped':>7} {'failed':>6} {'errors':>6}")
    for file in sorted(counts):
        c = counts[file]
        total.update(c)
        print(f"{file:<38} {c['passed']:>6} {c['skipped']:>7} {c['failed']:>6} {c['errors']:>6}")
    print(f"{'TOTAL':<38} {total['passed']:>6} {total['skipped']:>7} {total['failed']:>6} {total['errors']:>6}")
    for file in sorted(reasons):
        print(f"  skipped in {file}: {'; '.join(sorted(reasons[file]))}")
    for line in failures:
        print(f"  FAILED {line}")
    bad = total["failed"] + total["errors"]
    if total["passed"] == 0:
        print("no test passed: the suite did not really run")
        return max(bad, 1)
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="reuse this directory (default: a fresh temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--uri", help="run against this server (e.g. MongoDB 8.2 + mongot) instead of an emulator")
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
            python = make_env(work)
        shutil.copy(OVERLAY / "conftest.py", root / "tests" / "integration_tests" / "conftest.py")
        proc, uri = (None, args.uri) if args.uri else start_emulator()
        junit = work / "junit.xml"
        try:
            env = {**os.environ, "MONGODB_URI": uri, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
            env.pop("PYTHONPATH", None)  # the sdist's `tests` package must not meet this repo's
            for key in ("OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "VOYAGE_API_KEY"):
                env.pop(key, None)
            cmd = [str(python), "-m", "pytest", "tests/integration_tests", "-q", "-p", "no:cacheprovider",
                   f"--junitxml={junit}", "-o", "junit_family=xunit1", *args.pytest_args]  # fmt: skip
            print("+", " ".join(cmd), flush=True)
            subprocess.run(cmd, cwd=root, env=env, check=False)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=15)
        bad = summarize(junit)
        print(f"langchain-mongodb {VERSION} integration suite: {time.monotonic() - started:.0f} s")
        return 1 if bad else 0
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
