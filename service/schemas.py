"""What the API takes and answers, as /docs and /openapi.json describe it: the label values, the upload forms
of /classify, /explain, /classify/batch and /translate, the error table, and the response bodies."""

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
    503: "Overloaded: a queue is full, or the service is starting or stopping (retry after Retry-After seconds); "
    "or the route's optional model is not loaded on this server (model_unavailable).",
    504: "Not finished within the request timeout (FGAN_REQUEST_TIMEOUT_S).",
}
UPLOAD_ERRORS = (400, 413, 415, 422, 503, 504)  # /classify and /explain
# /classify/batch: the request's own errors (an image's are entries of its answer, with the same codes).
BATCH_ERRORS: dict[int, str] = {
    **ERRORS,
    413: "Body over the batch limit (FGAN_MAX_BATCH_UPLOAD_BYTES). An image over FGAN_MAX_UPLOAD_BYTES is an entry "
    "of the answer instead.",
    415: "Not multipart/form-data.",
    422: "No image, more images than FGAN_MAX_BATCH_IMAGES, labels not one per image, an unknown model, a "
    "doubled model field, or no labels for a model that needs them. A corrupt, unsupported or over-large image, "
    "or a bad label, is an entry of the answer instead.",
}


# /translate: the upload's errors are /classify's; a blank sketch is a 422 of its own.
TRANSLATE_ERRORS: dict[int, str] = {
    **ERRORS,
    422: "A missing or doubled 'image' field, an empty, corrupt or over-large image, a bad option (scale, invert), "
    "or a blank sketch (no strokes: all one grey once converted to 28x28); the message says what is accepted.",
    503: "Overloaded (retry after Retry-After seconds), or no sketch-to-clothing model is loaded on this server "
    "(model_unavailable: its weights directory has no pix2pix/ checkpoint).",
}


def error_responses(*statuses: int, table: dict[int, str] = ERRORS) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entries of a route for these error statuses."""
    return {status: {"model": ErrorResponse, "description": table[status]} for status in statuses}


_IMAGE = {"type": "string", "format": "binary", "description": f"The image: {ACCEPTED_FORMATS}."}
_LABEL = {"type": "string", "enum": list(LABEL_VALUES), "description": f"Its class. {LABEL_DESCRIPTION}"}


def upload_form(
    classifiers: Sequence[str] = (DETECTOR, DISCRIMINATOR), max_images: int | None = None
) -> dict[str, Any]:
    """The request body of /classify and /explain on a server with these classifiers (the first is the default);
    with ``max_images``, that of /classify/batch: 1 to ``max_images`` images, and one label per image or none.

    ``label`` is required for the discriminator, which judges an image against its class; the detector works
    without it. A server without a detector asks for it always, since the discriminator is its default.
    """
    default = classifiers[0]
    image, label = _IMAGE, _LABEL
    if max_images is not None:
        image = {"type": "array", "items": _IMAGE, "minItems": 1, "maxItems": max_images}
        image["description"] = f"1 to {max_images} images (FGAN_MAX_BATCH_IMAGES), each a {ACCEPTED_FORMATS} file."
        label = {"type": "array", "items": _LABEL, "minItems": 1, "maxItems": max_images}
        label["description"] = (
            f"One class per image, in the order of the images (or no label at all). {LABEL_DESCRIPTION}"
        )
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["image", "label"] if default == DISCRIMINATOR else ["image"],
        # Other fields are ignored, up to a limit on the parts of a form: the schema allows none.
        "additionalProperties": False,
        "properties": {
            "image": image,
            "label": label,
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
    if max_images is not None:
        # As many labels as images: a condition per count, since JSON Schema cannot compare two arrays' lengths.
        schema.setdefault("allOf", []).append(
            {
                "if": {"required": ["label"]},
                "then": {
                    "oneOf": [
                        {
                            "properties": {
                                "image": {"minItems": n, "maxItems": n},
                                "label": {"minItems": n, "maxItems": n},
                            }
                        }
                        for n in range(1, max_images + 1)
                    ]
                },
            }
        )
    media = {"schema": schema, "encoding": {"image": {"contentType": ", ".join(MEDIA_TYPES.values())}}}
    return {"required": True, "content": {"multipart/form-data": media}}


def sketch_form() -> dict[str, Any]:
    """The request body of /translate: one image, the sketch."""
    image = {
        "type": "string",
        "format": "binary",
        "description": f"The sketch: {ACCEPTED_FORMATS}, any size (converted to 28x28 grayscale as every upload "
        "is). Light strokes on a dark background, like Fashion-MNIST's images, or dark strokes on a light one "
        "(inverted when its border is light, see invert).",
    }
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["image"],
        # Other fields are ignored, up to a limit on the parts of a form: the schema allows none.
        "additionalProperties": False,
        "properties": {"image": image},
    }
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


class ClassifyBatchResponse(BaseModel):
    """The verdicts on a batch of images."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {"label": "real", "confidence": 0.97},
                        {
                            "error": "unsupported_media_type",
                            "detail": "the file is not a readable image (not an image file that Pillow can read); "
                            "accepted formats: PNG, JPEG, GIF (first frame), BMP, TIFF or WebP",
                        },
                        {"label": "fake", "confidence": 0.8812},
                    ]
                }
            ]
        }
    )
    results: list[ClassifyResponse | ErrorResponse] = Field(
        description="One entry per image, in the order sent: its verdict, the same bytes of JSON as /classify "
        "answers for that image alone, or why it could not be judged, with the error code /classify gives it "
        "(payload_too_large, unsupported_media_type, invalid_input; internal_error if the model failed on it)."
    )


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
    name: str = Field(description="generator, discriminator, detector or pix2pix.")
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
    classifiers: list[str] = Field(
        description="The models /classify, /explain and /classify/batch can use, the default first."
    )
    models: list[ModelInfo]
    unavailable: dict[str, str] = Field(
        description="Routes this server cannot serve, each with why (an optional model whose weights are absent); "
        "they answer 503 with that message."
    )
    settings: dict[str, Any] = Field(description="Batching, queue, timeout and upload limits in force.")
    versions: dict[str, str] = Field(description="Python, torch and web framework versions.")


class StatusResponse(BaseModel):
    status: str
