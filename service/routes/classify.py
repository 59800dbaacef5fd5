"""POST /classify: is an uploaded image a real Fashion-MNIST image or a generated one?"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from service.deps import get_decoders, get_engine, get_settings
from service.inputs import read_upload
from service.schemas import UPLOAD_ERRORS, ClassifyResponse, error_responses, upload_form

router = APIRouter(tags=["classify"])

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
