"""Request limits at the edge, checked before any route runs: how many requests the server takes in, and body size.

Admission. The engine's queues bound the work waiting for a model, but when the
HTTP side is the bottleneck (parsing, decoding and encoding on the one event loop,
which shares its CPU with the model), requests pile up before they reach a queue,
and their latency grows with the number of clients until the request deadline
turns them into 504s. So the server takes in at most what its engines can hold,
each model's queue limit plus one batch, and answers the rest 503 + Retry-After
at once, as a full queue does. The probes and /metrics are always admitted.
Measured in docs/reliability.md: at 8x overload the accepted requests' p99 stays
near 1 s with it, and grows with the number of clients (2.6 s, and rising) without.

Upload. A declared Content-Length over the limit is refused before a byte of the
body is read; a body sent without one (chunked) is counted as it arrives, and
reading stops as soon as it passes the limit. The limit is FGAN_MAX_UPLOAD_BYTES,
except on the paths given their own (POST /classify/batch: FGAN_MAX_BATCH_UPLOAD_BYTES,
its images each held to the upload limit by service.inputs).

Upload memory. The count of admitted requests does not bound their bytes: 576
admitted uploads of a legal 64 MiB each would be 36 GiB. So each request with a
body holds its declared Content-Length (a chunked one: the upload limit) from the
upload budget (FGAN_UPLOAD_MEMORY_BYTES) until it is answered; a request that would
pass the budget gets 503 + Retry-After at once. service.resources checks at
startup that the budget fits the memory the service is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import Overloaded, PayloadTooLarge, error_body

ALWAYS_ADMITTED = frozenset({"/healthz", "/readyz", "/metrics"})
MIN_ADMITTED = 64  # so that tiny queue settings (a queue of 1, batches of 1) still let a burst reach the queue


def admission_limit(state: Any) -> int:
    """Requests the server takes in at once: what its engines hold (queue limit + one batch, per model)."""
    settings = state.settings
    engine = getattr(state, "engine", None)
    models = len(engine.batchers) if engine is not None else 2
    return max(MIN_ADMITTED, models * (settings.queue_limit + settings.max_batch_size))


def too_large_message(limit: int) -> str:
    return f"the request body is over the {limit} byte upload limit (FGAN_MAX_UPLOAD_BYTES); send a smaller image"


def batch_too_large_message(limit: int) -> str:
    return (
        f"the request body is over the {limit} byte limit of a batch (FGAN_MAX_BATCH_UPLOAD_BYTES); "
        "send fewer or smaller images in each request"
    )


class RequestLimitsMiddleware:
    """503 beyond the admission limit or the upload budget, 400 for a bad Content-Length, 413 for bodies over
    ``max_bytes``.

    Admission needs the app's state (``in_flight``, counted by RequestMiddleware, which runs
    outside this one; ``settings``, ``engine``, ``metrics``); without it (a bare ASGI app, as in
    unit tests) only the body limit and the upload budget apply. Refusals are counted in
    ``fgan_engine_rejected_total{model="server", reason="in_flight_limit" | "upload_memory"}``.
    ``upload_memory``: the bytes of bodies held at once (None: no such bound). ``path_limits``: paths with
    a body limit of their own, and the message that refuses a body over it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        upload_memory: int | None = None,
        path_limits: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_memory = upload_memory
        self.path_limits = dict(path_limits or {})
        self.default_limit = (max_bytes, too_large_message(max_bytes))
        self.held = 0  # bytes held by the requests in progress (all on the one event loop: no lock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._admitted(scope):
            state = scope["app"].state
            retry = str(state.settings.retry_after_s)
            detail = f"the server is at its limit of {admission_limit(state)} requests in progress; retry shortly"
            await _answer(scope, receive, send, 503, Overloaded.code, detail, {"Retry-After": retry})
            return

        max_bytes, too_large = self.path_limits.get(scope["path"], self.default_limit)
        declared = {value.strip() for key, value in scope.get("headers", ()) if key == b"content-length"}
        length: int | None = None
        if declared:
            # Plain digits only (int() would also take "+5", "1_000" or "٣"), and one value if sent twice.
            value = declared.pop()
            if declared or not value.isdigit() or not value.isascii():
                detail = "invalid Content-Length header; send one decimal byte count"
                await _answer(scope, receive, send, 400, "bad_request", detail, {"Connection": "close"})
                return
            length = int(value)
            if length > max_bytes:
                # Connection: close, since the unread body would otherwise be parsed as the next request.
                await _answer(scope, receive, send, 413, PayloadTooLarge.code, too_large, {"Connection": "close"})
                return

        chunked = any(key == b"transfer-encoding" for key, _ in scope.get("headers", ()))
        reserve = length if length is not None else (max_bytes if chunked else 0)
        if reserve and self.upload_memory is not None and self.held + reserve > self.upload_memory:
            state = getattr(scope.get("app"), "state", None)
            if getattr(state, "metrics", None) is not None:
                state.metrics.rejected("server", "upload_memory")
            retry = str(getattr(getattr(state, "settings", None), "retry_after_s", 1))
            detail = (
                f"the server holds {self.held} bytes of uploads in progress, its limit is {self.upload_memory} "
                "(FGAN_UPLOAD_MEMORY_BYTES); retry shortly"
            )
            await _answer(scope, receive, send, 503, Overloaded.code, detail, {"Retry-After": retry})
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise PayloadTooLarge(too_large, headers={"Connection": "close"})
            return message

        self.held += reserve
        try:
            await self.app(scope, counting_receive, send)
        finally:
            self.held -= reserve

    @staticmethod
    def _admitted(scope: Scope) -> bool:
        state = getattr(scope.get("app"), "state", None)
        in_flight = getattr(state, "in_flight", None)
        if in_flight is None or scope["path"] in ALWAYS_ADMITTED:
            return True
        if in_flight.count <= admission_limit(state):  # the count includes this request
            return True
        state.metrics.rejected("server", "in_flight_limit")
        return False


async def _answer(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, detail: str, headers: dict[str, str]
) -> None:
    await JSONResponse(error_body(code, detail), status_code=status, headers=headers)(scope, receive, send)
