"""The upload limit, enforced while the body streams in rather than after it has been read."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge, error_body


def too_large_message(limit: int) -> str:
    return f"the request body is over the {limit} byte upload limit (FGAN_MAX_UPLOAD_BYTES); send a smaller image"


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``, without holding more than ``max_bytes`` of them.

    A declared Content-Length over the limit is refused before a byte of the body is read. A body
    sent without one (chunked) is counted as it arrives, and reading stops with PayloadTooLarge
    as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                declared = value
                break
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0:
                response = JSONResponse(error_body("bad_request", "invalid Content-Length header"), status_code=400)
                await response(scope, receive, send)
                return
            if length > self.max_bytes:
                # Connection: close, since the unread body would otherwise be parsed as the next request.
                response = JSONResponse(
                    error_body(PayloadTooLarge.code, too_large_message(self.max_bytes)),
                    status_code=413,
                    headers={"Connection": "close"},
                )
                await response(scope, receive, send)
                return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(too_large_message(self.max_bytes), headers={"Connection": "close"})
            return message

        await self.app(scope, counting_receive, send)
