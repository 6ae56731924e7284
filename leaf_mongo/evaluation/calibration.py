"""int8 ranges fitted on corpus chunk embeddings only (never on queries)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from leaf_mongo.errors import LeafMongoError
from leaf_mongo.ingest.chunking import Chunker
from leaf_mongo.ingest.discovery import discover
from leaf_mongo.ingest.loaders import load
from leaf_mongo.ingest.sources import SourceFile
from leaf_mongo.models.encoders import VectorEncoder
from leaf_mongo.models.resolve import spec_from_settings
from leaf_mongo.settings import LeafMongoSettings


def calibrate_int8(
    corpus_path: Path, settings: LeafMongoSettings, *, sample: int = 4000, seed: int = 0, tail: float = 0.001
) -> tuple[float, float]:
    """An int8 range for ``settings``' document model and dimensions, from corpus chunk embeddings only.

    The profile's fixed range (±0.3) was published for one model; other models spread their components
    differently. Takes the ``tail`` and ``1 - tail`` quantiles of all components of (up to ``sample``) corpus
    chunks, embedded exactly as ingest embeds them (same chunker, truncation and renormalization, and the
    embedding cache, so ingest does not pay twice). Queries are never looked at.
    """

    spec = spec_from_settings(settings.model_copy(update={"dtype": "float32", "quantization": "none"}))
    encoder = VectorEncoder(spec, device=settings.device, cache_dir=settings.embedding_cache)
    teacher = encoder.teacher
    chunker = Chunker.for_model(teacher, settings.chunk_size, settings.chunk_overlap)
    files = [f for f in discover([corpus_path]) if isinstance(f, SourceFile)]
    if not files:
        raise LeafMongoError(f"cannot read corpus {corpus_path} for int8 calibration")
    texts = [c.text for f in files for c in chunker.chunk(load(f), f.format)]
    if len(texts) > sample:
        texts = random.Random(seed).sample(texts, sample)
    emb = encoder.embed_documents(texts, batch_size=settings.batch_size)
    lo, hi = np.quantile(emb, [tail, 1.0 - tail])
    return round(float(lo), 4), round(float(hi), 4)
