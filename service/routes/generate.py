"""GET /generate: images of a chosen class, as one PNG or as JSON."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from models import NAMES
from models.labels import accepted as accepted_labels
from service import imaging
from service.deps import get_engine
from service.inputs import parse_label
from service.schemas import ErrorResponse, GenerateJSONResponse

router = APIRouter(tags=["generate"])

_PNG_EXAMPLE = {"image/png": {"schema": {"type": "string", "format": "binary"}}}


@router.get(
    "/generate",
    summary="Generate images of a clothing class",
    response_class=Response,
    responses={
        200: {
            "description": "A 28x28 grayscale PNG (n > 1: a grid; scale > 1: enlarged), or JSON with format=json. "
            "Headers: X-Seed (the seed used), X-Label and X-Label-Name (the class).",
            "content": {**_PNG_EXAMPLE, "application/json": {"schema": GenerateJSONResponse.model_json_schema()}},
        },
        422: {"model": ErrorResponse, "description": "A parameter is not accepted; the message lists what is."},
        503: {"model": ErrorResponse, "description": "Queue full (retry after Retry-After seconds)."},
        504: {"model": ErrorResponse, "description": "Not finished within the request timeout."},
    },
)
async def generate(
    request: Request,
    label: Annotated[
        str | None,
        Query(
            description=f"Class: {accepted_labels()}. Absent: a random class.",
            openapi_examples={"by id": {"value": "3"}, "by name": {"value": "Dress"}},
        ),
    ] = None,
    seed: Annotated[
        int | None,
        Query(
            ge=0,
            le=2**32 - 1,
            description="Same seed and label, same image (on the same device). Absent: a random one in 0..2**31-1.",
            openapi_examples={"a fixed seed": {"value": 42}},
        ),
    ] = None,
    n: Annotated[int, Query(ge=1, le=100, description="Number of images (one grid PNG, or a JSON list).")] = 1,
    scale: Annotated[int, Query(ge=1, le=16, description="Nearest-neighbour enlargement factor.")] = 1,
    fmt: Annotated[
        Literal["png", "json"], Query(alias="format", description="png (default) or json (base64 PNGs).")
    ] = "png",
) -> Response:
    result = await get_engine(request).generate(label=parse_label(label), seed=seed, n=n)
    headers = {"X-Seed": str(result.seed)}
    if result.label is not None:
        headers |= {"X-Label": str(result.label), "X-Label-Name": NAMES[result.label]}
    if fmt == "json":
        body = GenerateJSONResponse(
            label=result.label,
            label_name=None if result.label is None else NAMES[result.label],
            seed=result.seed,
            images=await imaging.encode_off_loop(imaging.pngs_base64, result.images, scale),
        )
        return JSONResponse(body.model_dump(), headers=headers)
    png = await imaging.encode_off_loop(imaging.grid_png, result.images, scale)
    return Response(png, media_type="image/png", headers=headers)
