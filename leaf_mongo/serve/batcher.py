"""Dynamic batching for one side (queries or documents): concurrent requests share model batches.

Why: a transformer forward pass over 32 texts costs far less than 32 passes over one, and mongot sends one query
per ``$vectorSearch`` while several callers query at once. Pieces (one text each) wait in one FIFO queue; the
worker takes as many as fit one model batch (a count, and a padded-token budget: longest x count) and runs them
in a worker thread, so the event loop keeps accepting requests meanwhile. While a batch runs, new pieces queue
up and form the next one: under load batches grow by themselves, and a lone request never waits (``window_s``
adds an optional wait for more). Each request's pieces are queued longest first, so one big document request is
encoded in length-sorted batches, as sentence-transformers' own ``encode`` would. With ``group_by_length``
(documents) a batch is the oldest piece plus the longest other queued pieces, from every request: concurrent
requests (mongot sends several batches at once) are merged into length-sorted batches as if they were one, and the
oldest piece still leaves with the next batch. Taken in FIFO order instead, the shortest texts of one request rode
with the longest of the next: 8 % more padded tokens on the service benchmark's documents than raw ``encode``.

Back-pressure: the queue is bounded (:class:`QueueFull` -> 429); a request that outlives its deadline is
dropped from the queue (:class:`DeadlineExceeded`) instead of being encoded for a client that gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
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
        group_by_length: bool = False,
        encode_now: Callable[[list[str]], np.ndarray | None] | None = None,
        inline_max_texts: int = 1,
        on_batch: BatchHook | None = None,
        name: str = "encode",
    ) -> None:
        self._encode, self.max_batch_texts, self.max_batch_tokens = encode, max_batch_texts, max_batch_tokens
        self.max_queued, self.window_s, self._on_batch = max_queued, window_s, on_batch
        self.group_by_length, self._encode_now, self.inline_max_texts = group_by_length, encode_now, inline_max_texts
        self._busy = False  # a model batch is running (in the worker thread or inline)
        self._last_batch = 0  # texts in the last model batch: more than 1 means load, when batching pays
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
        if self._inline_allowed(texts):
            vectors = await self._try_inline(texts, tokens, timeout)
            if vectors is not None:
                return vectors
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

    def _inline_allowed(self, texts: Sequence[str]) -> bool:
        """Idle and unloaded: nothing running or queued, and the last batch was a lone text (under load batches
        grow, and a text run inline would hold the event loop while the others wait to be batched)."""
        small = len(texts) <= self.inline_max_texts and self._last_batch <= 1
        return self._encode_now is not None and small and not (self._busy or self._queue)

    async def _try_inline(self, texts: Sequence[str], tokens: Sequence[int], timeout: float) -> np.ndarray | None:
        """A lone small request on an idle side: encoded on the event loop's thread, which has nothing else to do,
        sparing the two thread hops to the worker and back. One loop turn first, so that requests read together
        queue up and batch instead; requests arriving during the encode wait in their sockets for this one short
        batch. None (queue it) if others queued meanwhile or the model is busy elsewhere (``encode_now`` does
        not wait: a model shared with the other side)."""
        assert self._encode_now is not None
        self._busy = True
        try:
            await asyncio.sleep(0)
        finally:
            self._busy = False
        if self._queue:
            return None
        started = time.monotonic()
        self._busy = True
        try:
            vectors = self._encode_now(list(texts))
        finally:
            self._busy = False
        if vectors is None:
            return None
        self._last_batch = len(texts)
        if self._on_batch is not None:
            self._on_batch(len(texts), max(tokens) * len(texts))
        if time.monotonic() - started > timeout:  # a late vector: answered as a queued request would be
            raise DeadlineExceeded(f"no vectors within the {timeout:g} s deadline")
        return vectors

    def _take(self) -> list[_Piece]:
        """The next model batch: queued pieces in order, while the count and padded-token budget allow."""
        if self.group_by_length:
            return self._take_grouped()
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

    def _take_grouped(self) -> list[_Piece]:
        """The oldest piece (so none waits forever) and the longest other queued pieces (oldest first among equals),
        as many as the count and padded-token budget allow: the queue is encoded in length order, whichever
        requests its pieces came from."""
        while self._queue and self._queue[0].job.future.done():
            self._queue.popleft()
        if not self._queue:
            return []
        head = self._queue[0]
        live = (p for p in itertools.islice(self._queue, 1, None) if not p.job.future.done())
        others = heapq.nlargest(self.max_batch_texts - 1, live, key=lambda p: p.tokens)
        batch = [head]
        for piece in others:  # longest first: the width only grows with the first of them
            if max(head.tokens, others[0].tokens) * (len(batch) + 1) > self.max_batch_tokens:
                break
            batch.append(piece)
        taken = {id(p) for p in batch}
        self._queue = deque(p for p in self._queue if id(p) not in taken and not p.job.future.done())
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
            self._busy = True
            try:
                vectors = await loop.run_in_executor(self._executor, self._encode, texts)
            except Exception as exc:  # a model failure fails the requests of this batch, not the server
                for p in batch:
                    if not p.job.future.done():
                        p.job.future.set_exception(exc)
                continue
            finally:
                self._busy, self._last_batch = False, len(batch)
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
