"""Errors the service answers with, and the handlers that turn them into JSON responses.

Every error body has the same shape, ``{"error": <code>, "detail": <message>}``,
where the message says what was wrong and what is accepted. Stack traces are
logged, never sent.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.latents import TRUNCATION_RANGE


class ServiceError(Exception):
    """An expected failure with its HTTP status, a short machine-readable code and a message for people."""

    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadRequest(ServiceError):
    """The request body is malformed (for example a broken multipart encoding)."""


class InvalidInput(ServiceError):
    """A parameter or field has a value that is not accepted."""

    status_code = 422
    code = "invalid_input"


class UnsupportedMediaType(ServiceError):
    """The body or the upload is of a type the service does not read."""

    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLarge(ServiceError):
    """The request body is over the upload limit."""

    status_code = 413
    code = "payload_too_large"


class Unauthorized(ServiceError):
    """The API key is missing or wrong."""

    status_code = 401
    code = "unauthorized"


class Overloaded(ServiceError):
    """The engine's queue is full, or the service is not accepting work (starting or stopping)."""

    status_code = 503
    code = "overloaded"


class ModelUnavailable(ServiceError):
    """The route's model is not loaded on this server (an optional model whose weights are absent)."""

    status_code = 503
    code = "model_unavailable"


def error_body(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}


def error_response(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, detail), status_code=status, headers=headers)


# What each query parameter accepts, so that a validation error can say it.
ACCEPTED: dict[str, str] = {
    "n": "an integer from 1 to 100",
    "scale": "an integer from 1 to 16",
    "seed": "an integer from 0 to 4294967295",
    "format": "'png' or 'json'",
    "truncation": TRUNCATION_RANGE,
    "invert": "'auto', 'true' or 'false'",
}


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    """One readable sentence per pydantic/FastAPI validation error."""
    parts = []
    for err in errors:
        loc = [str(x) for x in err.get("loc", ())]
        where, name = (loc[0], loc[-1]) if len(loc) >= 2 else ("request", ".".join(loc) or "body")
        where = {"query": "query parameter", "body": "field", "path": "path parameter"}.get(where, where)
        text = f"{where} {name!r}: {err.get('msg', 'invalid value')}"
        if "input" in err and err.get("type") != "missing":
            shown = repr(err["input"])
            text += f" (got {shown if len(shown) <= 40 else shown[:40] + '…'})"
        if name in ACCEPTED:
            text += f"; accepted: {ACCEPTED[name]}"
        parts.append(text)
    return "; ".join(parts) or "invalid request"


def error_headers(exc: ServiceError, app: Any) -> dict[str, str]:
    """The headers of the answer to ``exc``: its own, and Retry-After on every 503, whichever part of
    the service raised it (the app's FGAN_RETRY_AFTER_S, else 1 s)."""
    headers = exc.headers
    if exc.status_code == 503 and not any(name.lower() == "retry-after" for name in headers):
        settings = getattr(getattr(app, "state", None), "settings", None)
        headers = {**headers, "Retry-After": str(getattr(settings, "retry_after_s", 1))}
    return headers


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc.status_code, exc.code, exc.detail, error_headers(exc, request.app))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_input", describe_validation_errors(list(exc.errors())))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404:
        detail = f"no route {request.url.path!r}; see /docs for the routes"
    elif exc.status_code == 405:
        allowed = {k.lower(): v for k, v in (exc.headers or {}).items()}.get("allow")
        if allowed:
            detail = f"{request.method} is not allowed on {request.url.path!r}; allowed: {allowed}"
    return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), detail, exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same JSON shape."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Unexpected exceptions (bugs) are answered by RequestMiddleware (observability.py): it catches them
    # before Starlette's ServerErrorMiddleware, which would re-raise them, and adds the request id.
