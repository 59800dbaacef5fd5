"""The engine behind the app: batching proven on concurrent requests, overload (503), timeout (504), drain.

Requests run concurrently through the real ASGI app (httpx's ASGI transport), with the app's lifespan
entered by hand so that the models are loaded exactly as in production.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.engine import Engine
from tests.service.support import (
    decode_png,
    expected_images,
    expected_p_real,
    expected_verdict,
    make_detector,
    make_discriminator,
    make_generator,
    metric,
    png_bytes,
    sample_pixels,
    settings_for,
    write_weights,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def serving(weights: Path, **overrides: object) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings_for(weights, **overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield app, client


async def gather(*calls) -> list:
    results: list = [None] * len(calls)

    async def run(i: int) -> None:
        results[i] = await calls[i]()

    async with anyio.create_task_group() as group:
        for i in range(len(calls)):
            group.start_soon(run, i)
    return results


async def test_concurrent_generate_requests_are_batched_and_each_gets_its_own_image(weights_dir) -> None:
    # A long batch window, so that the concurrent requests certainly meet in the queue.
    async with serving(weights_dir, max_batch_size=64, batch_timeout_ms=300) as (_, client):
        cases = [(seed, seed % 10, 1 + seed % 3) for seed in range(100, 112)]  # (seed, label, n)
        responses = await gather(
            *[
                lambda s=s, y=y, n=n: client.get("/generate", params={"seed": s, "label": y, "n": n, "format": "json"})
                for s, y, n in cases
            ]
        )
        generator = make_generator()
        for (seed, label, n), response in zip(cases, responses, strict=True):
            assert response.status_code == 200
            body = response.json()
            assert (body["seed"], body["label"]) == (seed, label)
            got = np.stack([decode_png(base64.b64decode(i)) for i in body["images"]])
            np.testing.assert_array_equal(got, expected_images(generator, [seed + i for i in range(n)], label))
        text = (await client.get("/metrics")).text
        batches = metric(text, "fgan_engine_batch_size_count", model="generator")
        rows = metric(text, "fgan_engine_batch_size_sum", model="generator")
        # The 12 requests (24 images) ran in fewer than 12 forward passes (the warm-up bypasses the queue).
        assert rows == sum(n for _, _, n in cases)
        assert 1 <= batches < 12
        assert metric(text, "fgan_engine_batch_requests_bucket", model="generator", le="1.0") < batches


async def test_concurrent_requests_with_different_truncations_each_get_their_own(weights_dir) -> None:
    async with serving(weights_dir, max_batch_size=64, batch_timeout_ms=300) as (_, client):
        cases = [(seed, psi) for seed in (7, 8) for psi in (1.0, 0.9, 0.5, 0.05)]  # (seed, psi)
        responses = await gather(
            *[
                lambda s=s, psi=psi: client.get("/generate", params={"seed": s, "label": 4, "truncation": psi})
                for s, psi in cases
            ]
        )
        generator = make_generator()
        for (seed, psi), response in zip(cases, responses, strict=True):
            assert response.status_code == 200
            assert response.headers["x-truncation"] == repr(psi)
            np.testing.assert_array_equal(decode_png(response.content), expected_images(generator, [seed], 4, psi)[0])
        text = (await client.get("/metrics")).text
        assert metric(text, "fgan_engine_batch_size_count", model="generator") < len(cases)  # they met in batches


async def test_concurrent_classify_requests_are_batched_with_and_without_labels(tmp_path) -> None:
    weights = write_weights(tmp_path, detector=make_detector())
    detector, discriminator = make_detector(), make_discriminator()
    async with serving(weights, max_batch_size=64, batch_timeout_ms=300) as (_, client):
        images = [sample_pixels(seed) for seed in range(12)]
        # (model, label): the detector with and without labels in one batch window, and the discriminator.
        cases = [("detector", None), ("detector", 3), ("discriminator", 5)] * 4

        def call(i: int):
            model, label = cases[i]
            fields = {"model": model} | ({} if label is None else {"label": str(label)})
            return lambda: client.post("/classify", files={"image": ("x.png", png_bytes(images[i]))}, data=fields)

        responses = await gather(*[call(i) for i in range(len(cases))])
        for i, ((model, label), response) in enumerate(zip(cases, responses, strict=True)):
            network = detector if model == "detector" else discriminator
            assert response.status_code == 200, response.text
            assert response.json() == expected_verdict(expected_p_real(network, images[i], label))
        text = (await client.get("/metrics")).text
        for model in ("detector", "discriminator"):
            batches = metric(text, "fgan_engine_batch_size_count", model=model)
            assert 1 <= batches < 8, model


@pytest.fixture
def gate(monkeypatch) -> threading.Event:
    """Holds the engine worker's generator batches until set: a model as slow as the test wants."""
    gate = threading.Event()
    predict = Engine._predict_generate

    def held(self, jobs):
        if threading.current_thread().name.startswith("batcher-"):  # not the warm-up
            gate.wait(10)
        return predict(self, jobs)

    monkeypatch.setattr(Engine, "_predict_generate", held)
    yield gate
    gate.set()


async def wait_for(condition, timeout_s: float = 5.0) -> None:
    with anyio.fail_after(timeout_s):
        while not condition():
            await anyio.sleep(0.005)


async def test_full_queue_answers_503_with_retry_after(weights_dir, gate) -> None:
    async with serving(weights_dir, queue_limit=1, max_batch_size=1) as (app, client):
        batcher = app.state.engine.batchers[0]
        answers: list[httpx.Response] = []

        async def call(seed: int) -> None:
            answers.append(await client.get(f"/generate?seed={seed}&label=1"))

        async with anyio.create_task_group() as group:
            group.start_soon(call, 1)
            await wait_for(lambda: batcher.busy == 1 and batcher.depth == 0)  # running, held by the gate
            group.start_soon(call, 2)
            await wait_for(lambda: batcher.depth == 1)  # waiting: the queue is full
            response = await client.get("/generate?seed=3&label=1")
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert "queue is full" in response.json()["detail"]
            gate.set()
        assert [a.status_code for a in answers] == [200, 200]
        text = (await client.get("/metrics")).text
        assert metric(text, "fgan_engine_rejected_total", model="generator", reason="queue_full") == 1
        assert metric(text, "fgan_http_requests_total", route="/generate", method="GET", status="503") == 1


async def test_request_past_its_timeout_gets_504_and_leaves_the_queue(weights_dir, gate) -> None:
    async with serving(weights_dir, request_timeout_s=0.3, max_batch_size=1) as (app, client):
        batcher = app.state.engine.batchers[0]
        answers: list[httpx.Response] = []

        async def call(seed: int) -> None:
            answers.append(await client.get(f"/generate?seed={seed}&label=1"))

        started = time.monotonic()
        async with anyio.create_task_group() as group:
            group.start_soon(call, 1)  # runs, and is held past its deadline
            await wait_for(lambda: batcher.busy == 1 and batcher.depth == 0)
            group.start_soon(call, 2)  # waits in the queue past its deadline
        assert time.monotonic() - started < 60  # a hang guard: both were answered at their deadline, not held
        assert [a.status_code for a in answers] == [504, 504]
        assert "0.3s" in answers[1].json()["detail"]
        assert answers[1].headers["x-request-id"]
        assert batcher.depth == 0  # the queued one was dropped, not left to run
        gate.set()
        await wait_for(lambda: batcher.busy == 0)
        text = (await client.get("/metrics")).text
        assert metric(text, "fgan_engine_batch_size_count", model="generator") == 1  # only the first ran
        assert metric(text, "fgan_engine_rejected_total", model="generator", reason="cancelled") == 1
        assert metric(text, "fgan_http_requests_total", route="/generate", method="GET", status="504") == 2


async def test_shutdown_drains_queued_requests_and_refuses_new_ones(weights_dir, gate) -> None:
    app = create_app(settings_for(weights_dir, max_batch_size=1))
    answers: list[httpx.Response] = []
    during_shutdown: list[httpx.Response] = []

    async def call(client: httpx.AsyncClient, seed: int) -> None:
        answers.append(await client.get(f"/generate?seed={seed}&label=2"))

    async def release_later(client: httpx.AsyncClient) -> None:
        await wait_for(lambda: not app.state.engine.batchers[0].accepting)  # shutdown has begun
        during_shutdown.append(await client.get("/generate?seed=9&label=2"))
        gate.set()

    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://service") as client,
        anyio.create_task_group() as group,
    ):
        async with app.router.lifespan_context(app):
            for seed in range(4):
                group.start_soon(call, client, seed)
            batcher = app.state.engine.batchers[0]
            await wait_for(lambda: (batcher.busy, batcher.depth) == (4, 3))  # 1 running (held), 3 queued
            group.start_soon(release_later, client)
        # The lifespan has exited: everything queued ran before the engine stopped.
        assert app.state.engine is None
    assert [a.status_code for a in answers] == [200] * 4
    expected = expected_images(make_generator(), list(range(4)), 2)
    for answer in answers:
        assert any(np.array_equal(decode_png(answer.content), image) for image in expected)
    assert during_shutdown[0].status_code == 503
    assert "shutting down" in during_shutdown[0].json()["detail"]
