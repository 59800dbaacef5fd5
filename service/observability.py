"""Metrics, structured logs and the per-request middleware: observability beside the business logic.

- ``Metrics`` owns a Prometheus registry per app (so tests can build many apps) and is the
  engine's ``BatchObserver``.
- ``configure_logging`` sets up text or JSON-lines logs whose records carry the request id.
- ``RequestMiddleware`` is a pure ASGI middleware (no per-request task or body copy, unlike
  Starlette's BaseHTTPMiddleware): it gives each request an id, enforces the whole-request
  deadline (504), answers expected errors raised outside the routes, turns unexpected errors into
  a bare 500 without a stack trace, and records metrics and one access-log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import sys
import time
from contextvars import ContextVar
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ServiceError, error_body, error_headers

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Request ids need to be unique, not secret: a PRNG seeded once from the OS is enough, and avoids an
# os.urandom call per request (uuid4), which is slow on some kernels and sandboxes.
_ids = random.Random()

access_log = logging.getLogger("service.access")
log = logging.getLogger("service")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The service's Prometheus metrics, in a registry of their own."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter(
            "fgan_http_requests",
            "HTTP requests answered, by route and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "fgan_http_request_duration_seconds",
            "Time from request start to the end of the answer.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("fgan_http_requests_in_flight", "HTTP requests being handled now.", registry=r)
        self.queue_depth_gauge = Gauge(
            "fgan_engine_queue_depth", "Requests waiting for a batch, per model.", ["model"], registry=r
        )
        self.queue_wait_seconds = Histogram(
            "fgan_engine_queue_wait_seconds",
            "Time a request waited in the queue before its batch ran.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "fgan_engine_batch_size", "Rows (images) per forward pass.", ["model"], buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "fgan_engine_batch_requests",
            "Requests served per forward pass.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "fgan_engine_batch_duration_seconds",
            "Time to predict one batch.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rejections = Counter(
            "fgan_engine_rejected",
            "Requests not run: queue full, or cancelled while queued.",
            ["model", "reason"],
            registry=r,
        )
        self.ready = Gauge("fgan_ready", "1 when the models are loaded and warm.", registry=r)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    # BatchObserver -------------------------------------------------------------------------------

    def queue_depth(self, name: str, depth: int) -> None:
        self.queue_depth_gauge.labels(name).set(depth)

    def queue_wait(self, name: str, seconds: float) -> None:
        self.queue_wait_seconds.labels(name).observe(seconds)

    def batch_done(self, name: str, rows: int, requests: int, seconds: float) -> None:
        self.batch_size.labels(name).observe(rows)
        self.batch_requests.labels(name).observe(requests)
        self.batch_seconds.labels(name).observe(seconds)

    def rejected(self, name: str, reason: str) -> None:
        self.rejections.labels(name, reason).inc()


# Logging -----------------------------------------------------------------------------------------

_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Send every log record (the service's and uvicorn's) to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


# Middleware --------------------------------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class InFlight:
    """How many HTTP requests the server is handling now (read by the engine's batchers)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


class RequestMiddleware:
    """Request id, whole-request deadline, last-resort error answers, metrics and the access log."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        in_flight: InFlight,
        timeout_s: float,
        access_log: bool = True,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.in_flight = in_flight
        self.timeout_s = timeout_s
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        # Keep a caller's id (for tracing across services) only when it is short and plain.
        request_id = incoming if incoming and _REQUEST_ID_RE.fullmatch(incoming) else f"{_ids.getrandbits(128):032x}"
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        async def answer(code: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
            if not response_started:
                await JSONResponse(error_body(error, detail), status_code=code, headers=headers)(
                    scope, receive, send_with_id
                )

        self.in_flight.count += 1
        self.metrics.in_flight.inc()
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.app(scope, receive, send_with_id)
        except TimeoutError:
            await answer(
                504, "timeout", f"the request did not finish within {self.timeout_s:g}s (FGAN_REQUEST_TIMEOUT_S)"
            )
        except ServiceError as exc:  # raised outside a route: by the upload limit while reading, DirectGenerate
            await answer(exc.status_code, exc.code, exc.detail, error_headers(exc, scope.get("app")))
        except ClientDisconnect:
            status = 499  # nginx's code for "client closed the request"; nothing can be sent
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            await answer(500, "internal_error", "internal error; the X-Request-ID header names it in the logs")
        finally:
            self.in_flight.count -= 1
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started_at
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            if self.access_log:
                access_log.info(
                    "%s %s %d %.1fms",
                    method,
                    scope.get("path"),
                    status,
                    elapsed * 1000,
                    extra={
                        "method": method,
                        "path": scope.get("path"),
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)


class StartupErrorMiddleware:
    """Keeps uvicorn from printing a traceback when startup fails for a reason already logged in one line.

    The lifespan logs a clear line (e.g. which checkpoint file is wrong) and stores it in
    ``state.startup_error``; Starlette would then send the whole traceback as the
    "startup failed" message, which uvicorn logs. This blanks that message.
    """

    def __init__(self, app: ASGIApp, *, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_quietly(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and getattr(self.state, "startup_error", None):
                message = {"type": message["type"], "message": ""}
            await send(message)

        await self.app(scope, receive, send_quietly)
