"""Run MongoDB's driver specification tests, with pymongo 4.20.1's own runner, against a fresh emulator (CI step).

    python scripts/driver_spec_suite.py [--workdir DIR] [--keep] [--uri URI] [pytest args...]

1. ``pip download --no-deps --no-binary :all: pymongo==4.20.1`` into a temporary directory and unpack it
   (nothing of pymongo's test suite lives in this repository);
2. make a throw-away virtual environment on top of the current one (a ``.pth`` file points at this
   interpreter's site-packages) and install pymongo's test requirements there
   (``scripts/driver_spec_suite/requirements.txt``), so the project's environment is not changed;
3. copy ``scripts/driver_spec_suite/overlay.py`` into the sdist as a pytest plugin: the commented skip list
   (features declared out of scope, each refused by the emulator as an "emulator limitation") and one fix to
   the runner (expected lists are compared with their length, as the unified format requires);
4. start ``python -m leaf_mongo.testing --port 0 --enable-test-commands`` and run, with ``DB_IP``/``DB_PORT``
   pointing at it, the sync and the async runner's ``test_crud_unified.py`` (``test/crud/unified``),
   ``test_retryable_writes_unified.py`` (``test/retryable_writes/unified``) and ``test_index_management.py``
   (``test/index_management`` and the module's prose/integration tests); print pass/skip/fail counts per group
   (``async-`` for the async runner's) and per spec file, and exit non-zero if any test failed or errored (or if
   nothing passed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlparse

import suite_common  # scripts/suite_common.py: this script's folder is on sys.path when run as a file

VERSION = "4.20.1"

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OVERLAY = HERE / "driver_spec_suite"
GROUPS = {  # group -> the runner's test module (pymongo generates the async runner's from the sync one)
    "crud": "test/test_crud_unified.py",
    "retryable_writes": "test/test_retryable_writes_unified.py",
    "index_management": "test/test_index_management.py",
    "async-crud": "test/asynchronous/test_crud_unified.py",
    "async-retryable_writes": "test/asynchronous/test_retryable_writes_unified.py",
    "async-index_management": "test/asynchronous/test_index_management.py",
}


def fetch_sdist(work: Path) -> Path:
    root = suite_common.fetch_sdist(work, f"pymongo=={VERSION}", f"pymongo-{VERSION}")
    for module in GROUPS.values():
        if not (root / module).is_file():
            raise SystemExit(f"unexpected sdist layout: {root}/{module} is missing")
    return root


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return suite_common.start_emulator(["--enable-test-commands", "--index-delay", "0.2"], env)


def summarize(junit: Path) -> int:
    """Print counts per group and per spec file; return the number of failed + errored tests."""

    def spec_file(case: ET.Element) -> str:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        return props.get("spec_file") or (case.get("classname") or "?")

    return suite_common.summarize(
        junit, spec_file, label="spec file", width=58, group_of=lambda file: file.split("/")[0], reason_chars=160
    )


def run_suite(root: Path, python: Path, uri: str, junit: Path, extra: list[str]) -> None:
    address = urlparse(uri)
    env = {**os.environ, "DB_IP": address.hostname or "127.0.0.1", "DB_PORT": str(address.port or 27017),
           "MONGODB_URI": uri}  # fmt: skip
    # The search-index prose tests log in with DB_USER/DB_PASSWORD; empty means no credentials, as the emulator
    # (and the real-server CI's mongod) runs without authentication unless told otherwise.
    env.setdefault("DB_USER", "")
    env.setdefault("DB_PASSWORD", "")
    env.pop("PYTHONPATH", None)  # the sdist's `test` package must not meet this repo's `tests`
    cmd = [str(python), "-m", "pytest", *GROUPS.values(), "-q", "-p", "no:cacheprovider", "-p", "leaf_spec_overlay",
           "-o", "addopts=", "-m", "default or default_async or search_index", f"--junitxml={junit}",
           "-o", "junit_family=xunit1", *extra]  # fmt: skip
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=root, env=env, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="reuse this directory (default: a fresh temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--uri", help="run against this server (mongod 8.2 + mongot, test commands on)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. -k name)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="driver-spec-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        root = work / f"pymongo-{VERSION}"
        if not root.is_dir():
            root = fetch_sdist(work)
        python = work / "venv" / "bin" / "python"
        if not python.exists():
            python = suite_common.make_env(work, OVERLAY / "requirements.txt")
        shutil.copy(OVERLAY / "overlay.py", root / "leaf_spec_overlay.py")
        proc, uri = (None, args.uri) if args.uri else start_emulator()
        junit = work / "junit.xml"
        junit.unlink(missing_ok=True)
        try:
            run_suite(root, python, uri, junit, args.pytest_args)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=15)
        bad = summarize(junit)
        print(f"pymongo {VERSION} driver specification tests: {time.monotonic() - started:.0f} s")
        return 1 if bad else 0
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
