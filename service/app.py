"""Assembly of the FastAPI application: settings, lifespan (load, warm up, drain), routes, middleware."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

import models
from service import resources
from service.engine import Engine
from service.errors import install_error_handlers
from service.limits import RequestLimitsMiddleware, batch_too_large_message
from service.loading import (
    StartupError,
    classifier_names,
    configure_torch,
    has_translator,
    load_models,
    resolve_device,
)
from service.observability import InFlight, Metrics, RequestMiddleware, StartupErrorMiddleware
from service.openapi import install_openapi
from service.routes import classify, docs, explain, generate, health, meta, translate
from service.routes.meta import package_version
from service.routes.page import PageMiddleware
from service.security import ApiKeyMiddleware
from service.settings import Settings, get_settings

log = logging.getLogger("service")

DESCRIPTION = """\
Generate Fashion-MNIST images of a chosen class with a conditional GAN, and tell real images from generated ones.

- `GET /generate?label=3` → a 28×28 PNG (`seed`, `n`, `scale`, `truncation`, `format=json` options).
- `POST /classify` with a multipart `image` file and a `label` field → `{"label": "real" | "fake", "confidence": c}`.
- `POST /explain`, the same form → a PNG of the image with a GradCAM heatmap of what pushed it toward "fake".
- `POST /classify/batch` with up to 64 `image` files (and as many `label` fields, in order, or none) →
  `{"results": [...]}`, one verdict (as `/classify` gives it) or one `{"error", "detail"}` per image, in order.
- `POST /translate` with a multipart `image` file, a sketch → a 28×28 PNG of the garment a pix2pix model draws
  from it (`scale`, `invert` options).
- `GET /` → a web page to generate, classify, explain and draw sketches in a browser.

Every error is JSON `{"error": code, "detail": message}` saying what was wrong and what is accepted.
"""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    try:
        device = resolve_device(settings.device)
        # One batcher per model runs forward passes side by side: the budget is split between them. Set before
        # any torch work, since a thread keeps the thread count it first computed with.
        budget = resources.cpu_budget()
        batchers = 1 + len(classifier_names(settings.weights_dir)) + has_translator(settings.weights_dir)
        plan = resources.plan_threads(budget, batchers, settings.torch_threads)
        configure_torch(plan.threads)
        model_set = await anyio.to_thread.run_sync(load_models, settings.weights_dir, device)
        decoders = resources.decode_slots(budget)
        need = resources.memory_need(
            resources.resident_bytes() or 0, settings.upload_memory_bytes, decoders, settings.max_image_pixels
        )
        if (problem := resources.check_memory(need, resources.cgroup_memory_limit())) is not None:
            raise StartupError(problem)
    except (models.CheckpointError, StartupError) as exc:
        # One clear line; StartupErrorMiddleware keeps uvicorn from adding the traceback.
        app.state.startup_error = str(exc)
        log.error("cannot start: %s", exc)
        raise
    engine = Engine(
        model_set,
        settings,
        observer=metrics,
        requests_in_flight=app.state.in_flight,
        slots=resources.ComputeSlots(plan.passes, plan.threads),
    )
    engine.start()
    app.state.decoders = anyio.CapacityLimiter(decoders)
    app.state.engine = engine
    app.state.not_ready_reason = "warming up the models"
    warmup = asyncio.create_task(_warm_up(app, engine), name="warmup")
    log.info(
        "serving on %s with torch threads=%d (%s), max batch %d, batch timeout %gms, queue limit %d",
        device,
        plan.threads,
        plan.describe(),
        settings.max_batch_size,
        settings.batch_timeout_ms,
        settings.queue_limit,
    )
    try:
        yield
    finally:
        # Uvicorn has stopped taking connections and finished open requests by now; drain the engine anyway.
        app.state.ready = False
        app.state.not_ready_reason = "shutting down"
        metrics.ready.set(0)
        await warmup
        drained = await anyio.to_thread.run_sync(engine.close, settings.request_timeout_s)
        app.state.engine = None
        log.info("engine stopped%s", "" if drained else " (some queued requests were dropped)")


async def _warm_up(app: FastAPI, engine: Engine) -> None:
    """Run each model once at batch size 1 and at the largest batch size, then report ready."""
    try:
        await anyio.to_thread.run_sync(engine.warmup)
    except Exception:
        log.exception("warm-up failed; the service stays not ready")
        app.state.not_ready_reason = "warm-up failed (see the logs)"
        return
    # Move everything allocated so far (torch, the models, the app) out of the garbage collector's
    # view: its full collections would otherwise walk those objects, a pause of tens of milliseconds
    # that lands on whichever requests are in flight (a long p99 tail).
    gc.collect()
    gc.freeze()
    if app.state.engine is engine:
        app.state.ready = True
        app.state.metrics.ready.set(1)
        log.info("ready")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service. ``settings`` defaults to the environment's (``FGAN_*`` variables)."""
    settings = settings or get_settings()
    metrics = Metrics()
    app = FastAPI(
        title="fashion-gan",
        version=package_version(),
        description=DESCRIPTION,
        lifespan=_lifespan,
        # Served by routes.docs, so that the API key (when set) guards them like every non-probe route.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.in_flight = InFlight()
    app.state.engine = None
    app.state.ready = False
    app.state.not_ready_reason = "loading the models"
    app.state.startup_error = None

    install_error_handlers(app)
    install_openapi(app, settings)
    routers = (
        generate.router,
        classify.router,
        explain.router,
        translate.router,
        meta.router,
        docs.router,
        health.router,
    )
    for router in routers:
        app.include_router(router)

    # Added innermost first: RequestMiddleware wraps everything, so 401s and 413s get request ids and
    # metrics too, and the key is checked before the body is read. DirectGenerate and DirectTranslate, innermost,
    # answer most GET /generate and POST /translate requests before FastAPI's routing (routes/generate.py says why).
    if settings.direct_generate:
        app.add_middleware(generate.DirectGenerate)
    if settings.direct_translate:
        app.add_middleware(translate.DirectTranslate)
    batch_bytes = settings.batch_upload_bytes
    app.add_middleware(
        RequestLimitsMiddleware,
        max_bytes=settings.max_upload_bytes,
        upload_memory=settings.upload_memory_bytes,
        path_limits={classify.BATCH_PATH: (batch_bytes, batch_too_large_message(batch_bytes))},
    )
    if settings.api_key is not None:
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key.get_secret_value())
    # The web page (GET /) and its files, outside the key check: a browser opening it cannot send the key.
    app.add_middleware(PageMiddleware)
    app.add_middleware(
        RequestMiddleware,
        metrics=metrics,
        in_flight=app.state.in_flight,
        timeout_s=settings.request_timeout_s,
        access_log=settings.access_log,
    )
    app.add_middleware(StartupErrorMiddleware, state=app.state)
    return app
