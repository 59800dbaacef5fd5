"""POST /classify: is an uploaded image a real Fashion-MNIST image or a generated one?"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from models.labels import accepted as accepted_labels
from service import imaging
from service.deps import get_engine, get_settings
from service.inputs import parse_label, pick_model, read_classify_form
from service.schemas import ClassifyResponse, ErrorResponse

router = APIRouter(tags=["classify"])

# The form is read by service.inputs (streamed, with precise errors), so it is described here by hand.
_FORM_SCHEMA = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": f"The image: {imaging.ACCEPTED_FORMATS}."},
        "label": {"type": "string", "description": f"Its class: {accepted_labels()}.", "example": "8"},
        "model": {"type": "string", "description": "discriminator or detector (default: detector when loaded)."},
    },
}


@router.post(
    "/classify",
    summary="Tell a real Fashion-MNIST image from a generated one",
    response_model=ClassifyResponse,
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FORM_SCHEMA}}}},
    responses={
        400: {"model": ErrorResponse, "description": "Malformed multipart body."},
        413: {"model": ErrorResponse, "description": "Body over the upload limit."},
        415: {"model": ErrorResponse, "description": "Not multipart/form-data, or not an accepted image format."},
        422: {"model": ErrorResponse, "description": "Missing/invalid field, corrupt or over-large image."},
        503: {"model": ErrorResponse, "description": "Queue full (retry after Retry-After seconds)."},
        504: {"model": ErrorResponse, "description": "Not finished within the request timeout."},
    },
)
async def classify(
    request: Request,
    model: Annotated[
        str | None, Query(description="discriminator or detector; the form field 'model' may say it instead.")
    ] = None,
) -> ClassifyResponse:
    engine, settings = get_engine(request), get_settings(request)
    form = await read_classify_form(request)
    label = parse_label(form.label)
    image = await imaging.decode_upload(form.image, max_pixels=settings.max_image_pixels)
    verdict = await engine.classify(image, label=label, model=pick_model(model, form.model))
    return ClassifyResponse(label=verdict.label, confidence=verdict.confidence)
