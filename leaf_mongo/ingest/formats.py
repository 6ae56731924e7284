"""Plain text and headings out of each supported format: Markdown, reStructuredText, HTML, PDF, JSONL."""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser

from leaf_mongo.ingest.sources import LoadedRecord, LoadError, Section


def first_heading(sections: list[Section]) -> str | None:
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


def load_pdf(data: bytes) -> LoadedRecord:
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


def valid_unicode(text: str) -> str:
    """JSON may escape lone surrogates (``"\\ud800"``), which no tokenizer accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def load_jsonl(text: str) -> list[LoadedRecord]:
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
        body, title = valid_unicode(body), valid_unicode(title) if isinstance(title, str) else None
        title = title.strip() if isinstance(title, str) and title.strip() else None
        records.append(LoadedRecord(body, title, record_id, "jsonl"))
    if not records:
        raise LoadError("no text")
    return records
