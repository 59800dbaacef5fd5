"""GET /labels and GET /info: what the service serves."""

from __future__ import annotations

import platform
from importlib import metadata

import fastapi
import torch
from fastapi import APIRouter, Request

from models import NAMES
from service.deps import get_engine, get_settings
from service.loading import MISSING_TRANSLATOR
from service.schemas import InfoResponse, Label, LabelsResponse, ModelInfo

router = APIRouter(tags=["about"])


def package_version() -> str:
    try:
        return metadata.version("fashion-gan")
    except metadata.PackageNotFoundError:
        return "unknown"


@router.get("/labels", summary="The class labels", response_model=LabelsResponse)
async def labels() -> LabelsResponse:
    return LabelsResponse(labels=[Label(id=i, name=name) for i, name in enumerate(NAMES)])


@router.get("/info", summary="Loaded models, their recorded figures, device and versions", response_model=InfoResponse)
async def info(
    request: Request,
) -> InfoResponse:
    engine, settings = get_engine(request), get_settings(request)
    served = engine.models.served
    unavailable = {} if engine.models.translator is not None else {"/translate": MISSING_TRANSLATOR}
    return InfoResponse(
        service="fashion-gan",
        version=package_version(),
        device=str(engine.device),
        ready=bool(request.app.state.ready),
        default_classifier=engine.models.default_classifier,
        classifiers=sorted(engine.classifier_names, key=lambda name: name != engine.models.default_classifier),
        models=[
            ModelInfo(
                name=m.name,
                class_name=type(m.module).__name__,
                version=m.version,
                parameters=m.parameters,
                label=m.label_use,
                temperature=m.temperature,
                config=m.checkpoint.get("config", {}),
                training=m.checkpoint.get("training", {}),
                metrics=m.checkpoint.get("metrics", {}),
            )
            for m in served
        ],
        unavailable=unavailable,
        settings={
            "max_batch_size": settings.max_batch_size,
            "batch_timeout_ms": settings.batch_timeout_ms,
            "queue_limit": settings.queue_limit,
            "request_timeout_s": settings.request_timeout_s,
            "max_upload_bytes": settings.max_upload_bytes,
            "max_batch_images": settings.max_batch_images,
            "max_batch_upload_bytes": settings.batch_upload_bytes,
            "upload_memory_bytes": settings.upload_memory_bytes,
            "max_image_pixels": settings.max_image_pixels,
            "torch_threads": torch.get_num_threads(),
            "forward_passes_at_once": engine.slots.passes,
            "api_key_required": settings.api_key is not None,
        },
        versions={
            "python": platform.python_version(),
            "torch": torch.__version__,
            "fastapi": fastapi.__version__,
        },
    )
