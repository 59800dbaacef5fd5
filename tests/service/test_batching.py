"""The micro-batcher on its own: batch formation, bounded queue, cancellation, error isolation, draining."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from service.batching import BatcherClosed, MicroBatcher, QueueFull

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """A predict function that doubles its inputs and records each batch it was given."""

    def __init__(self, delay_s: float = 0.0, fail_on: object = None) -> None:
        self.batches: list[list[object]] = []
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, payloads: list[int]) -> list[int]:
        self.started.set()
        self.release.wait(10)
        time.sleep(self.delay_s)
        self.batches.append(list(payloads))
        if self.fail_on in payloads:
            raise ValueError(f"cannot take {self.fail_on}")
        return [p * 2 for p in payloads]


def make(predict, **kwargs) -> MicroBatcher:
    options = {"max_batch_size": 8, "max_wait_s": 0.2, "queue_limit": 100} | kwargs
    batcher = MicroBatcher("test", predict, **options)
    batcher.start()
    return batcher


async def submit_all(batcher: MicroBatcher, payloads: list[int], rows: int = 1) -> list[object]:
    results: list[object] = [None] * len(payloads)

    async def one(i: int) -> None:
        try:
            results[i] = await batcher.submit(payloads[i], rows)
        except Exception as exc:
            results[i] = exc

    async with anyio.create_task_group() as group:
        for i in range(len(payloads)):
            group.start_soon(one, i)
    return results


async def test_concurrent_requests_share_one_call_and_get_their_own_results() -> None:
    recorder = Recorder()
    batcher = make(recorder)
    try:
        assert await submit_all(batcher, list(range(6))) == [0, 2, 4, 6, 8, 10]
        assert recorder.batches == [[0, 1, 2, 3, 4, 5]]
    finally:
        batcher.close(5)


async def test_batches_are_capped_at_max_batch_size_rows() -> None:
    recorder = Recorder()
    batcher = make(recorder, max_batch_size=4)
    try:
        assert await submit_all(batcher, list(range(10))) == [i * 2 for i in range(10)]
        assert [len(b) for b in recorder.batches] == [4, 4, 2]
    finally:
        batcher.close(5)
    # A payload counts for its rows; one larger than the cap runs alone.
    recorder = Recorder()
    batcher = make(recorder, max_batch_size=4)
    try:
        await submit_all(batcher, [1, 2, 3], rows=3)
        assert [len(b) for b in recorder.batches] == [1, 1, 1]
        recorder.batches.clear()
        assert await batcher.submit(7, rows=50) == 14
    finally:
        batcher.close(5)


async def test_a_lone_request_waits_at_most_max_wait() -> None:
    batcher = make(Recorder(), max_wait_s=0.05)
    try:
        # A hang guard, not a latency bound: a lone request must not wait for a batch that never fills.
        with anyio.fail_after(30):
            assert await batcher.submit(1) == 2
    finally:
        batcher.close(5)


async def test_full_queue_refuses_at_once() -> None:
    recorder = Recorder()
    recorder.release.clear()  # hold the worker inside its first batch
    batcher = make(recorder, max_wait_s=0.0, queue_limit=2)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(batcher.submit, 1)
            await anyio.to_thread.run_sync(recorder.started.wait, 5)  # 1 is running, the queue is empty
            group.start_soon(batcher.submit, 2)
            group.start_soon(batcher.submit, 3)
            while batcher.depth < 2:
                await anyio.sleep(0.005)
            with pytest.raises(QueueFull):
                await batcher.submit(4)
            recorder.release.set()
        assert sorted(p for b in recorder.batches for p in b) == [1, 2, 3]
    finally:
        recorder.release.set()
        batcher.close(5)


async def test_a_cancelled_request_leaves_the_queue_and_is_never_run() -> None:
    recorder = Recorder()
    batcher = make(recorder, max_wait_s=0.5, max_batch_size=8)
    try:
        with anyio.move_on_after(0.1):
            await batcher.submit(99)
        assert batcher.depth == 0
        assert await batcher.submit(1) == 2
        assert recorder.batches == [[1]]
    finally:
        batcher.close(5)


class DepthLog:
    """An observer that keeps every queue depth reported and every rejection."""

    def __init__(self) -> None:
        self.depths: list[int] = []
        self.rejections: list[str] = []

    def queue_depth(self, name: str, depth: int) -> None:
        self.depths.append(depth)

    def queue_wait(self, name: str, seconds: float) -> None:
        pass

    def batch_done(self, name: str, rows: int, requests: int, seconds: float) -> None:
        pass

    def rejected(self, name: str, reason: str) -> None:
        self.rejections.append(reason)


async def test_the_reported_depth_drops_when_queued_requests_are_cancelled() -> None:
    recorder, log = Recorder(), DepthLog()
    recorder.release.clear()  # hold the worker inside its first batch, so the next requests stay queued
    batcher = make(recorder, max_wait_s=0.0, observer=log)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(batcher.submit, 1)
            await anyio.to_thread.run_sync(recorder.started.wait, 5)
            with anyio.move_on_after(0.2):  # two callers give up while queued
                async with anyio.create_task_group() as waiting:
                    waiting.start_soon(batcher.submit, 2)
                    waiting.start_soon(batcher.submit, 3)
            assert batcher.depth == 0
            assert log.rejections == ["cancelled", "cancelled"]
            assert max(log.depths) == 2 and log.depths[-1] == 0  # the metric says what the queue holds
            recorder.release.set()
        assert recorder.batches == [[1]]
    finally:
        recorder.release.set()
        batcher.close(5)


async def test_an_error_fails_only_its_own_request() -> None:
    recorder = Recorder(fail_on=3)
    batcher = make(recorder)
    try:
        results = await submit_all(batcher, [1, 2, 3, 4])
        assert results[:2] == [2, 4]
        assert isinstance(results[2], ValueError)
        assert results[3] == 8
        assert recorder.batches[0] == [1, 2, 3, 4]  # tried together, then one by one
    finally:
        batcher.close(5)


async def test_close_drains_queued_work_then_refuses() -> None:
    recorder = Recorder(delay_s=0.01)
    batcher = make(recorder, max_wait_s=5.0, max_batch_size=100)  # would wait 5 s for more if not closing
    async with anyio.create_task_group() as group:
        results: list[int] = []

        async def one(i: int) -> None:
            results.append(await batcher.submit(i))

        for i in range(5):
            group.start_soon(one, i)
        while batcher.depth < 5:
            await anyio.sleep(0.005)
        # Drained, not timed out: close() says whether every request was answered within its 60 s.
        assert await anyio.to_thread.run_sync(batcher.close, 60.0)
    assert sorted(results) == [0, 2, 4, 6, 8]
    with pytest.raises(BatcherClosed):
        await batcher.submit(1)


def test_limits_are_validated() -> None:
    for bad in ({"max_batch_size": 0}, {"max_wait_s": -1}, {"queue_limit": 0}):
        options = {"max_batch_size": 1, "max_wait_s": 0, "queue_limit": 1} | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            MicroBatcher("x", lambda p: p, **options)


async def test_a_lone_request_runs_at_once_when_nobody_else_is_coming() -> None:
    arrivals = {"pending": 0}
    batcher = make(Recorder(), max_wait_s=300.0, pending_arrivals=lambda: arrivals["pending"])
    try:
        with anyio.fail_after(60):  # did not wait out the 300 s window, however busy the machine
            assert await batcher.submit(1) == 2
        # While others are on their way, it waits for them (here: until the deadline).
        arrivals["pending"] = 3
        batcher.max_wait_s = 0.3
        started = time.monotonic()
        assert await batcher.submit(1) == 2
        assert time.monotonic() - started >= 0.25
    finally:
        batcher.close(5)


async def test_close_gives_up_on_a_stuck_worker_and_fails_the_queue() -> None:
    recorder = Recorder()
    recorder.release.clear()  # the first batch never finishes
    batcher = make(recorder, max_wait_s=0.0, max_batch_size=1)
    outcomes: list[object] = []

    async def one(i: int) -> None:
        try:
            outcomes.append(await batcher.submit(i))
        except BatcherClosed as exc:
            outcomes.append(exc)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(one, 1)
            await anyio.to_thread.run_sync(recorder.started.wait, 5)
            group.start_soon(one, 2)
            while batcher.depth < 1:
                await anyio.sleep(0.005)
            assert await anyio.to_thread.run_sync(batcher.close, 0.2) is False
            recorder.release.set()
        assert isinstance(outcomes[0], BatcherClosed)  # the queued one, failed by close
        assert outcomes[1] == 2  # the running one finished after all
    finally:
        recorder.release.set()


# Several payloads of one request (POST /classify/batch) -------------------------------------------


async def test_a_request_of_several_shares_forward_passes_with_single_requests() -> None:
    recorder = Recorder()
    recorder.release.clear()  # the first batch waits, so the next one forms from what arrives meanwhile
    batcher = make(recorder, max_batch_size=8, max_wait_s=0.05)
    try:
        async with anyio.create_task_group() as group:
            outcomes: dict[str, object] = {}

            async def single(name: str, payload: int) -> None:
                outcomes[name] = await batcher.submit(payload)

            async def many() -> None:
                outcomes["many"] = await batcher.submit_many([10, 11, 12])

            group.start_soon(single, "first", 1)
            await anyio.to_thread.run_sync(recorder.started.wait, 10)  # [1] is in the worker, held
            group.start_soon(many)
            await anyio.sleep(0.01)
            group.start_soon(single, "second", 2)
            await anyio.sleep(0.01)
            assert batcher.busy == 3  # three requests waiting or running, whatever their items
            recorder.release.set()
        assert outcomes == {"first": 2, "many": [20, 22, 24], "second": 4}
        assert recorder.batches == [[1], [10, 11, 12, 2]]  # the batch's items and the single request, one pass
        assert batcher.busy == 0
    finally:
        batcher.close(5)


async def test_each_item_gets_its_own_outcome_and_an_empty_request_none() -> None:
    batcher = make(Recorder(fail_on=3))
    try:
        outcomes = await batcher.submit_many([1, 3, 5])
        assert outcomes[0] == 2 and outcomes[2] == 10
        assert isinstance(outcomes[1], ValueError) and "cannot take 3" in str(outcomes[1])
        assert await batcher.submit_many([]) == []
    finally:
        batcher.close(5)


async def test_a_request_of_several_is_admitted_whole_or_not_at_all() -> None:
    recorder = Recorder()
    recorder.release.clear()
    batcher = make(recorder, max_batch_size=1, queue_limit=4)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(batcher.submit, 1)
            await anyio.to_thread.run_sync(recorder.started.wait, 10)  # running: the queue is empty
            group.start_soon(batcher.submit_many, [2, 3])
            await anyio.sleep(0.01)
            assert batcher.depth == 2
            with pytest.raises(QueueFull):
                await batcher.submit_many([4, 5, 6])  # 2 + 3 > 4: none of them is queued
            assert batcher.depth == 2
            recorder.release.set()
        # An empty queue takes a request larger than the limit, so that it can ever run.
        assert await batcher.submit_many(list(range(6))) == [0, 2, 4, 6, 8, 10]
    finally:
        batcher.close(5)


async def test_a_cancelled_request_of_several_leaves_the_queue() -> None:
    recorder = Recorder()
    recorder.release.clear()
    batcher = make(recorder, max_batch_size=1)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(batcher.submit, 1)
            await anyio.to_thread.run_sync(recorder.started.wait, 10)
            with anyio.move_on_after(0.05):
                await batcher.submit_many([2, 3, 4])
            assert batcher.depth == 0 and batcher.busy == 1  # only the running request is left
            recorder.release.set()
        assert recorder.batches == [[1]]
    finally:
        batcher.close(5)
