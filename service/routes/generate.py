"""GET /generate: images of a chosen class, as one PNG or as JSON."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from models import NAMES, TRUNCATION_RANGE
from service import rendering
from service.deps import get_engine
from service.engine import Generated
from service.errors import InvalidInput
from service.inputs import parse_label
from service.schemas import LABEL_DESCRIPTION, GenerateJSONResponse, error_responses, label_parameter_schema

router = APIRouter(tags=["generate"])

_PNG_EXAMPLE = {"image/png": {"schema": {"type": "string", "format": "binary"}}}


@router.get(
    "/generate",
    summary="Generate images of a clothing class",
    response_class=Response,
    responses={
        200: {
            "description": "A 28x28 grayscale PNG (n > 1: a grid; scale > 1: enlarged), or JSON with format=json. "
            "Headers: X-Seed (the seed used), X-Label and X-Label-Name (the class), X-Truncation (the psi used).",
            "content": {**_PNG_EXAMPLE, "application/json": {"schema": GenerateJSONResponse.model_json_schema()}},
        },
        **error_responses(422, 503, 504),
    },
)
async def generate(
    request: Request,
    label: Annotated[
        str | None,
        Query(
            description=f"The class. {LABEL_DESCRIPTION} Absent: a random class.",
            json_schema_extra=label_parameter_schema,
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
    truncation: Annotated[
        float,
        Query(
            gt=0,
            le=1,
            allow_inf_nan=False,
            description="Fidelity against variety, psi: "
            + TRUNCATION_RANGE
            + ". Below 1 each latent is pulled toward the mean latent: cleaner, more typical, less varied images. "
            "Same seed, label and truncation: the same image.",
            openapi_examples={"as trained": {"value": 1}, "cleaner": {"value": 0.7}},
        ),
    ] = 1.0,
) -> Response:
    result = await get_engine(request).generate(label=parse_label(label), seed=seed, n=n, truncation=truncation)
    if fmt == "json":
        headers = _headers(result)
        body = GenerateJSONResponse(
            label=result.label,
            label_name=None if result.label is None else NAMES[result.label],
            seed=result.seed,
            images=await rendering.encode_off_loop(rendering.pngs_base64, result.images, scale),
        )
        return JSONResponse(body.model_dump(), headers=headers)
    return await _png_response(result, scale)


def _headers(result: Generated) -> dict[str, str]:
    headers = {"X-Seed": str(result.seed), "X-Truncation": repr(result.truncation)}
    if result.label is not None:
        headers |= {"X-Label": str(result.label), "X-Label-Name": NAMES[result.label]}
    return headers


async def _png_response(result: Generated, scale: int) -> Response:
    png = await rendering.encode_off_loop(rendering.grid_png, result.images, scale)
    return Response(png, media_type="image/png", headers=_headers(result))


# The direct path -------------------------------------------------------------------------------

_DIGITS = re.compile(r"0|[1-9][0-9]{0,9}")  # a plain decimal integer, as every validator reads it alike
_INT_RANGES = {"seed": (0, 2**32 - 1), "n": (1, 100), "scale": (1, 16)}  # as declared on the route above
_FRACTION = re.compile(r"[01](\.[0-9]{1,17})?")  # a plain decimal truncation: 1, 0.7, 1.0 (float() reads it exactly)
_PARAMETERS = frozenset({"label", *_INT_RANGES, "format", "truncation"})


def plain_png_query(query_string: bytes) -> dict[str, Any] | None:
    """The arguments of a /generate query that plainly asks for a valid PNG, else None.

    Plainly: each parameter at most once, no other parameter, integers written as plain
    digits within the route's ranges, a truncation written as a plain decimal in 0 < psi <= 1,
    a label that ``parse_label`` takes, format absent or png.
    None leaves the request to the FastAPI route, which either accepts it too (an unknown
    parameter, ``n=+3``) or words the error; so the two paths answer every query alike.
    """
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)  # as Starlette parses it
    given = dict(pairs)
    if len(given) != len(pairs) or not given.keys() <= _PARAMETERS or given.get("format", "png") != "png":
        return None
    args: dict[str, Any] = {"label": None, "seed": None, "n": 1, "scale": 1, "truncation": 1.0}
    for name, (low, high) in _INT_RANGES.items():
        if name in given:
            text = given[name]
            if not _DIGITS.fullmatch(text) or not low <= int(text) <= high:
                return None
            args[name] = int(text)
    if "truncation" in given:
        text = given["truncation"]
        if not _FRACTION.fullmatch(text) or not 0.0 < float(text) <= 1.0:
            return None
        args["truncation"] = float(text)
    if "label" in given:
        try:
            args["label"] = parse_label(given["label"])
        except InvalidInput:
            return None
    return args


class DirectGenerate:
    """Answers ``GET /generate`` for a PNG itself when the query is plainly valid (``plain_png_query``).

    FastAPI's routing, parameter validation and exception layers cost about 0.15 ms of CPU a request,
    a fifth of a batched /generate (0.728 against 0.578 ms with this path: ``bench/service_bench.py``'s
    ``fastapi-route`` variant, which sets FGAN_DIRECT_GENERATE=false; docs/service.md). Installed innermost of the service's
    middleware, so that request ids, metrics, limits and the API key apply as on any route; the
    answer is built by the same code as the route's, so both paths send the same bytes and headers.
    Errors raised here (a full queue, say) are ServiceErrors, answered by RequestMiddleware as the
    route's handlers would. Everything else, and every error worded for a bad parameter, stays with
    the FastAPI route, the one place the endpoint is documented.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The route this stands in for: the request metrics label requests by its path.
        self.route = next(route for route in router.routes if getattr(route, "path", None) == "/generate")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/generate" and scope["method"] == "GET":
            engine = scope["app"].state.engine
            args = plain_png_query(scope["query_string"]) if engine is not None else None
            if args is not None:
                scope["route"] = self.route
                result = await engine.generate(
                    label=args["label"], seed=args["seed"], n=args["n"], truncation=args["truncation"]
                )
                response = await _png_response(result, args["scale"])
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
