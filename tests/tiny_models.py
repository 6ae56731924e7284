"""Tiny random sentence-transformers models, built on the spot, for fast tests of the model plumbing."""

from __future__ import annotations

import string
from pathlib import Path


def make_tiny_model(path: Path, dimensions: int = 32, hidden: int = 16, seed: int = 0, prompt: str = "") -> Path:
    """A 2-layer BERT (random weights, a character-level vocab) + mean pooling + Dense(hidden -> dimensions)."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    raw = path / "_backbone"
    raw.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase, *string.digits, *"##"]
    vocab += [f"##{c}" for c in string.ascii_lowercase + string.digits]
    (raw / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    BertTokenizerFast(vocab_file=str(raw / "vocab.txt")).save_pretrained(raw)
    config = BertConfig(
        vocab_size=len(dict.fromkeys(vocab)), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=128,
    )  # fmt: skip
    BertModel(config).save_pretrained(raw)
    transformer = models.Transformer(str(raw), max_seq_length=64)
    pooling = models.Pooling(hidden, pooling_mode="mean")
    dense = models.Dense(hidden, dimensions, bias=False, activation_function=torch.nn.Identity())
    model = SentenceTransformer(modules=[transformer, pooling, dense], prompts={"query": prompt} if prompt else None)
    model.save(str(path))
    return path
