"""POST /explain: the verdict on an uploaded image, and a GradCAM heatmap of what pushed it toward "fake"."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from models.gradcam import DEFAULT_SCALE, LAYERS
from service.deps import get_decoders, get_engine, get_settings
from service.explain import get_explainer
from service.inputs import read_upload
from service.routes.classify import MODEL_QUERY
from service.schemas import UPLOAD_ERRORS, error_responses, upload_form

router = APIRouter(tags=["explain"])

_HEADERS = (
    "Headers: X-Verdict (real or fake, as /classify answers), X-Confidence, X-Model, X-Layer (the layer read), "
    "X-Heatmap-Peak (the map's largest value before scaling to 0..1, in calibrated-logit units; 0: nothing "
    "pushed the verdict toward fake)."
)


class ExplainResponse(BaseModel):
    """/explain with format=json."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "label": "fake",
                    "confidence": 0.93,
                    "model": "discriminator",
                    "layer": "features.5",
                    "peak": 0.41,
                    "heatmap": [[0.0, 0.12, "…"], "…"],
                    "image": "iVBORw0KGgo…",
                }
            ]
        }
    )
    label: Literal["real", "fake"] = Field(description="The verdict, exactly as /classify gives it.")
    confidence: float = Field(ge=0.5, le=1.0, description="Probability of the verdict, rounded to 4 digits.")
    model: str = Field(description="The network explained: discriminator or detector.")
    layer: str = Field(
        description=f"The layer GradCAM read ({', '.join(f'{k}: {v}' for k, v in LAYERS.items())}; for a "
        "DetectorEnsemble each member's, e.g. members.0.features.3+members.1.features.3, the map their sum)."
    )
    peak: float = Field(ge=0, description="The map's largest value before scaling (calibrated-logit units).")
    heatmap: list[list[float]] = Field(
        description="Evidence toward 'fake' at the layer's resolution (14x14), scaled to 0..1 (all 0 when peak is 0)."
    )
    image: str = Field(description="The overlay as a base64 PNG, 28*scale pixels square, RGB.")


@router.post(
    "/explain",
    summary="Show where a classifier saw evidence of a fake (GradCAM)",
    response_class=Response,
    openapi_extra={"requestBody": upload_form()},
    responses={
        200: {
            "description": "The image, enlarged, with a heatmap of what pushed the verdict toward 'fake' laid over "
            "it (RGB PNG), or JSON with format=json. " + _HEADERS,
            "content": {
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": ExplainResponse.model_json_schema()},
            },
        },
        **error_responses(*UPLOAD_ERRORS),
    },
)
async def explain(
    request: Request,
    model: Annotated[str | None, MODEL_QUERY] = None,
    scale: Annotated[
        int, Query(ge=1, le=16, description="Enlargement of the overlay (28*scale pixels square).")
    ] = DEFAULT_SCALE,
    fmt: Annotated[
        Literal["png", "json"], Query(alias="format", description="png (default) or json (verdict, map, base64 PNG).")
    ] = "png",
) -> Response:
    engine, settings = get_engine(request), get_settings(request)
    upload = await read_upload(request, model, max_pixels=settings.max_image_pixels, decoders=get_decoders(request))
    served = engine.resolve_classifier(upload.model)
    # The verdict exactly as /classify gives it (which also checks that a needed label is there).
    verdict = await engine.classify(upload.image, label=upload.label, model=upload.model)
    label = None if served.label_use == "ignored" else upload.label
    rendered = await get_explainer(request).explain(served, upload.image, label, scale)
    explanation = rendered.explanation
    headers = {
        "X-Verdict": verdict.label,
        "X-Confidence": str(verdict.confidence),
        "X-Model": served.name,
        "X-Layer": explanation.layer,
        "X-Heatmap-Peak": f"{explanation.peak:.6g}",
    }
    if fmt == "json":
        body = ExplainResponse(
            label=verdict.label,
            confidence=verdict.confidence,
            model=served.name,
            layer=explanation.layer,
            peak=explanation.peak,
            heatmap=[[round(float(v), 4) for v in row] for row in explanation.normalized],
            image=rendered.png_base64,
        )
        return JSONResponse(body.model_dump(), headers=headers)
    return Response(rendered.png, media_type="image/png", headers=headers)
