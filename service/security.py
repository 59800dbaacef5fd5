"""The optional API key: required on every route but the probes and metrics when FGAN_API_KEY is set.

Checked by a pure ASGI middleware, before any route, body or parameter is
looked at, so that a request without the key costs nothing more than the
check, and no route can be forgotten. The OpenAPI schema declares the key so
that /docs can send it.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import Unauthorized, error_body

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_MESSAGE = "missing or wrong API key; send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'"


def key_matches(given: str | None, expected: bytes) -> bool:
    """Compare in constant time, so response times do not tell how much of a guess was right."""
    return given is not None and hmac.compare_digest(given.encode("latin-1", "replace"), expected)


class ApiKeyMiddleware:
    """401 for requests without the key (X-API-Key, or Authorization: Bearer) outside OPEN_PATHS."""

    def __init__(self, app: ASGIApp, *, api_key: str) -> None:
        self.app = app
        self.expected = api_key.encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header_key = bearer = None
        for name, value in scope.get("headers", ()):
            if name == b"x-api-key":
                header_key = value.decode("latin-1")
            elif name == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    bearer = credentials.strip()
        if key_matches(header_key, self.expected) or key_matches(bearer, self.expected):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            error_body(Unauthorized.code, _MESSAGE), status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
        await response(scope, receive, send)


def document_api_key(schema: dict[str, Any]) -> None:
    """Declare the key in an OpenAPI schema (both ways of sending it) on every guarded operation."""
    schema.setdefault("components", {})["securitySchemes"] = {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "Bearer": {"type": "http", "scheme": "bearer"},
    }
    for path, operations in schema.get("paths", {}).items():
        if path not in OPEN_PATHS:
            for operation in operations.values():
                operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
                operation.setdefault("responses", {})["401"] = {
                    "description": "Missing or wrong API key.",
                    "content": {"application/json": {"example": error_body(Unauthorized.code, _MESSAGE)}},
                }
