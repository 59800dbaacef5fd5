"""POST /classify: is an uploaded image a real Fashion-MNIST image or a generated one? POST /classify/batch: the
same for up to FGAN_MAX_BATCH_IMAGES images at once."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from service.deps import get_decoders, get_engine, get_settings
from service.engine import Verdict
from service.errors import ServiceError, error_body
from service.inputs import read_batch_upload, read_upload
from service.schemas import (
    BATCH_ERRORS,
    UPLOAD_ERRORS,
    ClassifyBatchResponse,
    ClassifyResponse,
    error_responses,
    upload_form,
)

router = APIRouter(tags=["classify"])
log = logging.getLogger("service.classify")
BATCH_PATH = "/classify/batch"

# Every verdict names the model and the weights that gave it, so that a user can tell which detector said what.
MODEL_HEADER = "X-Model"
MODEL_HEADER_DOC = {
    MODEL_HEADER: {
        "description": "The model that judged, and its weights: NAME@VERSION, VERSION being the first 12 hex "
        "digits of the SHA-256 of its weights file (as /info lists), e.g. detector@3f2a9c1b0d4e.",
        "schema": {"type": "string", "pattern": "^[a-z]+@[0-9a-f]{12}$"},
    }
}

# The form is read by service.inputs (streamed, with precise errors), so it is described by hand; the app
# narrows it to the models it serves (service.openapi).
MODEL_QUERY = Query(
    description="The form field 'model', for links; when both are given they must agree.", include_in_schema=False
)


@router.post(
    "/classify",
    summary="Tell a real Fashion-MNIST image from a generated one",
    response_model=ClassifyResponse,
    openapi_extra={"requestBody": upload_form()},
    responses={200: {"headers": MODEL_HEADER_DOC}, **error_responses(*UPLOAD_ERRORS)},
)
async def classify(
    request: Request, response: Response, model: Annotated[str | None, MODEL_QUERY] = None
) -> ClassifyResponse:
    engine, settings = get_engine(request), get_settings(request)
    upload = await read_upload(request, model, max_pixels=settings.max_image_pixels, decoders=get_decoders(request))
    verdict = await engine.classify(upload.image, label=upload.label, model=upload.model)
    response.headers[MODEL_HEADER] = engine.models.classifiers[verdict.model].tag
    return ClassifyResponse(label=verdict.label, confidence=verdict.confidence)


@router.post(
    BATCH_PATH,
    summary="Tell real from generated for many images at once",
    description="Each image is judged as `/classify` judges it alone (its entry is the same bytes of JSON), and "
    "its images share forward passes with other requests. An image that cannot be judged gets an error entry in "
    "its place, so that it never costs the others: e.g. `curl -F image=@a.png -F image=@b.png -F label=8 "
    "-F label=3 …/classify/batch`. Up to FGAN_MAX_BATCH_IMAGES images (64), each up to FGAN_MAX_UPLOAD_BYTES, "
    "the body up to FGAN_MAX_BATCH_UPLOAD_BYTES (default: that many images of that size).",
    response_class=JSONResponse,
    openapi_extra={"requestBody": upload_form(max_images=64)},
    responses={
        200: {"model": ClassifyBatchResponse, "headers": MODEL_HEADER_DOC},
        **error_responses(*UPLOAD_ERRORS, table=BATCH_ERRORS),
    },
)
async def classify_batch(request: Request, model: Annotated[str | None, MODEL_QUERY] = None) -> JSONResponse:
    engine, settings = get_engine(request), get_settings(request)
    batch = await read_batch_upload(
        request,
        model,
        max_images=settings.max_batch_images,
        max_image_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_image_pixels,
        decoders=get_decoders(request),
    )
    uploads = batch.uploads
    verdicts = iter(
        await engine.classify_many([u.image for u in uploads], labels=[u.label for u in uploads], model=batch.model)
    )
    results: list[dict[str, Any]] = []
    for item in batch.items:
        if not isinstance(item, ServiceError):
            item = next(verdicts)
        results.append(_entry(item))
    return JSONResponse({"results": results}, headers={MODEL_HEADER: engine.resolve_classifier(batch.model).tag})


def _entry(outcome: Verdict | Exception) -> dict[str, Any]:
    """An image's entry: its verdict as /classify answers it, or its error."""
    if isinstance(outcome, ServiceError):
        return error_body(outcome.code, outcome.detail)
    if isinstance(outcome, Verdict):
        try:
            return ClassifyResponse(label=outcome.label, confidence=outcome.confidence).model_dump()
        except ValidationError:  # no probability to speak of (NaN): /classify answers 500 for it
            log.error("the model answered no valid verdict for an image of a batch: %s", outcome)
    else:
        log.error("the model failed on an image of a batch", exc_info=outcome)
    return error_body(
        "internal_error", "the model gave no verdict on this image; the X-Request-ID header names it in the logs"
    )
