"""What the external-suite scripts share (``langchain_suite.py``, ``driver_spec_suite.py``): fetch a pinned sdist
from the package registry, a throw-away venv layered on this interpreter's packages, a fresh emulator process,
and the pass/skip/fail table read from pytest's JUnit XML."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def fetch_sdist(work: Path, requirement: str, unpacked: str) -> Path:
    """``pip download`` the sdist of ``requirement`` (``name==version``) and unpack it; its folder ``unpacked``."""
    dist = work / "dist"
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", requirement,
         "-d", str(dist)],
        env=pip_env,
    )  # fmt: skip
    archive = next(dist.glob(f"{unpacked}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    return work / unpacked


def make_env(work: Path, requirements: Path) -> Path:
    """A venv layered on this interpreter's packages (a ``.pth`` file), plus the suite's own requirements, so the
    project's environment is not changed; returns its python."""
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "_leaf_mongo_parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], env=pip_env)
    return python


def start_emulator(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """``python -m leaf_mongo.testing --port 0 *args``; the process and the URI from its one ready line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaf_mongo.testing", "--port", "0", *args],
        stdout=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("leaf-mongo emulator listening on "):
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1]


def summarize(
    junit: Path,
    file_of: Callable[[ET.Element], str],
    *,
    label: str = "file",
    width: int = 38,
    group_of: Callable[[str], str] | None = None,
    reason_chars: int | None = None,
) -> int:
    """Print counts per file (and per group, with ``group_of``); return the number of failed + errored tests
    (at least 1 when nothing passed: the suite did not really run)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: dict[str, set[str]] = defaultdict(set)
    failures: list[str] = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        file = file_of(case)
        outcome = "passed"
        for child in case:
            if child.tag == "skipped":
                outcome = "skipped"
                reasons[file].add((child.get("message") or "").removeprefix("Skipped: ")[:reason_chars])
            elif child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "errors"
                failures.append(f"{file}::{case.get('name')}: {(child.get('message') or '')[:300]}")
        counts[file][outcome] += 1
    row = f"{{:<{width}}} {{:>6}} {{:>7}} {{:>6}} {{:>6}}"

    def table(title: str, rows: dict[str, Counter[str]], total: Counter[str]) -> None:
        print("\n" + row.format(title, "passed", "skipped", "failed", "errors"))
        for name in sorted(rows):
            c = rows[name]
            total.update(c)
            print(row.format(name, c["passed"], c["skipped"], c["failed"], c["errors"]))

    total: Counter[str] = Counter()
    if group_of is None:
        table(label, counts, total)
    else:
        groups: dict[str, Counter[str]] = defaultdict(Counter)
        for file, c in counts.items():
            groups[group_of(file)].update(c)
        table(label, counts, Counter())
        table("group", groups, total)
    print(row.format("TOTAL", total["passed"], total["skipped"], total["failed"], total["errors"]))
    for file in sorted(reasons):
        print(f"  skipped in {file}: {'; '.join(sorted(reasons[file]))}")
    for line in failures:
        print(f"  FAILED {line}")
    bad = total["failed"] + total["errors"]
    if total["passed"] == 0:
        print("no test passed: the suite did not really run")
        return max(bad, 1)
    return bad
