"""GET /: the web page (generate, classify, explain, sketch to clothing, model figures), /static/*: its files,
and /docs/assets/*: Swagger UI's script and styles for /docs (routes/docs.py).

Plain HTML, JavaScript and CSS from ``service/static/`` (no build step, nothing from
a CDN: many deployments have no internet). The page calls the public API (/labels,
/info, /generate, /classify, /explain, /translate) like any other client.

Served by a middleware placed outside the API key check, so that the page opens
in a browser when FGAN_API_KEY is set: a browser cannot add a header when it
opens a page, and the page and its files hold nothing the key protects (nor
do Swagger UI's files; /docs itself, and the schema it loads, stay behind the key). The
page then asks for the key and sends it as X-API-Key on every API call, which
the key check still guards. Request ids, metrics and the access log cover it
as any route (the middleware sits inside RequestMiddleware).
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_response
from service.routes.docs import SWAGGER_ASSETS, SWAGGER_ASSETS_DIR, SWAGGER_ASSETS_PREFIX

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_PREFIX = "/static/"

# The page loads its own script, styles and images only, and talks to its own origin only.
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),  # revalidate (ETag) on each load, so an upgraded service shows its new page
]


class _NamedFiles(StaticFiles):
    """StaticFiles that serves only the named files of its folder (a 404 for anything else in it)."""

    def __init__(self, *, directory: Path, names: tuple[str, ...]) -> None:
        super().__init__(directory=directory)
        self.names = frozenset(names)

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path not in self.names:
            return "", None
        return super().lookup_path(path)


def is_page_path(path: str) -> bool:
    return path == "/" or path.startswith(STATIC_PREFIX) or path.startswith(SWAGGER_ASSETS_PREFIX)


async def _index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(404, "not_found", f"no file {request.url.path!r}; the page is at /")
    if exc.status_code == 405:
        return error_response(405, "method_not_allowed", "the page and its files answer GET and HEAD only")
    return error_response(exc.status_code, "http_error", str(exc.detail))


class PageMiddleware:
    """Answers ``/``, ``/static/*`` and ``/docs/assets/*`` from their files; passes every other request on."""

    def __init__(self, app: ASGIApp, *, static_dir: Path = STATIC_DIR) -> None:
        self.app = app
        self._index = Route("/", _index, methods=["GET"])
        self._static = Mount("/static", StaticFiles(directory=static_dir), name="static")
        self._swagger = Mount(
            SWAGGER_ASSETS_PREFIX.rstrip("/"),
            _NamedFiles(directory=SWAGGER_ASSETS_DIR, names=SWAGGER_ASSETS),
            name="swagger",
        )
        self._page = Starlette(
            routes=[self._index, self._static, self._swagger], exception_handlers={HTTPException: _http_error}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        # Names the route in the metrics.
        scope["route"] = (
            self._index if path == "/" else self._static if path.startswith(STATIC_PREFIX) else self._swagger
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *_SECURITY_HEADERS]
            await send(message)

        await self._page(scope, receive, send_with_headers)
