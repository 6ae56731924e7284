"""Split loaded records into chunks measured in tokens of the teacher's own tokenizer.

Counting in the embedding model's tokens (not characters) is what guarantees a chunk is never
silently truncated by the model. Each chunk of a markdown or reStructuredText file starts with
its heading path, and each chunk of a BEIR record with the record title, so the embedding sees
the context the text lives in.

The splitter tokenizes once with offsets and picks cut points in token space, preferring
paragraph, line, sentence and word boundaries, then re-counts every chunk in one batch and
re-splits the rare one that tokenizes longer on its own; work is linear in the file size.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from leaf_mongo.ingest.formats import markdown_sections, rst_sections
from leaf_mongo.ingest.sources import LoadedRecord, Section

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerBase

__all__ = ["Chunk", "Chunker"]

_FORMAT_ALIASES = {"md": "markdown", "txt": "text", "htm": "html"}
_BLOCK_CHARS = 2000
"""Long paragraphs are cut at whitespace into blocks about this long before tokenizing: one huge
string tokenizes several times slower than the same text in a parallel batch."""
_TOKENIZE_BATCH = 1024
_HEADING_SEPARATOR = " > "

# Boundary preference, best last: a cut between two tokens separated by a blank line beats one
# at a line break, which beats one after a sentence end, then any whitespace, then mid-word.
_MID_WORD, _WORD, _SENTENCE, _LINE, _PARAGRAPH = range(5)


@dataclass(frozen=True)
class Chunk:
    """One piece of text to embed and store; ``index`` numbers chunks 0..n-1 within a file."""

    text: str
    index: int
    title: str | None
    headings: tuple[str, ...]
    record_id: str | None


@dataclass
class _Unit:
    """A section body to split, with the context prefix each of its chunks starts with."""

    record: int
    headings: tuple[str, ...]
    prefix: str
    body: str


class Chunker:
    """Token-based chunker for one tokenizer; reuse it across files.

    ``chunk_size`` is clamped so that a chunk plus the model's special tokens fits in
    ``max_seq_length``; when clamping makes ``chunk_overlap`` too large it is scaled down in
    proportion. ``chunk_size`` and ``chunk_overlap`` hold the values in effect.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_seq_length: int,
        chunk_size: int = 256,
        chunk_overlap: int = 32,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1 token (got {chunk_size})")
        if chunk_overlap < 0:
            raise ValueError(f"chunk_overlap must not be negative (got {chunk_overlap})")
        if chunk_overlap >= chunk_size:
            raise ValueError(
                f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size}); "
                "lower LEAF_MONGO_CHUNK_OVERLAP or raise LEAF_MONGO_CHUNK_SIZE"
            )
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("Chunker needs a fast (Rust-backed) Hugging Face tokenizer, which reports token offsets")
        special = int(tokenizer.num_special_tokens_to_add(pair=False))
        limit = max_seq_length - special
        if limit < 1:
            raise ValueError(f"max_seq_length {max_seq_length} leaves no room for text after {special} special tokens")
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.requested_chunk_size = chunk_size
        self.chunk_size = min(chunk_size, limit)
        self.chunk_overlap = (
            chunk_overlap if chunk_overlap < self.chunk_size else chunk_overlap * self.chunk_size // chunk_size
        )

    @classmethod
    def for_model_folder(cls, model: str, chunk_size: int = 256, chunk_overlap: int = 32) -> Chunker:
        """The same chunker as :meth:`for_model` from the model's tokenizer and ``sentence_bert_config.json``
        alone, without loading its weights (autoEmbed ingest: the teacher runs in `leaf-mongo serve`). A layout
        with no tokenizer at its root (a Router) falls back to loading the model."""
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(model)
        except (OSError, ValueError):
            from sentence_transformers import SentenceTransformer

            return cls.for_model(SentenceTransformer(model), chunk_size, chunk_overlap)
        return cls(tokenizer, _max_seq_length(model, tokenizer), chunk_size, chunk_overlap)

    @classmethod
    def for_model(cls, model: SentenceTransformer, chunk_size: int = 256, chunk_overlap: int = 32) -> Chunker:
        """The chunker for a document model: its tokenizer and sequence limit.

        Ingest, distillation, int8 calibration and cache warming all cut text this way, so the same file gives
        the same chunk texts everywhere, and embedding-cache keys (model, text) match between them.
        """
        return cls(
            model.tokenizer,
            max_seq_length=int(model.max_seq_length or 512),
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
        )

    # -- tokenizer access ---------------------------------------------------------------------

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts without special tokens, tokenized in batches."""
        counts: list[int] = []
        for i in range(0, len(texts), _TOKENIZE_BATCH):
            encoded = self.tokenizer(
                list(texts[i : i + _TOKENIZE_BATCH]),
                add_special_tokens=False,
                return_attention_mask=False,
                return_token_type_ids=False,
                verbose=False,
            )
            counts.extend(len(ids) for ids in encoded["input_ids"])
        return counts

    def _offsets(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Character spans ``(n, 2)`` of each text's tokens, tokenized in batches."""
        out: list[np.ndarray] = []
        for i in range(0, len(texts), _TOKENIZE_BATCH):
            encoded = self.tokenizer(
                list(texts[i : i + _TOKENIZE_BATCH]),
                add_special_tokens=False,
                return_offsets_mapping=True,
                return_attention_mask=False,
                return_token_type_ids=False,
                verbose=False,
            )
            out.extend(np.asarray(o, dtype=np.int64).reshape(-1, 2) for o in encoded["offset_mapping"])
        return out

    # -- public API ---------------------------------------------------------------------------

    def chunk(self, records: list[LoadedRecord], format: str) -> list[Chunk]:
        """Chunks of one file's records, numbered from 0 across the file.

        Markdown and rst chunks start with their heading path (``"Install > Docker\\n\\n..."``);
        a jsonl record is embedded as ``title + "\\n" + text`` and chunks never span records.
        """
        fmt = _FORMAT_ALIASES.get(format, format)
        units = self._units(records, fmt)
        prefixes = self._fit_prefixes({u.prefix for u in units})
        bodies = self._split_bodies(units, prefixes)
        pieces: list[tuple[_Unit, str, str]] = []  # unit, prefix, body
        for unit, spans in zip(units, bodies, strict=True):
            prefix, _ = prefixes[unit.prefix]
            if not spans and fmt == "jsonl" and prefix:  # a title-only record is still a document
                pieces.append((unit, "", prefix.rstrip("\n")))
            pieces.extend((unit, prefix, span) for span in spans)
        pieces = self._enforce_limit(pieces, prefixes)
        return [
            Chunk(prefix + body, i, records[unit.record].title, unit.headings, records[unit.record].record_id)
            for i, (unit, prefix, body) in enumerate(pieces)
        ]

    # -- steps --------------------------------------------------------------------------------

    def _units(self, records: list[LoadedRecord], fmt: str) -> list[_Unit]:
        units: list[_Unit] = []
        for r, record in enumerate(records):
            if fmt == "jsonl":
                prefix = f"{record.title}\n" if record.title else ""
                units.append(_Unit(r, (), prefix, record.text))
                continue
            if fmt in ("markdown", "rst"):
                sections = markdown_sections(record.text) if fmt == "markdown" else rst_sections(record.text)
                if not sections:  # headings only: keep the text itself rather than nothing
                    sections = [Section((), record.text)]
            else:
                sections = [Section((), record.text)]
            for section in sections:
                prefix = _HEADING_SEPARATOR.join(section.headings) + "\n\n" if section.headings else ""
                units.append(_Unit(r, section.headings, prefix, section.text))
        return units

    def _fit_prefixes(self, prefixes: set[str]) -> dict[str, tuple[str, int]]:
        """Map each context prefix to the text actually used and its token count.

        A prefix may take at most half a chunk: longer heading paths lose their outer headings,
        and a single overlong heading or title is cut, so the body always has room.
        """
        cap = max(self.chunk_size // 2, 0)
        ordered = sorted(p for p in prefixes if p)
        fitted: dict[str, tuple[str, int]] = {"": ("", 0)}
        for prefix, count in zip(ordered, self.count_tokens(ordered), strict=True):
            fitted[prefix] = (prefix, count) if count <= cap else self._shorten(prefix, cap)
        return fitted

    def _shorten(self, prefix: str, cap: int) -> tuple[str, int]:
        core = prefix.rstrip("\n")
        tail = prefix[len(core) :]
        parts = core.split(_HEADING_SEPARATOR) if tail == "\n\n" else [core]
        for i in range(1, len(parts)):
            candidate = _HEADING_SEPARATOR.join(parts[i:]) + tail
            count = self.count_tokens([candidate])[0]
            if count <= cap:
                return candidate, count
        last = parts[-1]
        offsets = self._offsets([last])[0]
        keep = max(cap // 2, 0)
        if keep == 0 or len(offsets) == 0:
            return "", 0
        candidate = last[: int(offsets[min(keep, len(offsets)) - 1][1])] + "…" + tail
        count = self.count_tokens([candidate])[0]
        return (candidate, count) if count <= cap else ("", 0)

    def _split_bodies(self, units: list[_Unit], prefixes: dict[str, tuple[str, int]]) -> list[list[str]]:
        """Split every unit body into token windows; all blocks of the file tokenized together."""
        block_spans = [_blocks(u.body) for u in units]
        flat = [u.body[a:b] for u, spans in zip(units, block_spans, strict=True) for a, b in spans]
        flat_offsets = self._offsets(flat)
        out: list[list[str]] = []
        k = 0
        for unit, spans in zip(units, block_spans, strict=True):
            parts = [flat_offsets[k + j] + a for j, (a, _) in enumerate(spans)]
            k += len(spans)
            offsets = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)
            budget = max(self.chunk_size - prefixes[unit.prefix][1], 1)
            out.append(self._windows(unit.body, offsets, budget))
        return out

    def _windows(self, body: str, offsets: np.ndarray, budget: int) -> list[str]:
        """Cut ``body`` into spans of at most ``budget`` tokens at the best nearby boundary."""
        n = len(offsets)
        if n == 0:
            return []
        starts, ends = offsets[:, 0], offsets[:, 1]
        if n <= budget:
            return [body[int(starts[0]) : int(ends[-1])]]
        cats = _boundary_categories(body, starts, ends)
        overlap = min(self.chunk_overlap, budget - 1)
        spans: list[str] = []
        start = 0
        while start < n:
            hard = start + budget
            if hard >= n:
                end = n
            else:
                lo = start + max(budget // 2, 1)
                window = cats[lo : hard + 1]  # candidate ends: cut before token e
                best = window.max()
                end = lo + len(window) - 1 - int(np.argmax(window[::-1] == best))
            spans.append(body[int(starts[start]) : int(ends[end - 1])])
            if end >= n:
                break
            nxt = end
            if overlap:
                # Start the overlap at a word boundary so no chunk begins mid-word.
                hits = np.flatnonzero(cats[end - overlap : end] >= _WORD)
                if hits.size:
                    nxt = end - overlap + int(hits[0])
            start = max(nxt, start + 1)
        return spans

    def _enforce_limit(
        self, pieces: list[tuple[_Unit, str, str]], prefixes: dict[str, tuple[str, int]]
    ) -> list[tuple[_Unit, str, str]]:
        """Re-count every chunk and re-split any that tokenizes longer than ``chunk_size``
        on its own (a cut can change how the text at its edges tokenizes)."""
        for attempt in range(8):
            counts = self.count_tokens([prefix + body for _, prefix, body in pieces])
            over = [i for i, c in enumerate(counts) if c > self.chunk_size]
            if not over:
                return pieces
            fixed: list[tuple[_Unit, str, str]] = []
            bad = set(over)
            for i, (unit, prefix, body) in enumerate(pieces):
                if i not in bad:
                    fixed.append((unit, prefix, body))
                    continue
                excess = counts[i] - self.chunk_size
                if attempt < 7:
                    budget = max(self.chunk_size - prefixes[unit.prefix][1] - excess - attempt, 1)
                    spans = self._windows(body, self._offsets([body])[0], budget)
                else:
                    spans = self._hard_cut(prefix, body)
                fixed.extend((unit, prefix, span) for span in spans)
            pieces = fixed
        return pieces  # pragma: no cover - _hard_cut always fits

    def _hard_cut(self, prefix: str, body: str) -> list[str]:
        """Last resort: cut by characters, binary-searching the longest span that fits."""
        spans: list[str] = []
        while body:
            lo, hi = 1, len(body)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.count_tokens([prefix + body[:mid]])[0] <= self.chunk_size:
                    lo = mid
                else:
                    hi = mid - 1
            spans.append(body[:lo])
            body = body[lo:].lstrip()
        return spans


def _blocks(body: str) -> list[tuple[int, int]]:
    """Character spans of paragraphs, long ones cut at whitespace, for batched tokenizing."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in re.finditer(r"\n[ \t]*\n\s*", body):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(body)))
    out: list[tuple[int, int]] = []
    for a, b in spans:
        while b - a > _BLOCK_CHARS:
            cut = max(body.rfind(" ", a + _BLOCK_CHARS // 2, a + _BLOCK_CHARS), body.rfind("\n", a, a + _BLOCK_CHARS))
            if cut <= a:
                cut = a + _BLOCK_CHARS
            out.append((a, cut))
            a = cut
        if b > a and body[a:b].strip():
            out.append((a, b))
    return out


def _boundary_categories(body: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``cats[i]`` rates a cut just before token ``i`` (``_MID_WORD`` .. ``_PARAGRAPH``)."""
    n = len(starts)
    chars = np.frombuffer(body.encode("utf-32-le"), dtype=np.uint32)
    newlines = np.concatenate(([0], np.cumsum(chars == ord("\n"))))
    prev_end, next_start = ends[:-1], starts[1:]
    gap = next_start > prev_end
    lines = newlines[next_start] - newlines[prev_end]
    last_char = chars[np.maximum(prev_end - 1, 0)]
    sentence = np.isin(last_char, [ord("."), ord("!"), ord("?"), ord(";"), ord(":")]) & gap
    cats = np.full(n + 1, _MID_WORD, dtype=np.int8)
    inner = cats[1:n]
    inner[gap] = _WORD
    inner[sentence] = _SENTENCE
    inner[lines == 1] = _LINE
    inner[lines >= 2] = _PARAGRAPH
    return cats


def _max_seq_length(model: str, tokenizer: PreTrainedTokenizerBase) -> int:
    """What sentence-transformers' ``Transformer`` uses: ``max_seq_length`` from ``sentence_bert_config.json``,
    else the smaller of ``max_position_embeddings`` and the tokenizer's ``model_max_length``."""
    import json
    from pathlib import Path

    def read(name: str) -> dict[str, Any]:
        local = Path(model) / name
        try:
            if local.is_file():
                return dict(json.loads(local.read_text()))
            from huggingface_hub import hf_hub_download

            return dict(json.loads(Path(hf_hub_download(model, name)).read_text()))
        except (OSError, ValueError):
            return {}

    explicit = read("sentence_bert_config.json").get("max_seq_length")
    if explicit:
        return int(explicit)
    limits = [int(tokenizer.model_max_length)] if tokenizer.model_max_length < 1_000_000 else []
    positions = read("config.json").get("max_position_embeddings")
    limits += [int(positions)] if positions else []
    return min(limits) if limits else 512
