"""Fill the embedding cache with a model's document vectors for a corpus, longest-first, resumably.

The quality benchmark and ``leaf-mongo distill`` read teacher vectors from the embedding cache
(``~/.cache/leaf-mongo/embeddings``); a teacher pass over SciFact is ~10,000 chunks and the slowest step of
all. This script chunks the corpus exactly as ingest does (the model's tokenizer, the configured chunk size)
and encodes only the chunks the cache lacks, sorted by length so batches carry little padding, committing
every batch: kill it at any time and re-run it to go on. It writes nothing but cache entries.

    python benchmarks/warm_cache.py ../shared/data/scifact/corpus.jsonl.gz \
        --model /root/.cache/leaf-mongo-models/all-mpnet-base-v2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from leaf_mongo.evaluation import DEFAULT_CACHE  # noqa: E402
from leaf_mongo.ingest.chunking import Chunker  # noqa: E402
from leaf_mongo.ingest.discovery import discover  # noqa: E402
from leaf_mongo.ingest.loaders import load  # noqa: E402
from leaf_mongo.ingest.sources import SourceFile  # noqa: E402
from leaf_mongo.models.cache import open_cache  # noqa: E402
from leaf_mongo.models.encoders import VectorEncoder  # noqa: E402
from leaf_mongo.models.resolve import spec_from_settings  # noqa: E402
from leaf_mongo.settings import load_settings  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--model", required=True, help="the document (teacher) model")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--batch", type=int, default=256, help="chunks per committed batch")
    args = ap.parse_args()

    settings = load_settings(teacher_model=args.model, leaf_model=args.model, embedding_cache=str(args.cache))
    encoder = VectorEncoder(spec_from_settings(settings), cache_dir=settings.embedding_cache)
    chunker = Chunker.for_model(encoder.teacher, settings.chunk_size, settings.chunk_overlap)
    files = [f for f in discover(args.paths) if isinstance(f, SourceFile)]
    texts = sorted({c.text for f in files for c in chunker.chunk(load(f), f.format)}, key=len, reverse=True)
    cached = open_cache(args.cache).get_many(
        encoder.cache_model_key, encoder.spec.document_prompt, texts
    )  # the encoder's cache, same key
    missing = [t for t, v in zip(texts, cached, strict=True) if v is None]
    print(f"{len(texts)} chunks, {len(texts) - len(missing)} cached, {len(missing)} to encode", flush=True)
    start = time.perf_counter()
    for i in range(0, len(missing), args.batch):
        encoder.embed_documents(missing[i : i + args.batch], batch_size=settings.batch_size)
        done = min(i + args.batch, len(missing))
        rate = done / (time.perf_counter() - start)
        eta = (len(missing) - done) / rate / 60
        print(f"{done}/{len(missing)} encoded, {rate:.2f} chunks/s, ~{eta:.0f} min left", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
