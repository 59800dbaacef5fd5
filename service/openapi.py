"""The app's OpenAPI schema: the routes' own, narrowed to what this server accepts.

The routes describe the upload forms of /classify, /explain and /classify/batch for every model the service
can serve; a server without a detector accepts only the discriminator, and needs a label with every upload.
So the schema is built once per app from its settings: the upload forms list the models its weights directory
holds, the batch form as many images as FGAN_MAX_BATCH_IMAGES allows, POST /translate is listed only when the
weights directory holds its model (without it the route answers 503, model_unavailable), and the API key is
declared when one is set. Every request the schema describes is one the server accepts (tests/robustness/test_fuzz_api.py holds it
to that).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.loading import classifier_names, has_translator
from service.routes.classify import BATCH_PATH
from service.schemas import upload_form
from service.security import document_api_key
from service.settings import Settings

UPLOAD_PATHS = ("/classify", "/explain")
TRANSLATE_PATH = "/translate"


def build_schema(app: FastAPI, settings: Settings) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    classifiers = classifier_names(settings.weights_dir)
    forms = {path: upload_form(classifiers) for path in UPLOAD_PATHS}
    forms[BATCH_PATH] = upload_form(classifiers, max_images=settings.max_batch_images)
    for path, form in forms.items():
        operation = schema.get("paths", {}).get(path, {}).get("post")
        if operation is not None:
            operation["requestBody"] = form
    if not has_translator(settings.weights_dir):
        schema.get("paths", {}).pop(TRANSLATE_PATH, None)
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
