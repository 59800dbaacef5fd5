"""The app's OpenAPI schema: the routes' own, narrowed to what this server accepts.

The routes describe the upload form of /classify and /explain for every model the service can serve;
a server without a detector accepts only the discriminator, and needs a label with every upload. So the
schema is built once per app from its settings: the upload forms list the models its weights directory
holds, and the API key is declared when one is set. Every request the schema describes is one the server
accepts (tests/robustness/test_fuzz_api.py holds it to that).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.loading import classifier_names
from service.schemas import upload_form
from service.security import document_api_key
from service.settings import Settings

UPLOAD_PATHS = ("/classify", "/explain")


def build_schema(app: FastAPI, settings: Settings) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    form = upload_form(classifier_names(settings.weights_dir))
    for path in UPLOAD_PATHS:
        operation = schema.get("paths", {}).get(path, {}).get("post")
        if operation is not None:
            operation["requestBody"] = form
    if settings.api_key is not None:
        document_api_key(schema)
    return schema


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Serve ``build_schema``'s schema as the app's (built on first use, then kept)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
