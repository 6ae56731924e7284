"""The models behind the service: the teacher for documents, the leaf for queries, each behind its own batcher.

Vectors come from the package's own :class:`~leaf_mongo.models.encoders.VectorEncoder` sides (``encode_document`` /
``encode_query`` with the prompts the spec records, on the configured backend), then the same MRL and dtype
steps as ingest (:mod:`leaf_mongo.spec.vectors`), so a served vector equals a stored one. At start the pair is
checked as ingest checks it (the leaf aligned to the teacher, same dimensions, same prompt) and both models are
loaded and run once, so the first request does not pay for loading.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from leaf_mongo.errors import SpecMismatchError
from leaf_mongo.models.encoders import SideEncoder, VectorEncoder, encode_lock
from leaf_mongo.models.layout import Task
from leaf_mongo.models.loading import is_router
from leaf_mongo.serve.batcher import Batcher
from leaf_mongo.serve.wire import EmbedJob, Limits, WireError, output_vectors
from leaf_mongo.spec.vectors import truncate_normalize

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from leaf_mongo.serve.config import ServeSettings
    from leaf_mongo.serve.metrics import ServeMetrics

INLINE_TOKENIZE_CHARS = 20_000  # below this, counting tokens on the event loop is cheaper than a thread hop


def route_tokenizer(side: SideEncoder) -> tuple[Tokenizer, int]:
    """A private copy of the route's fast tokenizer (no truncation, no padding) and its sequence limit.

    A copy, because the encoder's own tokenizer is in use by the encoding thread ("Already borrowed").
    """
    from tokenizers import Tokenizer

    source, limit = side.tokenizer_and_limit()
    tokenizer = Tokenizer.from_str(source.to_str())
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer, int(limit)


@dataclass
class Side:
    """One route of the pair, with its prompt, tokenizer and batcher."""

    task: Task
    encoder: SideEncoder
    prompt: str
    lock: Any
    tokenizer: Tokenizer | None = None
    max_tokens: int = 0
    batcher: Batcher | None = None

    def encode(self, texts: list[str]) -> np.ndarray:
        """Raw vectors of one model batch (runs in the batcher's thread)."""
        with self.lock:
            return self.encoder.encode(texts, self.prompt, batch_size=len(texts))

    def encode_now(self, texts: list[str]) -> np.ndarray | None:
        """Raw vectors if the model is free right now, else None (the caller must not block: the event loop)."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            return self.encoder.encode(texts, self.prompt, batch_size=len(texts))
        finally:
            self.lock.release()

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text as the model sees them (prompt and special tokens included), before truncation."""
        assert self.tokenizer is not None
        prompt = self.prompt
        if len(texts) == 1:  # a query: encode_batch would wake the tokenizer's thread pool for one text
            return [len(self.tokenizer.encode(prompt + texts[0]).ids)]
        return [len(e.ids) for e in self.tokenizer.encode_batch([prompt + t for t in texts])]


class Engine:
    """Turns an :class:`EmbedJob` into wire-dtype vectors and a token count."""

    def __init__(self, encoder: VectorEncoder, settings: ServeSettings, metrics: ServeMetrics) -> None:
        self.encoder, self.spec, self.settings, self.metrics = encoder, encoder.spec, settings, metrics
        self.limits = Limits(self.spec.full_dimensions, self.spec.dimensions, settings.max_inputs)
        docs, queries = encoder.documents, encoder.queries
        shared = docs.model_name == queries.model_name and docs.backend == queries.backend == "torch"
        shared = shared and not is_router(docs.model_name)  # a plain model serves both sides from one instance
        self.sides: dict[Task, Side] = {
            "document": Side("document", docs, self.spec.document_prompt, self._lock(docs, shared)),
            "query": Side("query", queries, encoder.query_prompt, self._lock(queries, shared)),
        }

    @staticmethod
    def _lock(side: SideEncoder, shared: bool) -> Any:
        return encode_lock(side.model_name) if shared else threading.Lock()

    def prepare(self) -> None:
        """Pair check (as ingest does), then load both routes, read their tokenizers and run them once."""
        self.encoder.check_query_model(load=True)
        for side in self.sides.values():
            dim = side.encoder.dimension
            if dim != self.spec.full_dimensions:
                raise SpecMismatchError(
                    f"the {side.task} model {side.encoder.model_name!r} produces {dim}-d vectors, but the pair is "
                    f"{self.spec.full_dimensions}-d: the two sides would not be comparable"
                )
            side.tokenizer, side.max_tokens = route_tokenizer(side.encoder)
            side.encode(["warm-up"])

    def describe(self) -> dict[str, Any]:
        """What /health and the startup line report (model names and backends; nothing secret)."""
        sides: dict[str, Any] = {
            t: {"model": s.encoder.model_name, "backend": s.encoder.backend, "max_tokens": s.max_tokens}
            for t, s in self.sides.items()
        }
        return {"dimensions": self.spec.full_dimensions, "default_dimensions": self.spec.dimensions, **sides}

    def start(self) -> None:
        """Start the batchers (inside the server's event loop)."""
        s = self.settings
        for task, side in self.sides.items():
            query = task == "query"
            side.batcher = Batcher(
                side.encode,
                max_batch_texts=s.query_batch if query else s.document_batch,
                max_batch_tokens=10**9 if query else s.document_batch_tokens,
                max_queued=s.query_queue if query else s.document_queue,
                window_s=s.query_window_ms / 1000 if query else 0.0,
                group_by_length=not query,  # queries stay first come, first served (latency)
                encode_now=side.encode_now if query else None,  # mongot's $vectorSearch: one query per request
                on_batch=self._observer(task),
                name=task,
            )
            side.batcher.start()

    def _observer(self, task: Task) -> Any:
        histogram, padded = self.metrics.batch_size.labels(task), self.metrics.padded_tokens.labels(task)

        def observe(texts: int, tokens: int) -> None:
            histogram.observe(texts)
            padded.inc(tokens)

        return observe

    async def stop(self) -> None:
        for side in self.sides.values():
            if side.batcher is not None:
                await side.batcher.stop()

    def queue_depth(self, task: Task) -> int:
        batcher = self.sides[task].batcher
        return batcher.queued if batcher else 0

    async def embed(self, job: EmbedJob, started: float) -> tuple[np.ndarray, int]:
        """Vectors in the job's dimensions and dtype, and the tokens embedded; raises the batcher's errors.

        ``started`` (``loop.time()`` when the request arrived) starts the side's deadline."""
        side = self.sides[job.side]
        assert side.batcher is not None
        if sum(map(len, job.texts)) <= INLINE_TOKENIZE_CHARS:
            counts = side.count_tokens(job.texts)
        else:
            counts = await asyncio.to_thread(side.count_tokens, job.texts)
        if not job.truncate:
            for i, n in enumerate(counts):
                if n > side.max_tokens:
                    raise WireError(
                        f"input[{i}] has {n} tokens but the {job.side} model reads at most {side.max_tokens}; "
                        "shorten it or send truncation: true"
                    )
        tokens = [min(n, side.max_tokens) for n in counts]
        deadline = self.settings.query_deadline_s if job.side == "query" else self.settings.document_deadline_s
        remaining = deadline - (asyncio.get_running_loop().time() - started)
        raw = await side.batcher.submit(job.texts, tokens, remaining)
        vectors = output_vectors(truncate_normalize(raw, job.dimensions), job.dtype, self.spec)
        return vectors, sum(tokens)
