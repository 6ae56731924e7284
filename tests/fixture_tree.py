"""A folder of documents covering every loader outcome, shared by loader, chunker and ingest tests.

``build_fixture_tree(root)`` writes the tree and returns what ingesting it must give per relative
path, so the end-to-end ingest tests can check counts and skip reasons without repeating them.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

BIG_FILE_BYTES = 20 * 1024 * 1024

BEIR_RECORDS = [
    {"_id": "doc1", "title": "Vector search", "text": "Vector search finds documents by embedding similarity."},
    {"_id": "doc2", "title": "", "text": "Quantization stores int8 or packed bit vectors to save space."},
    {"_id": "doc3", "title": "HNSW", "text": "The HNSW graph trades memory for fast approximate search."},
]
BEIR_GZ_RECORDS = [
    {"_id": "gz1", "title": "Compressed", "text": "Gzipped BEIR corpora load like plain ones."},
    {"_id": "gz2", "text": "A record without a title."},
]

MARKDOWN = """\
# User Guide

Welcome to the fixture guide. It explains how leaf-mongo works.

## Install

Install the package with pip before anything else.

### Docker

Run the mongod and mongot containers with docker compose.

```bash
# this is a comment in a code block, not a heading
docker compose up -d
```

## Usage

Ingest a folder, then search it with a leaf-encoded query.
"""

RST = """\
======
Manual
======

The manual introduces the project.

Configuration
-------------

Settings come from LEAF_MONGO_* environment variables.

Advanced
~~~~~~~~

Tune the HNSW graph only when recall is too low.
"""

HTML = """\
<!DOCTYPE html>
<html>
<head>
  <title>Fixture Page</title>
  <style>body { color: red; } .STYLE_MARKER {}</style>
  <script>var SCRIPT_MARKER = 1;</script>
</head>
<body>
  <h1>Visible heading</h1>
  <p>First paragraph with <b>bold</b> &amp; entities.</p>
  <script>console.log("SCRIPT_MARKER");</script>
  <noscript>NOSCRIPT_MARKER</noscript>
  <template><p>TEMPLATE_MARKER</p></template>
  <ul><li>Item one</li><li>Item two</li></ul>
  <div>Last block</div>
</body>
</html>
"""

PDF_PAGES = ["Fixture report page one about embeddings.", "Page two talks about MongoDB."]
PDF_TITLE = "Fixture Report"


@dataclass(frozen=True)
class Expected:
    """What discovering and loading one relative path must give.

    ``outcome`` is "ingested", "skipped" (reported with a reason containing ``reason``) or
    "ignored" (not reported at all: hidden names, a second path to an already listed file).
    ``stage`` tells whether discovery ("discover") or loading ("load") rejects it.
    """

    outcome: str
    reason: str | None = None
    stage: str | None = None
    format: str | None = None
    records: int | None = None
    title: str | None = None
    contains: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF (Helvetica text, one string per page) built byte by byte, so the
    tests need no PDF writer and pypdf reads it back with its text."""
    objects: list[bytes] = []
    n_pages = len(pages)
    page_ids = [4 + 2 * i for i in range(n_pages)]
    info_id = 4 + 2 * n_pages
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td {_pdf_string(text)} Tj ET".encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_ids[i] + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objects.append(f"<< /Title {_pdf_string(title)} >>".encode("latin-1") if title else b"<< >>")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\n" % (len(objects) + 1, info_id)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def build_fixture_tree(root: Path) -> dict[str, Expected]:
    """Write the fixture documents under ``root`` (created if missing) and return the expected
    outcome per relative path. A sibling folder ``<root>-outside`` holds the targets of the
    symlinks that leave the root."""
    root.mkdir(parents=True, exist_ok=True)
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.md").write_text("# Secret\n\nMust never be ingested.\n")

    def write(rel: str, data: str | bytes) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")

    expected: dict[str, Expected] = {}

    write("guide.md", MARKDOWN)
    expected["guide.md"] = Expected(
        "ingested", format="markdown", records=1, title="User Guide", contains=("docker compose up -d",)
    )
    write("notes.txt", "Plain notes.\n\nA second paragraph of plain text.\n")
    expected["notes.txt"] = Expected("ingested", format="text", records=1, contains=("second paragraph",))
    write("manual.rst", RST)
    expected["manual.rst"] = Expected("ingested", format="rst", records=1, title="Manual", contains=("HNSW graph",))
    write("web/page.html", HTML)
    expected["web/page.html"] = Expected(
        "ingested",
        format="html",
        records=1,
        title="Fixture Page",
        contains=("Visible heading", "bold & entities", "Item two"),
        excludes=("SCRIPT_MARKER", "STYLE_MARKER", "NOSCRIPT_MARKER", "TEMPLATE_MARKER", "<p>"),
    )
    write("report.pdf", make_pdf(PDF_PAGES, PDF_TITLE))
    expected["report.pdf"] = Expected(
        "ingested", format="pdf", records=1, title=PDF_TITLE, contains=("page one", "Page two")
    )
    write("broken.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R\nthis is not a pdf\n")
    expected["broken.pdf"] = Expected("skipped", "PDF", "load")
    write("corpus/corpus.jsonl", "".join(json.dumps(r) + "\n" for r in BEIR_RECORDS))
    expected["corpus/corpus.jsonl"] = Expected("ingested", format="jsonl", records=3)
    write("corpus/extra.jsonl.gz", gzip.compress("".join(json.dumps(r) + "\n" for r in BEIR_GZ_RECORDS).encode()))
    expected["corpus/extra.jsonl.gz"] = Expected("ingested", format="jsonl", records=2)
    write("corpus/bad.jsonl", json.dumps(BEIR_RECORDS[0]) + "\n{not json\n")
    expected["corpus/bad.jsonl"] = Expected("skipped", "line 2", "load")

    write("data.bin", bytes(range(256)) * 4)
    expected["data.bin"] = Expected("skipped", "unsupported file type .bin", "discover")
    write("nul.txt", b"text with a NUL\x00byte in it\n")
    expected["nul.txt"] = Expected("skipped", "binary content", "load")
    write("empty.md", b"")
    expected["empty.md"] = Expected("skipped", "empty file", "discover")
    write("blank.txt", "   \n\n\t \n")
    expected["blank.txt"] = Expected("skipped", "no text", "load")
    write("latin1.txt", "Café crème, déjà vu.\n".encode("latin-1"))
    expected["latin1.txt"] = Expected("skipped", "not valid UTF-8 text (byte 0xe9 at offset 3)", "load")
    line = b"This line pads a twenty megabyte text file past the size limit.\n"
    with (root / "big.txt").open("wb") as fh:
        fh.write(line * (BIG_FILE_BYTES // len(line) + 1))
    expected["big.txt"] = Expected("skipped", "LEAF_MONGO_MAX_FILE_MB", "discover")

    write("sub/nested.md", "## Nested\n\nA file one folder down.\n")
    expected["sub/nested.md"] = Expected("ingested", format="markdown", records=1, title="Nested")
    os.symlink("..", root / "sub" / "loop")  # points to the folder that contains it: a loop
    expected["sub/loop"] = Expected("skipped", "symlink loop", "discover")
    os.symlink(outside / "secret.md", root / "escape.md")
    expected["escape.md"] = Expected("skipped", "leaves the root", "discover")
    os.symlink(os.path.relpath(outside, root), root / "escape_dir")
    expected["escape_dir"] = Expected("skipped", "leaves the root", "discover")
    os.symlink("missing.md", root / "dangling.md")
    expected["dangling.md"] = Expected("skipped", "broken symlink", "discover")
    os.symlink("guide.md", root / "alias.md")  # same file as guide.md: listed once
    expected["alias.md"] = Expected("ignored")

    write(".hidden.md", "# Hidden\n")
    expected[".hidden.md"] = Expected("ignored")
    write(".git/config", "[core]\n")
    expected[".git/config"] = Expected("ignored")
    return expected
