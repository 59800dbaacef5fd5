"""POST /translate: a sketch in, the garment a pix2pix model draws from it out, as a PNG."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service import rendering
from service.deps import get_decoders, get_engine, get_settings
from service.errors import InvalidInput, ModelUnavailable, error_body
from service.inputs import read_sketch
from service.loading import MISSING_TRANSLATOR
from service.routes.classify import MODEL_HEADER
from service.schemas import TRANSLATE_ERRORS, error_responses, sketch_form
from service.sketches import BLANK_RANGE, INVERT_CHOICES, LIGHT, Invert, blank_message

router = APIRouter(tags=["translate"])
PATH = "/translate"

INVERTED_HEADER = "X-Sketch-Inverted"
_HEADERS = {
    MODEL_HEADER: {
        "description": "The model that drew the garment, and its weights: NAME@VERSION (as /info lists them), "
        "e.g. pix2pix@3f2a9c1b0d4e.",
        "schema": {"type": "string", "pattern": "^[a-z0-9]+@[0-9a-f]{12}$"},
    },
    INVERTED_HEADER: {
        "description": "true when the sketch was inverted (255 - v) before translation: dark strokes on a light "
        "background, as detected or as asked with invert=true; false when it was taken as light on dark.",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
}


# The error table, with the answers particular to this route as examples.
_ERRORS = error_responses(400, 413, 415, 422, 503, 504, table=TRANSLATE_ERRORS)
_ERRORS[422]["content"] = {"application/json": {"example": error_body(InvalidInput.code, blank_message(255, 255))}}
_ERRORS[503]["content"] = {"application/json": {"example": error_body(ModelUnavailable.code, MISSING_TRANSLATOR)}}


@router.post(
    PATH,
    summary="Turn a sketch into a Fashion-MNIST garment (pix2pix)",
    description="A sketch, light strokes on a dark background like Fashion-MNIST's images or dark strokes on a "
    "light one, in any accepted image format and size, becomes a 28x28 grayscale garment drawn by a pix2pix model "
    "(a U-Net), e.g. `curl -F image=@shoe-sketch.png -o shoe.png '…/translate?scale=4'`. The upload is read as "
    "/classify reads its image (same formats, limits, conversion to 28x28 grayscale and errors); then, with "
    f"invert=auto, a sketch whose border pixels have a median of {LIGHT} or more (a light background) is inverted. "
    f"A blank sketch (its pixels fewer than {BLANK_RANGE} grey levels apart once converted) gets a 422. The same "
    "sketch always gives the same garment, whatever other requests it is batched with. Check the result with "
    "/classify.",
    response_class=Response,
    openapi_extra={"requestBody": sketch_form()},
    responses={
        200: {
            "description": "The garment: a 28x28 grayscale PNG (28*scale pixels square with scale > 1).",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
            "headers": _HEADERS,
        },
        **_ERRORS,
    },
)
async def translate(
    request: Request,
    scale: Annotated[
        int,
        Query(
            ge=1,
            le=16,
            description="Nearest-neighbour enlargement factor, as for /generate.",
            openapi_examples={"as drawn": {"value": 1}, "for display": {"value": 4}},
        ),
    ] = 1,
    invert: Annotated[
        Invert,
        Query(
            description="auto (default): invert a sketch whose border is light (dark strokes on white paper); true: "
            "always invert; false: never (the sketch is light strokes on dark already).",
        ),
    ] = "auto",
) -> Response:
    return await answer(request, scale, invert)


async def answer(request: Request, scale: int, invert: Invert) -> Response:
    """The answer to a /translate request whose options are valid (the route and the direct path share it)."""
    engine, settings = get_engine(request), get_settings(request)
    engine.require_translator()  # before reading the upload: without the model, nothing else matters
    sketch = await read_sketch(request, invert, max_pixels=settings.max_image_pixels, decoders=get_decoders(request))
    result = await engine.translate(sketch.pixels)
    png = await rendering.encode_off_loop(rendering.grid_png, result.image[None], scale)
    headers = {MODEL_HEADER: result.model, INVERTED_HEADER: "true" if sketch.inverted else "false"}
    return Response(png, media_type="image/png", headers=headers)


# The direct path -------------------------------------------------------------------------------

_DIGITS = re.compile(r"[1-9][0-9]?")  # a plain decimal scale, 1 to 99 (the range is checked after)


def plain_query(query_string: bytes) -> dict[str, Any] | None:
    """The options of a /translate query that are plainly valid (each at most once and known, scale written as
    plain digits from 1 to 16, invert one of its choices), else None: the FastAPI route takes those, and either
    accepts them too or words the error, so both paths answer every query alike."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)  # as Starlette parses it
    given = dict(pairs)
    if len(given) != len(pairs) or not given.keys() <= {"scale", "invert"}:
        return None
    scale = given.get("scale", "1")
    invert = given.get("invert", "auto")
    if not _DIGITS.fullmatch(scale) or not 1 <= int(scale) <= 16 or invert not in INVERT_CHOICES:
        return None
    return {"scale": int(scale), "invert": invert}


class DirectTranslate:
    """Answers ``POST /translate`` itself when its query is plainly valid (``plain_query``), as
    routes.generate.DirectGenerate does for GET /generate, and for the same reason: FastAPI's routing,
    parameter handling and exception layers are a real share of a request whose model is small
    (docs/service.md, "Where the time goes"). Installed innermost of the service's middleware, so that
    request ids, metrics, limits and the API key apply as on any route; the answer is built by the route's
    own ``answer``, and the errors it raises (a bad upload, a full queue) are ServiceErrors, which
    RequestMiddleware answers as the route's handlers would. FGAN_DIRECT_TRANSLATE=false turns it off.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The route this stands in for: the request metrics label requests by its path.
        self.route = next(route for route in router.routes if getattr(route, "path", None) == PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST":
            options = plain_query(scope["query_string"]) if scope["app"].state.engine is not None else None
            if options is not None:
                scope["route"] = self.route
                response = await answer(Request(scope, receive), **options)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
