"""What the API takes and answers, as /docs and /openapi.json describe it: the label values, the upload form
of /classify and /explain, the error table, and the response bodies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models import NAMES, NUM_CLASSES
from models.image_files import ACCEPTED_FORMATS, MEDIA_TYPES
from service.loading import DETECTOR, DISCRIMINATOR

# What the schema declares for a label: the ids and the class names. The service also takes a name in any case,
# without its punctuation, in the plural and a few short forms ("dress", "ankle boots", "tshirt"); the schema
# lists the canonical spellings, so that every label it allows is accepted.
LABEL_VALUES: tuple[str, ...] = (*(str(i) for i in range(NUM_CLASSES)), *NAMES)
LABEL_DESCRIPTION = (
    "An id 0-9 or a class name: " + ", ".join(f"{i}={name}" for i, name in enumerate(NAMES)) + ". A name may also "
    "be written in any case, without punctuation, in the plural or short ('dress', 'ankle boots', 'tshirt')."
)


def label_parameter_schema(schema: dict[str, Any]) -> None:
    """An optional ``label`` query parameter's schema: one of LABEL_VALUES (a parameter left out is not null)."""
    schema.pop("anyOf", None)
    schema.update(type="string", enum=list(LABEL_VALUES))


# Every error status the API answers with, described once; each route lists those it can give.
ERRORS: dict[int, str] = {
    400: "Malformed multipart body (no boundary, no closing boundary).",
    413: "Body over the upload limit (FGAN_MAX_UPLOAD_BYTES).",
    415: "Not multipart/form-data, or an upload in no accepted image format.",
    422: "A parameter or field is not accepted (label, option, model; a missing or doubled field; an empty, "
    "corrupt or over-large image); the message says what is accepted.",
    503: "Overloaded: a queue is full, or the service is starting or stopping (retry after Retry-After seconds).",
    504: "Not finished within the request timeout (FGAN_REQUEST_TIMEOUT_S).",
}
UPLOAD_ERRORS = (400, 413, 415, 422, 503, 504)  # /classify and /explain


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entries of a route for these error statuses."""
    return {status: {"model": ErrorResponse, "description": ERRORS[status]} for status in statuses}


def upload_form(classifiers: Sequence[str] = (DETECTOR, DISCRIMINATOR)) -> dict[str, Any]:
    """The request body of /classify and /explain on a server with these classifiers (the first is the default).

    ``label`` is required for the discriminator, which judges an image against its class; the detector works
    without it. A server without a detector asks for it always, since the discriminator is its default.
    """
    default = classifiers[0]
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["image", "label"] if default == DISCRIMINATOR else ["image"],
        # Other fields are ignored, up to a limit on the parts of a form: the schema allows none.
        "additionalProperties": False,
        "properties": {
            "image": {"type": "string", "format": "binary", "description": f"The image: {ACCEPTED_FORMATS}."},
            "label": {
                "type": "string",
                "enum": list(LABEL_VALUES),
                "description": f"Its class. {LABEL_DESCRIPTION}",
            },
            "model": {
                "type": "string",
                "enum": list(classifiers),
                "description": f"The model that judges: {' or '.join(classifiers)} (default: {default}). "
                "The query parameter ?model= may name it instead.",
            },
        },
    }
    if default != DISCRIMINATOR and DISCRIMINATOR in classifiers:
        schema["allOf"] = [
            {
                "if": {"properties": {"model": {"const": DISCRIMINATOR}}, "required": ["model"]},
                "then": {"required": ["label"]},
            }
        ]
    media = {"schema": schema, "encoding": {"image": {"contentType": ", ".join(MEDIA_TYPES.values())}}}
    return {"required": True, "content": {"multipart/form-data": media}}


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": "invalid_input", "detail": "unknown label 'hat'; expected …"}]}
    )
    error: str = Field(description="Short machine-readable code, e.g. invalid_input, overloaded, timeout.")
    detail: str = Field(description="What was wrong and what is accepted.")


class ClassifyResponse(BaseModel):
    """The verdict on one image."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"label": "real", "confidence": 0.97}]})
    label: Literal["real", "fake"] = Field(description="'real' (a Fashion-MNIST image) or 'fake' (generated).")
    confidence: float = Field(ge=0.5, le=1.0, description="Probability of the verdict, rounded to 4 digits.")


class GenerateJSONResponse(BaseModel):
    """/generate with format=json."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"label": 3, "label_name": "Dress", "seed": 42, "images": ["iVBORw0KGgo…"]}]}
    )
    label: int | None = Field(description="Class id of every image (null for an unconditional generator).")
    label_name: str | None = Field(description="Class name of every image.")
    seed: int = Field(description="Image i was generated from seed + i (mod 2**32).")
    images: list[str] = Field(description="Base64-encoded PNG images, 28*scale pixels square.")


class Label(BaseModel):
    id: int
    name: str


class LabelsResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"labels": [{"id": 0, "name": "T-shirt/top"}, {"id": 1, "name": "Trouser"}]}]}
    )
    labels: list[Label]


class ModelInfo(BaseModel):
    name: str = Field(description="generator, discriminator or detector.")
    class_name: str
    version: str = Field(description="The first 12 hex digits of the SHA-256 of its weights (as in X-Model).")
    parameters: int
    label: Literal["required", "optional", "ignored"] = Field(description="How the model uses the class label.")
    temperature: float | None = Field(description="Logits are divided by it before the sigmoid, when set.")
    config: dict[str, Any] = Field(description="Architecture settings.")
    training: dict[str, Any] = Field(description="Training facts recorded in the checkpoint.")
    metrics: dict[str, Any] = Field(description="Evaluation figures recorded in the checkpoint.")


class InfoResponse(BaseModel):
    service: str
    version: str
    device: str
    ready: bool
    default_classifier: str
    models: list[ModelInfo]
    settings: dict[str, Any] = Field(description="Batching, queue, timeout and upload limits in force.")
    versions: dict[str, str] = Field(description="Python, torch and web framework versions.")


class StatusResponse(BaseModel):
    status: str
