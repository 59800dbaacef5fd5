"""GET /openapi.json and /docs, served as ordinary routes so the API key (when set) covers them too.

Swagger UI's script and styles come from the fastapi-swagger package (a current Swagger UI 5 build) and
are served by the service itself under ``/docs/assets/`` (see routes/page.py), not from a CDN: many
deployments have no internet, and /docs would be a blank page there.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

router = APIRouter(include_in_schema=False)

SWAGGER_ASSETS_DIR = Path(str(resources.files("fastapi_swagger") / "resources"))
SWAGGER_ASSETS_PREFIX = "/docs/assets/"
# The only files of that folder /docs loads; the rest of it (the package's __init__.py, its bytecode, an
# icon the page does not use) is not served.
SWAGGER_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css")


@router.get("/openapi.json")
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} - API",
        swagger_js_url=f"{SWAGGER_ASSETS_PREFIX}{SWAGGER_ASSETS[0]}",
        swagger_css_url=f"{SWAGGER_ASSETS_PREFIX}{SWAGGER_ASSETS[1]}",
        swagger_favicon_url="/static/favicon.svg",
        # No validator badge: Swagger UI would send the schema's URL to validator.swagger.io for it.
        swagger_ui_parameters={"validatorUrl": None},
    )
