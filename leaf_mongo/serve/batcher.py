"""Dynamic batching for one side (queries or documents): concurrent requests share model batches.

Why: a transformer forward pass over 32 texts costs far less than 32 passes over one, and mongot sends one query
per ``$vectorSearch`` while several callers query at once. Pieces (one text each) wait in one FIFO queue; the
worker takes as many as fit one model batch (a count, and a padded-token budget: longest x count) and runs them
in a worker thread, so the event loop keeps accepting requests meanwhile. While a batch runs, new pieces queue
up and form the next one: under load batches grow by themselves, and a lone request never waits (``window_s``
adds an optional wait for more). Each request's pieces are queued longest first, so one big document request is
encoded in length-sorted batches, as sentence-transformers' own ``encode`` would.

Back-pressure: the queue is bounded (:class:`QueueFull` -> 429); a request that outlives its deadline is
dropped from the queue (:class:`DeadlineExceeded`) instead of being encoded for a client that gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np


class QueueFull(Exception):
    """The side's queue is full: the client should retry later (HTTP 429)."""


class DeadlineExceeded(Exception):
    """The request's deadline passed before its vectors were made."""


@dataclass(eq=False)
class _Job:
    texts: Sequence[str]
    future: asyncio.Future[np.ndarray]
    rows: list[np.ndarray | None] = field(default_factory=list)
    left: int = 0


@dataclass(frozen=True)
class _Piece:
    job: _Job
    index: int
    tokens: int


BatchHook = Callable[[int, int], None]
"""Called after each model batch with (texts, padded tokens), e.g. for metrics."""


class Batcher:
    """Coalesces the texts of concurrent requests into model batches of ``encode`` (a blocking function)."""

    def __init__(
        self,
        encode: Callable[[list[str]], np.ndarray],
        *,
        max_batch_texts: int,
        max_batch_tokens: int,
        max_queued: int,
        window_s: float = 0.0,
        on_batch: BatchHook | None = None,
        name: str = "encode",
    ) -> None:
        self._encode, self.max_batch_texts, self.max_batch_tokens = encode, max_batch_texts, max_batch_tokens
        self.max_queued, self.window_s, self._on_batch = max_queued, window_s, on_batch
        self._queue: deque[_Piece] = deque()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"leaf-serve-{name}")
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Texts waiting for a model batch (a gauge for /metrics)."""
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop after the batch in progress; requests still queued fail (the server drains requests first)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for piece in self._queue:
            if not piece.job.future.done():
                piece.job.future.set_exception(DeadlineExceeded("the server is shutting down"))
        self._queue.clear()
        self._executor.shutdown(wait=True)

    async def submit(self, texts: Sequence[str], tokens: Sequence[int], timeout: float) -> np.ndarray:
        """Vectors for ``texts`` (rows in input order); ``tokens`` are their lengths after truncation."""
        if self._queue and len(self._queue) + len(texts) > self.max_queued:
            raise QueueFull(f"{len(self._queue)} texts are already waiting (limit {self.max_queued})")
        loop = asyncio.get_running_loop()
        job = _Job(texts, loop.create_future(), [None] * len(texts), len(texts))
        for i in sorted(range(len(texts)), key=lambda i: -tokens[i]):
            self._queue.append(_Piece(job, i, tokens[i]))
        self._wakeup.set()
        try:
            return await asyncio.wait_for(job.future, timeout)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"no vectors within the {timeout:g} s deadline") from None

    def _take(self) -> list[_Piece]:
        """The next model batch: queued pieces in order, while the count and padded-token budget allow."""
        batch: list[_Piece] = []
        longest = 0
        while self._queue and len(batch) < self.max_batch_texts:
            piece = self._queue[0]
            if piece.job.future.done():  # timed out, cancelled or failed: nobody wants its vectors
                self._queue.popleft()
                continue
            wider = max(longest, piece.tokens)
            if batch and wider * (len(batch) + 1) > self.max_batch_tokens:
                break
            batch.append(self._queue.popleft())
            longest = wider
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self.window_s > 0 and len(self._queue) < self.max_batch_texts:
                await asyncio.sleep(self.window_s)
            batch = self._take()
            if not batch:
                continue
            texts = [p.job.texts[p.index] for p in batch]
            try:
                vectors = await loop.run_in_executor(self._executor, self._encode, texts)
            except Exception as exc:  # a model failure fails the requests of this batch, not the server
                for p in batch:
                    if not p.job.future.done():
                        p.job.future.set_exception(exc)
                continue
            if self._on_batch is not None:
                self._on_batch(len(batch), max(p.tokens for p in batch) * len(batch))
            self._deliver(batch, vectors)

    @staticmethod
    def _deliver(batch: list[_Piece], vectors: np.ndarray) -> None:
        for p, row in zip(batch, vectors, strict=True):
            job = p.job
            if job.future.done():
                continue
            job.rows[p.index] = row
            job.left -= 1
            if job.left == 0:
                job.future.set_result(np.stack(job.rows))  # type: ignore[arg-type]
