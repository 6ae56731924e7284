"""Tiny random sentence-transformers models, built on the spot, in the module layouts of the published models.

Each builder writes a folder that ``SentenceTransformer(path)`` loads, with the same modules and config files as
the model it imitates (``modules.json``, ``1_Pooling``, ``2_Dense``, ``2_Normalize``, ``router_config.json``,
``config_sentence_transformers.json`` prompts); only the sizes and the weights are toys.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

QUERY_PROMPT = "Represent this sentence for searching relevant passages: "


def _backbone(path: Path, hidden: int, seed: int, max_seq_length: int) -> Any:
    """A 2-layer BERT with random weights and a character-level vocab, as a ``Transformer`` module."""
    import torch
    from sentence_transformers import models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase, *string.digits, *"##"]
    vocab += [f"##{c}" for c in string.ascii_lowercase + string.digits]
    (path / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(dict.fromkeys(vocab)), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=128,
    )  # fmt: skip
    BertModel(config).save_pretrained(path)
    return models.Transformer(str(path), max_seq_length=max_seq_length)


def _modules(
    path: Path, *, hidden: int, dimensions: int | None, pooling: str, bias: bool, normalize: bool, seed: int,
    max_seq_length: int = 64,
) -> list[Any]:  # fmt: skip
    import torch
    from sentence_transformers import models

    mods: list[Any] = [_backbone(path / "_backbone", hidden, seed, max_seq_length)]
    mods.append(models.Pooling(hidden, pooling_mode=pooling))
    if dimensions is not None:
        torch.manual_seed(seed + 1)
        mods.append(models.Dense(hidden, dimensions, bias=bias, activation_function=torch.nn.Identity()))
    if normalize:
        mods.append(models.Normalize())
    return mods


def _save(path: Path, mods: list[Any], prompts: dict[str, str] | None, default_prompt_name: str | None = None) -> Path:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(modules=mods, prompts=prompts, default_prompt_name=default_prompt_name)
    model.save(str(path))
    return path


def make_tiny_model(path: Path, dimensions: int = 32, hidden: int = 16, seed: int = 0, prompt: str = "") -> Path:
    """A 2-layer BERT + mean pooling + Dense(hidden -> dimensions) without bias (as `leaf-mongo distill` writes)."""
    mods = _modules(path, hidden=hidden, dimensions=dimensions, pooling="mean", bias=False, normalize=False, seed=seed)
    return _save(path, mods, {"query": prompt} if prompt else None)


def make_arctic_style(path: Path, hidden: int = 32, seed: int = 10, prompt: str = QUERY_PROMPT) -> Path:
    """snowflake-arctic-embed-m-v1.5: Transformer + CLS pooling + Normalize; prompts ``{"query": Q}``."""
    mods = _modules(path, hidden=hidden, dimensions=None, pooling="cls", bias=False, normalize=True, seed=seed)
    return _save(path, mods, {"query": prompt})


def make_mxbai_style(path: Path, hidden: int = 32, seed: int = 20) -> Path:
    """mxbai-embed-large-v1: Transformer + CLS pooling, no Normalize; prompts ``{query: Q, passage: ""}``."""
    mods = _modules(path, hidden=hidden, dimensions=None, pooling="cls", bias=False, normalize=False, seed=seed)
    return _save(path, mods, {"query": QUERY_PROMPT, "passage": ""})


def make_leaf_ir_style(path: Path, dimensions: int = 32, hidden: int = 16, seed: int = 30) -> Path:
    """mdbr-leaf-ir: MiniLM-style Transformer + mean pooling + Dense(384 -> 768, bias) + Normalize; ``{"query": Q}``."""
    mods = _modules(path, hidden=hidden, dimensions=dimensions, pooling="mean", bias=True, normalize=True, seed=seed)
    return _save(path, mods, {"query": QUERY_PROMPT})


def make_leaf_mt_style(path: Path, dimensions: int = 32, hidden: int = 16, seed: int = 40) -> Path:
    """mdbr-leaf-mt: Transformer + mean pooling + Dense(384 -> 1024) without bias, no Normalize;
    prompts ``{query: Q, document: ""}``."""
    mods = _modules(path, hidden=hidden, dimensions=dimensions, pooling="mean", bias=False, normalize=False, seed=seed)
    return _save(path, mods, {"query": QUERY_PROMPT, "document": ""})


def make_asym_style(path: Path, leaf: Path, teacher: Path, normalize: bool = True) -> Path:
    """mdbr-leaf-*-asym: one model whose ``Router`` sends queries through the leaf's modules and documents through
    the teacher's (``query_0_Transformer``... / ``document_0_Transformer``... and ``router_config.json``, as
    ``Router.for_query_document`` saves them), then a top-level Normalize; prompts ``{query: Q, document: ""}``."""
    from sentence_transformers import SentenceTransformer, models
    from sentence_transformers.base.modules import Router

    q = SentenceTransformer(str(leaf))
    d = SentenceTransformer(str(teacher))
    router = Router.for_query_document(query_modules=list(q), document_modules=list(d))
    mods: list[Any] = [router] + ([models.Normalize()] if normalize else [])
    return _save(path, mods, {"query": QUERY_PROMPT, "document": ""})
