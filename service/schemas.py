"""Response bodies of the API (they also document it in /docs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
