"""Find the documents under the paths given to ``ingest`` and turn each into plain text records.

Discovery never raises for a bad file: anything that will not be ingested comes back as a
:class:`SkippedFile` with a reason a user can act on, so one odd file never stops a run and the
summary can say exactly what was left out. Loading raises :class:`LoadError` with such a reason.
"""

from __future__ import annotations

import codecs
import errno
import fnmatch
import gzip
import io
import json
import os
import re
import stat
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "FORMATS",
    "LoadError",
    "LoadedRecord",
    "Section",
    "SkippedFile",
    "SourceFile",
    "discover",
    "format_for",
    "load",
    "markdown_sections",
    "rst_sections",
]

DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
"""Default size limit; the setting ``LEAF_MONGO_MAX_FILE_MB`` raises it. Record corpora (``.jsonl``,
``.jsonl.gz``, Parquet) are streamed, so for them it limits each record instead (see :mod:`leaf_mongo.records`)."""

_RECORD_FORMATS = ("jsonl", "parquet")

FORMATS: dict[str, str] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".rst": "rst",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
    ".parquet": "parquet",
}
"""File name suffix (lower case) -> format name stored in :attr:`LoadedRecord.format`."""


@dataclass(frozen=True)
class SourceFile:
    """A file that discovery accepted; ``relpath`` is its stable identity under ``root``."""

    path: Path
    """Absolute, resolved path of the content (the target when reached through a symlink)."""
    relpath: str
    """POSIX path relative to the root it was found under; the name for a file given directly."""
    root: Path
    """Resolved folder the file was found under (the parent folder for a file given directly)."""
    size: int

    @property
    def format(self) -> str:
        """Format name derived from the file name (see :data:`FORMATS`)."""
        fmt = format_for(self.relpath) or format_for(self.path.name)
        if fmt is None:  # discover never yields these; guard direct construction
            raise LoadError(f"unsupported file type {_suffix_label(self.relpath)}")
        return fmt


@dataclass(frozen=True)
class SkippedFile:
    """A path that will not be ingested, and why (shown to the user, one line)."""

    path: str
    """The path as the user would write it: the given path joined with the relative path."""
    reason: str
    relpath: str | None = None
    """Relative path under its root when known, to match against :attr:`SourceFile.relpath`."""


@dataclass(frozen=True)
class LoadedRecord:
    """Plain text of one document (a whole file, or one line of a ``.jsonl`` corpus)."""

    text: str
    title: str | None
    record_id: str | None
    format: str


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path, so chunks can carry their headings."""

    headings: tuple[str, ...]
    text: str


class LoadError(Exception):
    """A file could not be decoded or parsed; ``reason`` is the one-line message to report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------


def format_for(name: str) -> str | None:
    """Format for a file name by its suffix (case-insensitive), or None when unsupported."""
    lower = name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):  # ".jsonl.gz" before ".gz"-less ones
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return FORMATS[suffix]
    return None


def _suffix_label(name: str) -> str:
    suffix = PurePosixPath(name).suffix
    return suffix.lower() if suffix else "(no extension)"


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
            self.skip(relpath, f"unsupported file type {_suffix_label(relpath)}")
        elif size == 0:
            self.skip(relpath, "empty file")
        elif size > self.max_file_bytes and format_for(relpath) not in _RECORD_FORMATS:
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


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    """Strict UTF-8 (BOM allowed; UTF-16 with a BOM too), newlines normalised to ``\\n``."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not data.startswith(codecs.BOM_UTF32_LE):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise LoadError(f"not valid UTF-16 text (offset {exc.start})") from None
    else:
        if b"\x00" in data:
            raise LoadError("binary content")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            offset = exc.start + (3 if data.startswith(codecs.BOM_UTF8) else 0)
            raise LoadError(f"not valid UTF-8 text (byte 0x{data[offset]:02x} at offset {offset})") from None
    if "\x00" in text:
        raise LoadError("binary content")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _require_text(text: str) -> str:
    if not text.strip():
        raise LoadError("no text")
    return text


def _read(file: SourceFile) -> bytes:
    try:
        return file.path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from None


def load(file: SourceFile) -> list[LoadedRecord]:
    """Read one discovered file into records (one per file; one per line for ``.jsonl``).

    Raises :class:`LoadError` with a one-line reason when the file cannot be decoded or parsed,
    so the caller can report it as skipped and carry on.
    """
    fmt = file.format
    if fmt == "pdf":
        return [_load_pdf(_read(file))]
    if fmt == "parquet":
        return _load_parquet(file)
    if fmt == "jsonl":
        data = _read(file)
        if file.relpath.lower().endswith(".gz") or data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise LoadError(f"not a valid gzip file ({exc})") from None
        return _load_jsonl(_decode(data))
    text = _require_text(_decode(_read(file)))
    if fmt == "markdown":
        return [LoadedRecord(text, _first_heading(markdown_sections(text)), None, fmt)]
    if fmt == "rst":
        return [LoadedRecord(text, _first_heading(rst_sections(text)), None, fmt)]
    if fmt == "html":
        body, title = html_to_text(text)
        return [LoadedRecord(_require_text(body), title, None, fmt)]
    return [LoadedRecord(text, None, None, fmt)]


def _load_parquet(file: SourceFile) -> list[LoadedRecord]:
    """A whole Parquet corpus, strict like ``.jsonl``: any bad row refuses the file."""
    from leaf_mongo.records import BadRecord, iter_records

    records: list[LoadedRecord] = []
    for item in iter_records(file, max_record_bytes=1 << 62):
        if isinstance(item.record, BadRecord):
            raise LoadError(f"{item.record.where}: {item.record.reason}")
        records.append(item.record)
    if not records:
        raise LoadError("no text")
    return records


def _first_heading(sections: list[Section]) -> str | None:
    for section in sections:
        if section.headings:
            return section.headings[0]
    return None


# --- markdown ---------------------------------------------------------------------------------

_MD_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_MD_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_MD_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_MD_NOT_PARAGRAPH = re.compile(r"^ {0,3}(?:[-*+>|]|\d+[.)]\s|#)|^\s{4,}")


class _SectionBuilder:
    """Accumulates body lines under a heading stack (levels pop like an outline)."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.stack: list[tuple[int, str]] = []
        self.body: list[str] = []

    def flush(self) -> None:
        text = "\n".join(self.body).strip("\n")
        if text.strip():
            self.sections.append(Section(tuple(t for _, t in self.stack), text))
        self.body = []

    def heading(self, level: int, title: str) -> None:
        self.flush()
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        title = " ".join(title.split())
        if title:
            self.stack.append((level, title))


def markdown_sections(text: str) -> list[Section]:
    """Split markdown at ATX (``#``) and setext headings, ignoring fenced code and front matter.

    Heading lines move into :attr:`Section.headings`; the body keeps the markdown as written.
    """
    lines = text.split("\n")
    out = _SectionBuilder()
    start = 0
    if lines and lines[0].strip() == "---":  # YAML front matter: keep as body, no headings
        for i in range(1, len(lines)):
            if lines[i].strip() in ("---", "..."):
                out.body.extend(lines[: i + 1])
                start = i + 1
                break
    fence: str | None = None
    for line in lines[start:]:
        if fence is not None:
            out.body.append(line)
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            continue
        if m := _MD_FENCE.match(line):
            fence = m.group(1)
            out.body.append(line)
            continue
        if m := _MD_ATX.match(line):
            out.heading(len(m.group(1)), m.group(2) or "")
            continue
        prev = out.body[-1] if out.body else ""
        if (
            (m := _MD_SETEXT.match(line))
            and prev.strip()
            and not _MD_NOT_PARAGRAPH.match(prev)
            and not _MD_SETEXT.match(prev)
        ):
            out.body.pop()
            out.heading(1 if m.group(1)[0] == "=" else 2, prev.strip())
            continue
        out.body.append(line)
    out.flush()
    return out.sections


# --- reStructuredText -------------------------------------------------------------------------

_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}[ \t]*$")


def rst_sections(text: str) -> list[Section]:
    """Split reStructuredText at section titles (underlined, optionally overlined).

    Levels follow the order in which adornment styles first appear, as docutils does.
    """
    lines = text.split("\n")
    out = _SectionBuilder()
    styles: list[tuple[str, bool]] = []
    i = 0
    n = len(lines)

    def level(style: tuple[str, bool]) -> int:
        if style not in styles:
            styles.append(style)
        return styles.index(style)

    while i < n:
        line = lines[i]
        prev_blank = i == 0 or not lines[i - 1].strip()
        over = _RST_ADORNMENT.match(line)
        if over and prev_blank and i + 2 < n and lines[i + 1].strip() and lines[i + 2].rstrip() == line.rstrip():
            out.heading(level((over.group(1), True)), lines[i + 1].strip())
            i += 3
            continue
        if (
            prev_blank
            and line.strip()
            and not line[0].isspace()
            and not _RST_ADORNMENT.match(line)
            and i + 1 < n
            and (under := _RST_ADORNMENT.match(lines[i + 1]))
        ):
            out.heading(level((under.group(1), False)), line.strip())
            i += 2
            continue
        out.body.append(line)
        i += 1
    out.flush()
    return out.sections


# --- HTML -------------------------------------------------------------------------------------

_HTML_HIDDEN = {"script", "style", "head", "noscript", "template"}
_HTML_PARAGRAPH = {
    "address", "article", "aside", "blockquote", "details", "dl", "fieldset", "figcaption",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "main",
    "nav", "ol", "p", "pre", "section", "summary", "table", "ul",
}  # fmt: skip
_HTML_LINE = {"br", "dd", "div", "dt", "li", "tr", "caption", "option"}
_HTML_CELL = {"td", "th"}


class _HTMLText(HTMLParser):
    """Visible text of an HTML page: block elements become line breaks and whitespace is
    collapsed as a browser renders it (``<pre>`` keeps its line breaks)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden: list[str] = []
        self.pre = 0
        self.title: str | None = None
        self.h1: str | None = None
        self._capture: str | None = None  # "title" or "h1" while inside one
        self._captured: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and "head" in self.hidden:  # unclosed <head>
            self.hidden = [t for t in self.hidden if t != "head"]
        if tag == "title" and self.title is None and self._capture is None:
            self._capture, self._captured = "title", []
        if tag in _HTML_HIDDEN:
            self.hidden.append(tag)
            return
        if self.hidden:
            return
        if tag == "h1" and self.h1 is None and self._capture is None:
            self._capture, self._captured = "h1", []
        if tag == "pre":
            self.pre += 1
        self._block(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self.hidden:
            self._block(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._capture == tag:
            value = " ".join("".join(self._captured).split()) or None
            if tag == "title":
                self.title = value
            else:
                self.h1 = value
            self._capture = None
        if tag in _HTML_HIDDEN:
            if tag in self.hidden:
                while self.hidden and self.hidden.pop() != tag:
                    pass
            return
        if self.hidden:
            return
        if tag == "pre" and self.pre:
            self.pre -= 1
        self._block(tag)

    def _block(self, tag: str) -> None:
        if tag in _HTML_PARAGRAPH:
            self.parts.append("\n\n")
        elif tag in _HTML_LINE:
            self.parts.append("\n")
        elif tag in _HTML_CELL:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._captured.append(data)
        if self.hidden:
            return
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).split("\n"))
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> tuple[str, str | None]:
    """Visible text and title (``<title>``, else the first ``<h1>``) of an HTML document."""
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception as exc:  # html.parser is lenient; this is a last resort
        raise LoadError(f"cannot parse HTML: {exc}") from None
    return parser.text(), parser.title or parser.h1


# --- PDF --------------------------------------------------------------------------------------


def _load_pdf(data: bytes) -> LoadedRecord:
    """Text of every page, title from the document metadata."""
    try:
        import pypdf
    except ImportError:
        raise LoadError("PDF support needs pypdf: pip install 'leaf-mongo[pdf]'") from None
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                unlocked = bool(reader.decrypt(""))  # empty user password: readable by anyone
            except Exception:
                unlocked = False
            if not unlocked:
                raise LoadError("encrypted PDF (needs a password)")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        meta = reader.metadata
        title = meta.title if meta is not None else None
    except LoadError:
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise LoadError(f"cannot parse PDF: {detail}") from None
    text = "\n\n".join(p for p in pages if p).replace("\x00", "")
    if not text.strip():
        raise LoadError("no extractable text (scanned or image-only PDF?)")
    title = " ".join(str(title).split()) if title else None
    return LoadedRecord(text, title or None, None, "pdf")


# --- JSONL (BEIR corpus) ----------------------------------------------------------------------


def _valid_unicode(text: str) -> str:
    """JSON may escape lone surrogates (``"\\ud800"``), which no tokenizer accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _load_jsonl(text: str) -> list[LoadedRecord]:
    """BEIR-style ``{"_id", "title", "text"}`` records, one per non-blank line."""
    records: list[LoadedRecord] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LoadError(f"line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise LoadError(f"line {number}: not a JSON object")
        body = obj.get("text")
        if not isinstance(body, str):
            raise LoadError(f'line {number}: record has no "text" string')
        raw_id = obj.get("_id", obj.get("id"))
        record_id = None if raw_id is None else str(raw_id)
        if record_id is not None:
            if record_id in first_line:
                raise LoadError(f"line {number}: duplicate _id {record_id!r} (first on line {first_line[record_id]})")
            first_line[record_id] = number
        title = obj.get("title")
        body, title = _valid_unicode(body), _valid_unicode(title) if isinstance(title, str) else None
        title = title.strip() if isinstance(title, str) and title.strip() else None
        records.append(LoadedRecord(body, title, record_id, "jsonl"))
    if not records:
        raise LoadError("no text")
    return records
