"""File discovery and loaders, checked against the shared fixture tree."""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
from pathlib import Path

import pytest

from leaf_mongo.ingest.discovery import _pattern_matches as pattern_matches
from leaf_mongo.ingest.discovery import discover
from leaf_mongo.ingest.formats import html_to_text, markdown_sections, rst_sections
from leaf_mongo.ingest.loaders import load
from leaf_mongo.ingest.sources import LoadError, Section, SkippedFile, SourceFile
from tests.fixture_tree import BEIR_RECORDS, Expected, build_fixture_tree, make_pdf


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Expected]]:
    root = tmp_path_factory.mktemp("tree") / "docs"
    return root, build_fixture_tree(root)


def _split(items: list[SourceFile | SkippedFile]) -> tuple[dict[str, SourceFile], dict[str, SkippedFile]]:
    sources = {i.relpath: i for i in items if isinstance(i, SourceFile)}
    skipped = {i.relpath or i.path: i for i in items if isinstance(i, SkippedFile)}
    return sources, skipped


def _write(path: Path, data: str | bytes) -> SourceFile:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return SourceFile(path.resolve(), path.name, path.parent.resolve(), path.stat().st_size)


# --- discovery ---------------------------------------------------------------------------------


def test_fixture_tree_outcomes(tree: tuple[Path, dict[str, Expected]]) -> None:
    root, expected = tree
    sources, skipped = _split(list(discover([root])))
    seen = set(sources) | set(skipped)
    assert seen == {rel for rel, exp in expected.items() if exp.outcome != "ignored"}
    for rel, exp in expected.items():
        if exp.outcome == "ignored":
            assert rel not in seen
        elif exp.stage == "discover":
            assert rel in skipped, rel
            assert exp.reason and exp.reason in skipped[rel].reason, (rel, skipped[rel].reason)
            assert skipped[rel].path == str(root / rel)
        elif exp.stage == "load":
            with pytest.raises(LoadError) as info:
                load(sources[rel])
            assert exp.reason and exp.reason in info.value.reason, (rel, info.value.reason)
        else:
            records = load(sources[rel])
            assert len(records) == exp.records, rel
            assert {r.format for r in records} == {exp.format}
            if exp.title is not None:
                assert records[0].title == exp.title
            text = "\n".join(r.text for r in records)
            for needle in exp.contains:
                assert needle in text, (rel, needle)
            for needle in exp.excludes:
                assert needle not in text, (rel, needle)


def test_source_file_fields_and_stable_order(tree: tuple[Path, dict[str, Expected]]) -> None:
    root, _ = tree
    first = list(discover([root]))
    assert first == list(discover([root]))
    sources = [i for i in first if isinstance(i, SourceFile)]
    assert [s.relpath for s in sources] == sorted(s.relpath for s in sources)
    for s in sources:
        assert s.path.is_absolute() and s.path == s.path.resolve()
        assert s.root == root.resolve()
        assert s.size == s.path.stat().st_size > 0
        assert "\\" not in s.relpath
    # the in-root symlink alias.md is the same file as guide.md: listed once, under its real name
    assert [s.relpath for s in sources if s.path.name == "guide.md"] == ["guide.md"]


def test_size_limit_message_and_override(tree: tuple[Path, dict[str, Expected]]) -> None:
    root, _ = tree
    _, skipped = _split(list(discover([root])))
    reason = skipped["big.txt"].reason
    assert "20.0 MB" in reason and "10.0 MB" in reason and "LEAF_MONGO_MAX_FILE_MB" in reason
    sources, _ = _split(list(discover([root], include=["big.txt"], max_file_bytes=25 * 1024 * 1024)))
    assert list(sources) == ["big.txt"]


def test_include_exclude(tree: tuple[Path, dict[str, Expected]]) -> None:
    root, _ = tree
    sources, skipped = _split(list(discover([root], include=["*.md"])))
    assert sorted(sources) == ["guide.md", "sub/nested.md"]
    assert set(skipped) == {"empty.md", "escape.md", "dangling.md"}  # selected, then rejected
    sources, _ = _split(list(discover([root], exclude=["corpus", "**/*.html", "*.pdf"])))
    assert not any(r.startswith("corpus/") or r.endswith((".html", ".pdf")) for r in sources)
    assert "guide.md" in sources
    sources, _ = _split(list(discover([root], include=["corpus/**"], exclude=["*.gz"])))
    assert sorted(sources) == ["corpus/bad.jsonl", "corpus/corpus.jsonl"]


@pytest.mark.parametrize(
    ("path", "pattern", "hit"),
    [
        ("a.md", "*.md", True),
        ("x/y/a.md", "*.md", True),
        ("a.md", "**/*.md", True),
        ("x/y/a.md", "**/*.md", True),
        ("x/a.md", "x/*.md", True),
        ("y/a.md", "x/*.md", False),
        ("x/README.md", "README.md", True),
        ("x/a.txt", "*.md", False),
        ("drafts", "drafts/", True),
    ],
)
def test_pattern_matching(path: str, pattern: str, hit: bool) -> None:
    assert pattern_matches(path, pattern) is hit


def test_file_given_directly_and_missing_path(tree: tuple[Path, dict[str, Expected]]) -> None:
    root, _ = tree
    items = list(discover([root / "sub" / "nested.md", root / "nope.md"]))
    assert isinstance(items[0], SourceFile)
    assert items[0].relpath == "nested.md" and items[0].root == (root / "sub").resolve()
    assert isinstance(items[1], SkippedFile) and "no such file" in items[1].reason


def test_overlapping_roots_list_each_file_once(tree: tuple[Path, dict[str, Expected]]) -> None:
    root, _ = tree
    sources = [i for i in discover([root, root / "sub"]) if isinstance(i, SourceFile)]
    assert len({s.path for s in sources}) == len(sources)


def test_symlinks_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / ".versions" / "v2").mkdir(parents=True)
    (root / ".versions" / "v2" / "doc.md").write_text("# V2\n\ntext\n")
    (root / "real").mkdir()
    (root / "real" / "a.txt").write_text("a\n")
    os.symlink(".versions/v2", root / "current")  # followed: target inside the root
    os.symlink("real", root / "again")  # same folder as real/: listed once, under real/
    os.symlink("self.md", root / "self.md")  # a symlink to itself
    os.symlink("../..", root / "real" / "up")  # points above its folder, to the root: a loop
    sources, skipped = _split(list(discover([root])))
    assert sorted(sources) == ["current/doc.md", "real/a.txt"]
    assert sources["current/doc.md"].path == (root / ".versions" / "v2" / "doc.md").resolve()
    assert "symlink loop" in skipped["self.md"].reason
    assert "leaves the root" in skipped["real/up"].reason
    assert set(skipped) == {"self.md", "real/up"}


def test_symlink_loop_inside_followed_folder(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / ".hidden" / "d").mkdir(parents=True)
    (root / ".hidden" / "d" / "x.txt").write_text("x\n")
    os.symlink(".hidden/d", root / "link")
    os.symlink("..", root / ".hidden" / "d" / "back")  # seen through link/back: a loop
    sources, skipped = _split(list(discover([root])))
    assert sorted(sources) == ["link/x.txt"]
    assert "symlink loop" in skipped["link/back"].reason


def test_unsupported_and_hidden(tmp_path: Path) -> None:
    (tmp_path / "LICENSE").write_text("text\n")
    (tmp_path / "img.PNG").write_bytes(b"\x89PNG")
    (tmp_path / "UPPER.MD").write_text("# Up\n")
    (tmp_path / ".env").write_text("SECRET=1\n")
    sources, skipped = _split(list(discover([tmp_path])))
    assert list(sources) == ["UPPER.MD"] and sources["UPPER.MD"].format == "markdown"
    assert skipped["LICENSE"].reason == "unsupported file type (no extension)"
    assert skipped["img.PNG"].reason == "unsupported file type .png"


# --- loaders -----------------------------------------------------------------------------------


def test_text_decoding(tmp_path: Path) -> None:
    bom = _write(tmp_path / "bom.txt", codecs.BOM_UTF8 + "héllo\r\nworld\r\n".encode())
    assert load(bom)[0].text == "héllo\nworld\n"
    utf16 = _write(tmp_path / "u16.txt", "wide text\n".encode("utf-16"))
    assert load(utf16)[0].text == "wide text\n"
    bad = _write(tmp_path / "bad.md", b"ok \xff")
    with pytest.raises(LoadError, match=r"not valid UTF-8 text \(byte 0xff at offset 3\)"):
        load(bad)
    assert load(_write(tmp_path / "t.txt", "first line\nsecond\n"))[0].title is None


def test_markdown_sections() -> None:
    text = (
        "Preamble.\n\n# Top\n\nIntro.\n\n## Install\n\n### Docker\n\nRun it.\n\n"
        "```\n# comment, not a heading\n```\n\nSetext\n------\n\nUnder setext.\n\n# Other #\n\nEnd.\n"
    )
    sections = markdown_sections(text)
    assert [s.headings for s in sections] == [
        (),
        ("Top",),
        ("Top", "Install", "Docker"),
        ("Top", "Setext"),
        ("Other",),
    ]
    assert "# comment, not a heading" in sections[2].text
    assert sections[0] == Section((), "Preamble.")


def test_markdown_front_matter_is_not_a_heading() -> None:
    sections = markdown_sections("---\ntitle: x\n---\n\n# Real\n\nBody.\n")
    assert [s.headings for s in sections] == [(), ("Real",)]


def test_rst_sections() -> None:
    text = (
        "=====\nTitle\n=====\n\nIntro.\n\nPart A\n------\n\nA text.\n\nSub\n~~~\n\nSub text.\n\nPart B\n------\n\nB.\n"
    )
    sections = rst_sections(text)
    assert [s.headings for s in sections] == [
        ("Title",),
        ("Title", "Part A"),
        ("Title", "Part A", "Sub"),
        ("Title", "Part B"),
    ]


def test_rst_title(tmp_path: Path) -> None:
    assert load(_write(tmp_path / "a.rst", "Intro line.\n\nHeading\n=======\n\nbody\n"))[0].title == "Heading"


def test_html_visible_text() -> None:
    text, title = html_to_text(
        "<html><head><title>T</title><script>x()</script></head><body>"
        "<h1>Head</h1><p>a\n   b</p><div>c</div><pre>keep</pre><table><tr><td>1</td><td>2</td></tr></table>"
        "</body></html>"
    )
    assert title == "T"
    assert text.split("\n\n")[0] == "Head"
    assert "a b" in text and "x()" not in text and "1 2" in text
    assert html_to_text("<h1>Only <i>h1</i></h1><p>p</p>")[1] == "Only h1"


def test_html_without_text(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no text"):
        load(_write(tmp_path / "e.html", "<html><head><title>x</title></head><body> </body></html>"))


def test_pdf(tmp_path: Path) -> None:
    record = load(_write(tmp_path / "a.pdf", make_pdf(["one (1)", "two"], title="My PDF")))[0]
    assert record.text == "one (1)\n\ntwo" and record.title == "My PDF" and record.format == "pdf"
    assert load(_write(tmp_path / "b.pdf", make_pdf(["x"])))[0].title is None
    with pytest.raises(LoadError, match="no extractable text"):
        load(_write(tmp_path / "c.pdf", make_pdf([""])))
    with pytest.raises(LoadError, match="cannot parse PDF"):
        load(_write(tmp_path / "d.pdf", b"not a pdf at all"))


def test_encrypted_pdf(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    def encrypted(user_password: str) -> bytes:
        writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["locked text"])))
        writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()

    with pytest.raises(LoadError, match="encrypted PDF"):
        load(_write(tmp_path / "locked.pdf", encrypted("secret")))
    # an empty user password only restricts editing; anyone can read it
    assert load(_write(tmp_path / "open.pdf", encrypted("")))[0].text == "locked text"


def test_jsonl(tmp_path: Path) -> None:
    lines = "".join(json.dumps(r) + "\n" for r in BEIR_RECORDS) + "\n"
    records = load(_write(tmp_path / "c.jsonl", lines))
    assert [(r.record_id, r.title) for r in records] == [
        ("doc1", "Vector search"),
        ("doc2", None),
        ("doc3", "HNSW"),
    ]
    assert records[1].text == BEIR_RECORDS[1]["text"]
    gz = load(_write(tmp_path / "c.jsonl.gz", gzip.compress(lines.encode())))
    assert gz == records


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"_id": "a", "text": "x"}\n{"_id": "b"}\n', 'line 2: record has no "text" string'),
        ('{"_id": "a", "text": "x"}\n\n[1, 2]\n', "line 3: not a JSON object"),
        ('{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n', "line 2: duplicate _id 'a' (first on line 1)"),
        ("{oops\n", "line 1: not valid JSON"),
        ("\n\n", "no text"),
    ],
)
def test_jsonl_errors(tmp_path: Path, content: str, reason: str) -> None:
    with pytest.raises(LoadError) as info:
        load(_write(tmp_path / "bad.jsonl", content))
    assert reason in info.value.reason


def test_bad_gzip(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="gzip"):
        load(_write(tmp_path / "x.jsonl.gz", b"\x1f\x8bnot really gzip"))
