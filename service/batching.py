"""A micro-batcher: collects concurrent requests into one model call, run in a worker thread.

The contract (after LitServe's): requests are decoded on the event loop,
batched here, predicted in one call, and each gets its own result back. Three
things it does that a naive batcher does not:

- The queue is bounded. When it is full, ``submit`` fails at once with
  ``QueueFull`` (the service answers 503 + Retry-After) instead of piling up.
- A request whose caller stops waiting (its deadline passed, the client went
  away) is taken out of the queue, so it costs no inference.
- An exception in a batch is retried item by item, so one bad request fails
  alone instead of failing everyone it was batched with.
- A request may bring several payloads at once (``submit_many``: the images of
  one /classify/batch request). Each is its own item in the queue, so they fill
  forward passes together with other requests' items; they are admitted all
  together or not at all, and each gets its own outcome.

Timing uses the monotonic clock. A batch is formed from the oldest waiting
request: it runs when ``max_batch_size`` rows are waiting, or when the oldest has
waited ``max_wait_s``, whichever comes first. Requests that arrive while a
batch runs simply form the next one.

Waiting for the deadline only pays when more requests are on their way. Given a
``pending_arrivals`` callable (how many requests that could still join are in
the server but not yet queued), the batcher runs early once that is zero and the
event loop has caught up with its ready work (a callback queued behind each
submission has run, so requests already read from the sockets have reached the
queue). A lone request does not wait out the deadline; a burst forms one batch.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

log = logging.getLogger("service.batching")

In = TypeVar("In")
Out = TypeVar("Out")


class QueueFull(Exception):
    """The queue holds ``queue_limit`` requests already."""


class BatcherClosed(Exception):
    """The batcher is stopping or stopped and takes no new work."""


class BatchObserver(Protocol):
    """How a batcher reports what it does (the service's metrics implement this)."""

    def queue_depth(self, name: str, depth: int) -> None: ...

    def queue_wait(self, name: str, seconds: float) -> None: ...

    def batch_done(self, name: str, rows: int, requests: int, seconds: float) -> None: ...

    def rejected(self, name: str, reason: str) -> None: ...


class _NullObserver:
    def queue_depth(self, name: str, depth: int) -> None:
        pass

    def queue_wait(self, name: str, seconds: float) -> None:
        pass

    def batch_done(self, name: str, rows: int, requests: int, seconds: float) -> None:
        pass

    def rejected(self, name: str, reason: str) -> None:
        pass


@dataclass(eq=False)
class _Job(Generic[In, Out]):
    payload: In
    rows: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Out]
    owner: object  # the request it belongs to: what ``busy`` counts (a submit_many's items share one)
    enqueued: float = field(default_factory=time.monotonic)


def _resolve(future: asyncio.Future, result: object, error: BaseException | None) -> None:
    # Runs on the event loop. The future may have been cancelled meanwhile (caller timed out).
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class MicroBatcher(Generic[In, Out]):
    """Runs ``predict(payloads) -> results`` on batches of concurrently submitted payloads.

    Args:
        name: label for logs and metrics (e.g. "generator").
        predict: called in the worker thread with a list of payloads; returns one result per payload,
            in order. It may raise; see the module docstring.
        max_batch_size: most rows per call (a payload may count for several rows, e.g. n images).
            A single payload larger than this still runs, alone.
        max_wait_s: longest the oldest request waits for others, in seconds.
        queue_limit: most requests waiting (not yet in a running batch).
        observer: receives queue depth, queue wait, batch sizes and rejections.
        pending_arrivals: returns how many requests may still join (see the module docstring);
            None: unknown, always wait up to ``max_wait_s`` for a full batch.
    """

    def __init__(
        self,
        name: str,
        predict: Callable[[list[In]], Sequence[Out]],
        *,
        max_batch_size: int,
        max_wait_s: float,
        queue_limit: int,
        observer: BatchObserver | None = None,
        pending_arrivals: Callable[[], int] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        if queue_limit < 1:
            raise ValueError(f"queue_limit must be >= 1, got {queue_limit}")
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.queue_limit = queue_limit
        self._predict = predict
        self._observer: BatchObserver = observer or _NullObserver()
        self._pending_arrivals = pending_arrivals
        self._submitted = 0  # submissions so far
        self._loop_seen = 0  # submissions the event loop has caught up with (see _caught_up)
        self._queue: collections.deque[_Job[In, Out]] = collections.deque()
        self._queued_rows = 0
        # Requests with an item waiting or being predicted -> how many of their items are (see ``busy``).
        self._owners: collections.Counter[object] = collections.Counter()
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    # Lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is not None:
            raise RuntimeError(f"batcher {self.name} already started")
        self._thread = threading.Thread(target=self._work, name=f"batcher-{self.name}", daemon=True)
        self._thread.start()

    def close(self, timeout: float | None = None) -> bool:
        """Stop taking work, finish what is queued or running, and stop the worker.

        Returns False when the worker did not finish within ``timeout`` seconds; the requests
        still queued then are failed with BatcherClosed.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return True
        with self._cond:
            abandoned = list(self._queue)
            self._queue.clear()
            self._queued_rows = 0
            self._release(abandoned)
        for job in abandoned:
            job.loop.call_soon_threadsafe(_resolve, job.future, None, BatcherClosed(f"{self.name} stopped"))
        log.warning("batcher %s: still busy after %ss; %d queued requests dropped", self.name, timeout, len(abandoned))
        return False

    @property
    def accepting(self) -> bool:
        return self._thread is not None and not self._closing

    @property
    def depth(self) -> int:
        """Requests waiting in the queue."""
        return len(self._queue)

    @property
    def busy(self) -> int:
        """Requests with an item waiting or being predicted (the items of one ``submit_many`` count once)."""
        return len(self._owners)

    def _release(self, jobs: list[_Job[In, Out]]) -> None:
        """Count ``jobs`` as no longer waiting or running (called holding the lock)."""
        for job in jobs:
            self._owners[job.owner] -= 1
            if self._owners[job.owner] <= 0:
                del self._owners[job.owner]

    # Submitting ----------------------------------------------------------------------------------

    async def submit(self, payload: In, rows: int = 1) -> Out:
        """Queue one payload and wait for its result.

        Raises QueueFull when the queue is full, BatcherClosed when stopping, and whatever
        ``predict`` raised for this payload. Cancelling the caller (e.g. a timeout) removes the
        payload from the queue if it has not started running.
        """
        job = self._enqueue([payload], rows)[0]
        try:
            return await job.future
        except asyncio.CancelledError:
            self._withdraw([job])
            raise

    async def submit_many(self, payloads: Sequence[In]) -> list[Out | BaseException]:
        """Queue several one-row payloads of one request together, and wait for all their outcomes.

        Each is its own item: items of other requests may share its forward pass, and an exception
        ``predict`` raised for one is returned in its place, not raised. All are admitted or none:
        QueueFull unless the queue has room for every one (an empty queue takes any number), and
        BatcherClosed when stopping. Cancelling the caller removes the items not yet running.
        """
        if not payloads:
            return []
        jobs = self._enqueue(payloads, 1)
        try:
            await asyncio.wait([job.future for job in jobs])
        except asyncio.CancelledError:
            self._withdraw(jobs)
            raise
        return [job.future.exception() or job.future.result() for job in jobs]

    def _enqueue(self, payloads: Sequence[In], rows: int) -> list[_Job[In, Out]]:
        loop = asyncio.get_running_loop()
        owner = object()
        jobs = [_Job(payload, rows, loop, loop.create_future(), owner) for payload in payloads]
        with self._cond:
            if not self.accepting:
                raise BatcherClosed(f"{self.name} is not accepting requests")
            waiting = len(self._queue)
            if waiting and waiting + len(jobs) > self.queue_limit:  # an empty queue takes any number
                self._observer.rejected(self.name, "queue_full")
                raise QueueFull(f"{self.name} queue is full ({self.queue_limit} waiting)")
            self._queue.extend(jobs)
            self._queued_rows += rows * len(jobs)
            self._owners[owner] += len(jobs)
            self._submitted += 1
            ticket = self._submitted
            self._report_depth()
            self._cond.notify()
        if self._pending_arrivals is not None:
            # Runs after the callbacks already ready on the loop, e.g. other requests' first steps.
            loop.call_soon(self._caught_up, ticket)
        return jobs

    def _withdraw(self, jobs: list[_Job[In, Out]]) -> None:
        """Take a cancelled request's items out of the queue (those already in a batch run, unanswered)."""
        with self._cond:
            removed = []
            for job in jobs:
                try:
                    self._queue.remove(job)
                except ValueError:
                    continue  # already taken into a batch: its result will be discarded
                removed.append(job)
                self._queued_rows -= job.rows
            if removed:
                self._release(removed)
                self._observer.rejected(self.name, "cancelled")
                self._report_depth()

    def _report_depth(self) -> None:
        """Tell the observer the queue's depth. Called holding the lock, at every change, so that reports
        arrive in the order of the changes and the last one is the depth now (a cancelled request included)."""
        self._observer.queue_depth(self.name, len(self._queue))

    def _caught_up(self, ticket: int) -> None:
        with self._cond:
            if ticket > self._loop_seen:
                self._loop_seen = ticket
                self._cond.notify()

    def _nobody_else_coming(self) -> bool:
        """True when waiting longer cannot grow the batch: the loop has queued what it had, and no
        other request is in the server (requires ``pending_arrivals``)."""
        return (
            self._pending_arrivals is not None and self._loop_seen >= self._submitted and self._pending_arrivals() <= 0
        )

    # Worker --------------------------------------------------------------------------------------

    def _take_batch(self) -> list[_Job[In, Out]] | None:
        """Block until a batch is due; return it (None when closing and nothing is left)."""
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            # Wait for more rows until the oldest request's deadline (no waiting while draining).
            deadline = self._queue[0].enqueued + self.max_wait_s
            while self._queued_rows < self.max_batch_size and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._nobody_else_coming():
                    break
                # Woken by each arrival and each catch-up of the loop, so the checks rerun for each.
                self._cond.wait(remaining)
                if not self._queue:  # everything waiting was cancelled
                    return []
            batch = [self._queue.popleft()]
            rows = batch[0].rows
            while self._queue and rows + self._queue[0].rows <= self.max_batch_size:
                job = self._queue.popleft()
                batch.append(job)
                rows += job.rows
            self._queued_rows -= rows
            self._report_depth()
        return batch

    def _work(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            if batch:
                self._serve(batch)

    def _serve(self, batch: list[_Job[In, Out]]) -> None:
        """Predict one batch and hand each request its own outcome."""
        started = time.monotonic()
        try:
            for job in batch:
                self._observer.queue_wait(self.name, started - job.enqueued)
            outcomes = self._run(batch)
            self._observer.batch_done(self.name, sum(job.rows for job in batch), len(batch), time.monotonic() - started)
        except Exception as exc:  # a bug outside predict (an observer, say): fail this batch, keep the worker
            log.exception("batcher %s: batch failed", self.name)
            outcomes = [(None, exc)] * len(batch)
        finally:
            with self._cond:
                self._release(batch)
        # Hand results back: one wake-up per event loop, not per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, object, BaseException | None]]] = {}
        for job, (result, error) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job, result, error))
        for loop, items in by_loop.items():
            # RuntimeError: that loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve_all, items)

    def _run(self, batch: list[_Job[In, Out]]) -> list[tuple[Out | None, BaseException | None]]:
        """Predict the batch; on failure, retry each request alone so the error stays with its owner."""
        try:
            results = self._predict([job.payload for job in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: predict returned {len(results)} results for {len(batch)} inputs")
            return [(result, None) for result in results]
        except Exception as exc:
            if len(batch) == 1:
                log.error("batcher %s: request failed", self.name, exc_info=exc)
                return [(None, exc)]
        outcomes: list[tuple[Out | None, BaseException | None]] = []
        for job in batch:
            outcomes.extend(self._run([job]))
        return outcomes


def _resolve_all(items: list[tuple[_Job, object, BaseException | None]]) -> None:
    for job, result, error in items:
        _resolve(job.future, result, error)
