"""An on-disk cache of raw model outputs, so re-ingesting the same text with the same model is free.

Teacher encoding dominates ingest time (a 110M model manages a few documents per second on a CPU). The cache
keeps the model's full, untruncated float32 output keyed by (model, prompt, text), so changing MRL
dimensions, dtype or quantization (``--recreate``), evaluating a grid of them, or distilling a leaf model
from the same corpus reuses one teacher pass. SQLite gives atomic commits, so a killed run keeps what it
finished and never leaves a torn entry.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def _key(model: str, prompt: str, text: str) -> bytes:
    return hashlib.sha256(f"{model}\x00{prompt}\x00{text}".encode()).digest()


class EmbeddingCache:
    """Raw embeddings by (model, prompt, text) in ``<folder>/embeddings.sqlite``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "embeddings.sqlite"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, dim INTEGER, vec BLOB)")
        self._db.commit()

    def get_many(self, model: str, prompt: str, texts: Sequence[str]) -> list[np.ndarray | None]:
        keys = [_key(model, prompt, t) for t in texts]
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                rows = self._db.execute(
                    f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(part))})", part
                ).fetchall()
                found.update({k: np.frombuffer(v, dtype=np.float32) for k, v in rows})
        return [found.get(k) for k in keys]

    def put_many(self, model: str, prompt: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        rows = [
            (_key(model, prompt, t), int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes())
            for t, v in zip(texts, vectors, strict=True)
        ]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO emb (key, dim, vec) VALUES (?, ?, ?)", rows)
            self._db.commit()

    def encode(
        self, model: str, prompt: str, texts: Sequence[str], compute: Callable[[list[str]], np.ndarray]
    ) -> np.ndarray:
        """Cached rows where present; ``compute`` the missing ones (in one call) and store them."""
        cached = self.get_many(model, prompt, texts)
        missing = [i for i, v in enumerate(cached) if v is None]
        if missing:
            fresh = np.asarray(compute([texts[i] for i in missing]), dtype=np.float32)
            self.put_many(model, prompt, [texts[i] for i in missing], fresh)
            for i, v in zip(missing, fresh, strict=True):
                cached[i] = v
        return np.stack([v for v in cached if v is not None]) if texts else np.zeros((0, 0), np.float32)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM emb").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


_open: dict[Path, EmbeddingCache] = {}
_open_lock = threading.Lock()


def open_cache(folder: str | Path) -> EmbeddingCache:
    """One cache object per folder and process."""
    path = Path(folder).expanduser().resolve()
    with _open_lock:
        if path not in _open:
            _open[path] = EmbeddingCache(path)
        return _open[path]
