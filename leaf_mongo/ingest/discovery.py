"""Find the documents under the paths given to ``ingest``.

Discovery never raises for a bad file: anything that will not be ingested comes back as a :class:`SkippedFile`
with a reason a user can act on, so one odd file never stops a run and the summary can say exactly what was left
out.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from leaf_mongo.ingest.sources import (
    DEFAULT_MAX_FILE_BYTES,
    RECORD_FORMATS,
    SkippedFile,
    SourceFile,
    format_for,
    suffix_label,
)


def _pattern_matches(path: str, pattern: str) -> bool:
    """fnmatch on a relative path; ``**/`` may match no folder; a slash-less pattern also
    matches the bare file or folder name."""
    pattern = pattern.strip()
    pattern = pattern.rstrip("/") or pattern  # "drafts/" names the folder
    if fnmatch.fnmatchcase(path, pattern):
        return True
    if "**/" in pattern and fnmatch.fnmatchcase(path, pattern.replace("**/", "")):
        return True
    return "/" not in pattern and fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)


def _matches_any(relpath: str, patterns: Sequence[str]) -> bool:
    """True when a pattern matches the path or one of its parent folders (excluding ``drafts``
    excludes everything under it, like .gitignore)."""
    parts = relpath.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(_pattern_matches(c, p) for p in patterns for c in candidates)


def _selected(relpath: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include and not _matches_any(relpath, include):
        return False
    return not (exclude and _matches_any(relpath, exclude))


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


@dataclass
class _Candidate:
    relpath: str
    real: Path
    via_link: bool
    size: int


class _RootScan:
    """Collects the files under one root; symlinks are resolved by hand so that only targets
    inside the root are followed and every real folder is walked at most once (no loops)."""

    def __init__(
        self,
        root: Path,
        display: str,
        include: Sequence[str],
        exclude: Sequence[str],
        max_file_bytes: int,
    ) -> None:
        self.root = root
        self.display = display
        self.include = include
        self.exclude = exclude
        self.max_file_bytes = max_file_bytes
        self.found: list[_Candidate] = []
        self.skipped: list[SkippedFile] = []

    def skip(self, relpath: str, reason: str) -> None:
        self.skipped.append(SkippedFile(str(Path(self.display) / relpath), reason, relpath))

    def skip_link(self, relpath: str, reason: str) -> None:
        """Report a symlink problem only for a path the filters select (no noise with --include)."""
        if _selected(relpath, self.include, self.exclude):
            self.skip(relpath, reason)

    def consider_file(self, relpath: str, real: Path, via_link: bool, size: int) -> None:
        """Apply filters and the per-file checks that need no reading."""
        if not _selected(relpath, self.include, self.exclude):
            return
        if format_for(relpath) is None:
            self.skip(relpath, f"unsupported file type {suffix_label(relpath)}")
        elif size == 0:
            self.skip(relpath, "empty file")
        elif size > self.max_file_bytes and format_for(relpath) not in RECORD_FORMATS:
            self.skip(
                relpath,
                f"file too large ({_mb(size)} > limit {_mb(self.max_file_bytes)}; "
                "raise LEAF_MONGO_MAX_FILE_MB to ingest it)",
            )
        else:
            self.found.append(_Candidate(relpath, real, via_link, size))

    def scan(self) -> None:
        walked: set[Path] = set()
        stack: list[tuple[Path, str, bool]] = [(self.root, "", False)]
        links: deque[tuple[str, Path, Path, bool]] = deque()  # relpath, parent (real), link, via
        while stack or links:
            while stack:
                folder, rel, via = stack.pop()
                walked.add(folder)
                self._scan_folder(folder, rel, via, stack, links)
            if links:
                # Symlinks go last, so folders reachable without one are already walked and
                # keep their real relative paths.
                self._follow(*links.popleft(), walked, stack)

    def _scan_folder(
        self,
        folder: Path,
        rel: str,
        via: bool,
        stack: list[tuple[Path, str, bool]],
        links: deque[tuple[str, Path, Path, bool]],
    ) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.skip(rel or ".", f"cannot read folder: {exc.strerror or exc}")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue  # hidden files and folders: ignored silently
            relpath = f"{rel}/{entry.name}" if rel else entry.name
            try:
                if entry.is_symlink():
                    if not (self.exclude and _matches_any(relpath, self.exclude)):
                        links.append((relpath, folder, Path(entry.path), via))
                elif entry.is_dir(follow_symlinks=False):
                    if not (self.exclude and _matches_any(relpath, self.exclude)):
                        stack.append((Path(entry.path), relpath, via))
                elif entry.is_file(follow_symlinks=False):
                    size = entry.stat(follow_symlinks=False).st_size
                    self.consider_file(relpath, Path(entry.path), via, size)
                elif _selected(relpath, self.include, self.exclude):
                    self.skip(relpath, "not a regular file")
            except OSError as exc:
                self.skip(relpath, f"cannot read: {exc.strerror or exc}")

    def _follow(
        self,
        relpath: str,
        parent: Path,
        link: Path,
        via: bool,
        walked: set[Path],
        stack: list[tuple[Path, str, bool]],
    ) -> None:
        try:
            target = link.resolve(strict=True)
        except FileNotFoundError:
            self.skip_link(relpath, f"broken symlink (target {os.readlink(link)} does not exist)")
            return
        except RuntimeError:  # Python < 3.13 reports ELOOP this way
            self.skip_link(relpath, "symlink loop (not followed)")
            return
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.skip_link(relpath, "symlink loop (not followed)")
            else:
                self.skip_link(relpath, f"cannot resolve symlink: {exc.strerror or exc}")
            return
        if not target.is_relative_to(self.root):
            self.skip_link(relpath, f"symlink leaves the root (points to {target}; not followed)")
            return
        try:
            st = target.stat()
        except OSError as exc:
            self.skip_link(relpath, f"cannot read: {exc.strerror or exc}")
            return
        if stat.S_ISDIR(st.st_mode):
            if parent.is_relative_to(target):
                self.skip_link(relpath, "symlink loop (points to a folder containing it; not followed)")
            elif target not in walked:  # else its files are already listed under the real path
                walked.add(target)
                stack.append((target, relpath, True))
        elif stat.S_ISREG(st.st_mode):
            self.consider_file(relpath, target, True, st.st_size)
        else:
            self.skip_link(relpath, "not a regular file")


def discover(
    paths: Sequence[Path],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Iterator[SourceFile | SkippedFile]:
    """Yield every candidate file under ``paths`` as a SourceFile or a SkippedFile.

    Folders are walked in sorted order and each root's results come sorted by relative path,
    so runs are reproducible. ``include``/``exclude`` are fnmatch globs on the relative path
    (``**`` allowed; a pattern matching a folder covers its contents); files they filter out,
    and hidden names, are left out silently. Symlinks are followed only when the target stays
    inside the root; one leaving it, a broken one or a loop is reported and not followed. A
    file reachable twice (through a symlink, or overlapping roots) is yielded once, under its
    real path when it has one.
    """
    seen: set[Path] = set()
    for given in paths:
        given = Path(given)
        display = str(given)
        try:
            is_dir = given.is_dir()
            exists = given.exists()
        except OSError:  # ELOOP on some Pythons
            is_dir, exists = False, False
        if not exists:
            if given.is_symlink():
                yield SkippedFile(display, "broken symlink or symlink loop", given.name)
            else:
                yield SkippedFile(display, "no such file or folder", given.name)
            continue
        if is_dir:
            scan = _RootScan(given.resolve(), display, include, exclude, max_file_bytes)
            scan.scan()
        else:
            parent = given.absolute().parent.resolve()
            scan = _RootScan(parent, str(given.parent), include, exclude, max_file_bytes)
            real = given.resolve()
            try:
                st = real.stat()
            except OSError as exc:
                yield SkippedFile(display, f"cannot read: {exc.strerror or exc}", given.name)
                continue
            if not stat.S_ISREG(st.st_mode):
                yield SkippedFile(display, "not a regular file", given.name)
                continue
            scan.consider_file(given.name, real, False, st.st_size)

        results: list[SourceFile | SkippedFile] = list(scan.skipped)
        for cand in sorted(scan.found, key=lambda c: (c.via_link, c.relpath)):
            if cand.real in seen:
                continue
            seen.add(cand.real)
            results.append(SourceFile(cand.real, cand.relpath, scan.root, cand.size))
        results.sort(key=lambda r: (r.relpath or "") if isinstance(r, SkippedFile) else r.relpath)
        yield from results
